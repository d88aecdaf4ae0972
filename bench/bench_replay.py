"""A suite replayed from its cassettes against the same suite live (issue 19, docs/replay.md).

A suite of N cases (20 in full) whose agent makes 6 model calls per case, through agenttui's
forwarder (egress provider-only) to a fake Ollama on loopback that takes 500 ms to answer each
call, as a slow model does. The same suite, in its own throwaway agenttui environment, is run
live, then recorded (`suite run --record DIR`), then replayed (`suite run --replay DIR`); each
wall time is the whole `agenttui suite run` command, beside its tests' median duration (the
container's run: the model's time is there, container start and the queue are not). bench/run.py uses `measure` for its figure.

    .venv/bin/python bench/bench_replay.py [--cases 20] [--image agenttui-base:bookworm]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import textwrap
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import AGENTTUI, DEFAULT_IMAGE, BenchEnv  # noqa: E402

CALLS_PER_CASE = 6
ANSWER_S = 0.5
CONCURRENCY = 10  # the default max_concurrent, pinned so the figure does not move with a setting

AGENT = f'''import json, os, urllib.request


def run(query):
    answers = []
    for step in range({CALLS_PER_CASE}):
        body = {{"model": os.environ["MODEL_ID"], "stream": False,
                 "messages": [{{"role": "user", "content": f"{{query}} step {{step}}"}}]}}
        request = urllib.request.Request(os.environ["OLLAMA_HOST"] + "/api/chat", data=json.dumps(body).encode(),
                                         headers={{"Content-Type": "application/json"}})
        with urllib.request.urlopen(request) as answer:
            answers.append(json.load(answer)["message"]["content"])
    return " | ".join(answers)
'''


class SlowOllama(BaseHTTPRequestHandler):
    """/api/tags at once; each /api/chat after ANSWER_S, like a model's answer."""

    protocol_version = "HTTP/1.1"
    calls = 0
    lock = threading.Lock()

    def log_message(self, *args):
        pass

    def _send(self, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self._send({"models": [{"name": "llama3.2:latest", "model": "llama3.2:latest"}]})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        with SlowOllama.lock:
            SlowOllama.calls += 1
        time.sleep(ANSWER_S)
        content = "answer to " + body["messages"][-1]["content"]
        self._send({"model": body.get("model"), "message": {"role": "assistant", "content": content},
                    "done": True, "done_reason": "stop", "prompt_eval_count": 8, "eval_count": 4})


def suite_file(root: Path, cases: int) -> Path:
    (root / "agent.py").write_text(AGENT)
    body = textwrap.dedent('''
        name = "replay-bench"
        agent = "agent.py"
        egress = "provider-only"
        timeout = 120
    ''') + "".join(f'\n[[case]]\nid = "case-{i:02d}"\nquery = "question {i}"\n' for i in range(cases))
    path = root / "suite.toml"
    path.write_text(body)
    return path


def _suite_run(suite: Path, env: dict[str, str], *flags: str) -> tuple[float, float]:
    """The whole `agenttui suite run` command's wall seconds, and its tests' median duration."""
    started = time.perf_counter()
    done = subprocess.run([AGENTTUI, "suite", "run", str(suite), "--json", *flags], env=env, capture_output=True,
                          text=True, timeout=900)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"suite run {' '.join(flags)} failed ({done.returncode}): {done.stderr[-2000:]}")
    report = json.loads(done.stdout)
    return elapsed, statistics.median(r["duration_s"] for case in report["cases"] for r in case["repeats"])


def measure(image: str = DEFAULT_IMAGE, cases: int = 20, *, record_apart: bool = True) -> dict[str, float]:
    """Wall seconds of the suite live, recorded and replayed, their tests' median durations and
    the model calls each made.
    `record_apart=False` (quick): the recording run is the live one."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), SlowOllama)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    bench = BenchEnv(image, ollama_url=f"http://127.0.0.1:{server.server_address[1]}",
                     max_concurrent=str(CONCURRENCY))
    try:
        suite = suite_file(bench.root, cases)
        tapes = bench.root / "tapes"
        bench.cli("queue", check=False)  # the personal server is up before the clock starts
        figures: dict[str, float] = {"cases": cases, "calls_per_case": CALLS_PER_CASE}
        if record_apart:
            SlowOllama.calls = 0
            figures["live"], figures["live_test"] = _suite_run(suite, bench.env)
            figures["live_calls"] = SlowOllama.calls
        SlowOllama.calls = 0
        figures["recorded"], figures["recorded_test"] = _suite_run(suite, bench.env, "--record", str(tapes))
        figures["recorded_calls"] = SlowOllama.calls
        if not record_apart:
            for key in ("", "_test", "_calls"):
                figures["live" + key] = figures["recorded" + key]
        SlowOllama.calls = 0
        figures["replayed"], figures["replayed_test"] = _suite_run(suite, bench.env, "--replay", str(tapes))
        figures["replayed_calls"] = SlowOllama.calls
        return figures
    finally:
        bench.close()
        server.shutdown()
        server.server_close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=20)
    parser.add_argument("--image", default=DEFAULT_IMAGE)
    args = parser.parse_args()
    print(json.dumps(measure(args.image, args.cases)))
