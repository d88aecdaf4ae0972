"""The recorder's cost on the egress path (issue 18): the same model server, the same run, through
a plain tunnel and through a tunnel whose connections are recorded (agenttui.sandbox.recorder).

    .venv/bin/python bench/bench_recorder.py [--calls 300]

Per-call latency (request sent → whole answer read, a streamed answer of 40 SSE events) from a
client in its own thread, calls alternating between the two tunnels; and the throughput of a
long stream (8 MB of SSE events, median of 7) read by a client in its own process. The forwarder runs in its own event loop, as in the server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import median, percentile  # noqa: E402

from agenttui.core.domain import Egress  # noqa: E402
from agenttui.sandbox import recorder  # noqa: E402
from agenttui.sandbox.egress import NetworkPlan, Tunnel  # noqa: E402
from agenttui.sandbox.forwarder import TunnelHost  # noqa: E402

STREAM_MB = 8
BODY = json.dumps({"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "hi"}]}).encode()


def sse(events: int, words: str = "token ") -> bytes:
    chunk = json.dumps({"model": "gpt-4o-mini", "choices": [{"index": 0, "delta": {"content": words}}]})
    usage = json.dumps({"model": "gpt-4o-mini", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": events}})
    return (f"data: {chunk}\n\n" * events + f"data: {usage}\n\ndata: [DONE]\n\n").encode()


class Upstream:
    """A model server on loopback: answers each POST with a fixed SSE stream, then closes."""

    def __init__(self, body: bytes):
        head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
        self.answer = head % len(body) + body
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            conn, _ = self.sock.accept()
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            head, _, rest = data.partition(b"\r\n\r\n")
            length = int(next(l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")))
            while len(rest) < length:
                rest += conn.recv(65536)
            conn.sendall(self.answer)


class Sink:
    def __init__(self):
        self.calls = 0

    def add(self, call) -> None:
        self.calls += 1


def _plan(port: int, socket_name: str) -> NetworkPlan:
    tunnel = Tunnel("openai", socket_name, "127.0.0.2", port, "127.0.0.2", "127.0.0.1", port, "http", None,
                    f"http://127.0.0.1:{port}", f"http://127.0.0.2:{port}")
    return NetworkPlan(Egress.PROVIDER_ONLY, (tunnel,))


def _call(path: Path, expected: int) -> tuple[float, int]:
    """Seconds until the whole answer (`expected` bytes) has arrived, as an HTTP client ends a call."""
    request = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(BODY), BODY)
    started = time.perf_counter()
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(str(path))
        sock.sendall(request)
        size = 0
        while size < expected and (chunk := sock.recv(262144)):
            size += len(chunk)
        elapsed = time.perf_counter() - started
    return elapsed, size


# A long stream is read by a client in its own process, as an agent's is in its container: a client
# thread in this process would share the forwarder's GIL and measure that contention instead.
STREAM_CLIENT = """
import socket, sys, time
path, expected, request = sys.argv[1], int(sys.argv[2]), sys.stdin.buffer.read()
started = time.perf_counter()
with socket.socket(socket.AF_UNIX) as sock:
    sock.connect(path)
    sock.sendall(request)
    size = 0
    while size < expected and (chunk := sock.recv(262144)):
        size += len(chunk)
    elapsed = time.perf_counter() - started
print(elapsed, size)
"""


def _stream_call(path: Path, expected: int) -> tuple[float, int]:
    """`_call` from a client process of its own."""
    request = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(BODY), BODY)
    done = subprocess.run([sys.executable, "-c", STREAM_CLIENT, str(path), str(expected)], input=request,
                          capture_output=True, check=True, timeout=60)
    elapsed, size = done.stdout.split()
    return float(elapsed), int(size)


def measure(calls: int, events: int = 40, stream_mb: int = STREAM_MB) -> dict[str, float]:
    """Latencies of both tunnels (seconds) and one long stream's throughput (MB/s) through each."""
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    folder = Path(tempfile.mkdtemp(prefix="atrec-"))
    sink = Sink()
    recorder.attach("bench-recorded", sink)
    results: dict[str, float] = {}
    for label, body in (("call", sse(events)), ("stream", sse(stream_mb * 1024 * 1024 // 100, "x" * 30))):
        upstream = Upstream(body)
        hosts = {
            "plain": TunnelHost(folder, _plan(upstream.port, f"{label}-plain.sock"), "bench-plain"),
            "recorded": TunnelHost(folder, _plan(upstream.port, f"{label}-rec.sock"), "bench-recorded"),
        }
        for host in hosts.values():
            asyncio.run_coroutine_threadsafe(host.start(), loop).result()
        paths = {name: folder / host.plan.tunnels[0].socket for name, host in hosts.items()}
        times: dict[str, list[float]] = {"plain": [], "recorded": []}
        rounds = calls if label == "call" else 7
        for index in range(rounds + 5):
            for name in ("plain", "recorded") if index % 2 else ("recorded", "plain"):
                elapsed, size = (_call if label == "call" else _stream_call)(paths[name], len(upstream.answer))
                asyncio.run_coroutine_threadsafe(recorder.settled(), loop).result()  # untimed: its answer read
                if index >= 5:  # warm-up
                    times[name].append(elapsed if label == "call" else size / elapsed / 1e6)
        for name, values in times.items():
            if label == "call":
                results[f"{name}_p50"], results[f"{name}_p95"] = median(values), percentile(values, 95)
            else:
                results[f"{name}_mb_s"] = median(values)
        for host in hosts.values():
            asyncio.run_coroutine_threadsafe(host.close(), loop).result()
    recorder.detach("bench-recorded", sink)
    loop.call_soon_threadsafe(loop.stop)
    results["recorded_calls"] = sink.calls
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    figures = measure(args.calls)
    print(json.dumps({k: round(v, 6) for k, v in figures.items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
