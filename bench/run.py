"""The benchmark suite (issues 6 and 17): every figure against its raw baseline in the same run.

    .venv/bin/python bench/run.py            # full: medians of several repetitions (several minutes)
    .venv/bin/python bench/run.py --quick    # one repetition each, smaller loads (the CI smoke test)
    .venv/bin/python bench/run.py --only 3,5 # some figures

Prints one table: figure, agenttui, baseline, ratio (agenttui / baseline), target, result.
No threshold fails the command (machines are noisy); "NOT met" rows are reported as such.
Everything runs in throwaway XDG directories with egress 'none' (no model is called); the
containers carry a bench label and are removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_history  # noqa: E402
import bench_submit  # noqa: E402
from _common import (  # noqa: E402
    AGENTTUI,
    DEFAULT_IMAGE,
    REPO,
    BenchEnv,
    median,
    percentile,
    proc_status_kb,
)

TERMINAL = ("COMPLETED", "FAILED", "TIMED_OUT", "CANCELLED")


@dataclass
class Row:
    figure: str
    tool: str
    baseline: str
    ratio: float | None
    target: str
    met: bool | None  # None: not measured
    note: str = ""

    @property
    def result(self) -> str:
        return "n/a" if self.met is None else ("met" if self.met else "NOT met")


def fmt_s(seconds: float) -> str:
    return f"{seconds:.2f} s" if seconds >= 1 else f"{seconds * 1000:.0f} ms"


# ---------------------------------------------------------------------------------------- 1
def fig_submit(bench: BenchEnv, quick: bool) -> list[Row]:
    m = bench_submit.measure(bench, runs=1 if quick else 7)
    rows = []
    for key, label, target in (("first", "1a submit → first agent output", 1.5),
                               ("whole", "1b whole `agenttui submit` (waits)", 0.5)):
        tool, raw = median(m[f"tool_{key}"]), median(m[f"raw_{key}"])
        ratio = tool / raw
        rows.append(Row(label, fmt_s(tool), f"{fmt_s(raw)} docker run --rm", ratio, f"<= {target}x",
                        ratio <= target))
    return rows


# ---------------------------------------------------------------------------------------- 2
TICKS = """
import time
def run(query):
    n = int(query)
    time.sleep(1)  # the reader is attached before the first tick
    for i in range(n):
        print("tick %d %.6f" % (i, time.time()), flush=True)
        time.sleep(0.02)
    return "done"
"""
RAW_TICKS = ("import sys, time\nn = int(sys.argv[1])\ntime.sleep(1)\nfor i in range(n):\n"
             "    print('tick %d %.6f' % (i, time.time()), flush=True)\n    time.sleep(0.02)\n")


def _tick_latencies(cmd: list[str], env: dict[str, str]) -> list[float]:
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1)
    latencies = []
    assert proc.stdout is not None
    for line in proc.stdout:
        seen = time.time()
        parts = line.split()
        if len(parts) == 3 and parts[0] == "tick":
            latencies.append(seen - float(parts[2]))
    proc.wait(timeout=120)
    return latencies


def fig_log_latency(bench: BenchEnv, quick: bool) -> list[Row]:
    ticks, runs = (30, 1) if quick else (100, 3)
    agent = bench.agent(TICKS, name="ticks.py")
    tool: list[float] = []
    raw: list[float] = []
    for _ in range(runs):
        tool += _tick_latencies([AGENTTUI, "submit", str(agent), "--query", str(ticks)], bench.env)
        container = subprocess.run(
            ["docker", "run", "-d", "--label", f"agenttui.bench={bench.run_id}", bench.image,
             "python3", "-c", RAW_TICKS, str(ticks)], capture_output=True, text=True, check=True).stdout.strip()
        raw += _tick_latencies(["docker", "logs", "-f", container], bench.env)
        subprocess.run(["docker", "rm", "-f", container], capture_output=True)
    p50, p95 = percentile(tool, 50), percentile(tool, 95)
    r50, r95 = percentile(raw, 50), percentile(raw, 95)
    return [Row("2 log latency print → shown by `agenttui submit`", f"p50 {p50 * 1000:.0f} / p95 {p95 * 1000:.0f} ms",
                f"p50 {r50 * 1000:.0f} / p95 {r95 * 1000:.0f} ms docker logs -f", p95 / r95, "p95 < 100 ms",
                p95 < 0.100, f"{len(tool)} lines")]


# ---------------------------------------------------------------------------------------- 3
LINES_AGENT = """
import sys, time
def run(query):
    n = int(query)
    out = sys.stdout
    out.write("start %.6f\\n" % time.time())
    out.flush()
    for base in range(0, n, 10000):
        out.write("".join("line %06d\\n" % i for i in range(base, min(n, base + 10000))))
    out.flush()
    return "done"
"""
RAW_LINES = ("import sys, time\nn = int(sys.argv[1])\nout = sys.stdout\nout.write('start %.6f\\n' % time.time())\n"
             "out.flush()\nfor base in range(0, n, 10000):\n"
             "    out.write(''.join('line %06d\\n' % i for i in range(base, min(n, base + 10000))))\nout.flush()\n"
             "time.sleep(1)\n")  # `docker logs -f` may end before the last lines when the container exits


def _ingest_agenttui(bench: BenchEnv, agent: Path, n: int) -> tuple[float, bool]:
    from agenttui.engine.store import chunks

    test_id = int(bench.cli("submit", str(agent), "--query", str(n), "--no-wait").stdout.strip())
    deadline = time.time() + 300
    last = f"line {n - 1:06d}"
    while time.time() < deadline:
        # Cheap on the store: the newest chunk of its log by the (test, last line) key.
        newest = [entry.text for (data,) in bench.query(
            "select data from log_chunks where test_id=? order by last_seq desc limit 1", test_id)
            for entry in chunks.unpack(data)][-20:]
        if last in newest:
            done = time.time()
            break
        time.sleep(0.01)
    else:
        raise RuntimeError(f"{last!r} was not stored within 300 s")
    stored = bench.log_texts(test_id)
    start = float(next(text for text in stored if text.startswith("start ")).split()[1])
    texts = [text for text in stored if text.startswith("line ")]
    in_order = texts == [f"line {i:06d}" for i in range(n)]
    return n / (done - start), in_order


def _ingest_raw(bench: BenchEnv, n: int) -> float:
    container = subprocess.run(
        ["docker", "run", "-d", "--label", f"agenttui.bench={bench.run_id}", bench.image, "python3", "-c",
         RAW_LINES, str(n)], capture_output=True, text=True, check=True).stdout.strip()
    proc = subprocess.Popen(["docker", "logs", "-f", container], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True, bufsize=1 << 16)
    count, start = 0, None
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("line "):
            count += 1
            if count == n:
                done = time.time()
        elif line.startswith("start "):
            start = float(line.split()[1])
    proc.wait()
    subprocess.run(["docker", "rm", "-f", container], capture_output=True)
    return n / (done - start)


def fig_ingestion(bench: BenchEnv, quick: bool) -> list[Row]:
    n, runs = (50_000, 1) if quick else (200_000, 3)
    agent = bench.agent(LINES_AGENT, name="lines.py")
    tool, raw, ordered = [], [], True
    for _ in range(runs):
        rate, in_order = _ingest_agenttui(bench, agent, n)
        tool.append(rate)
        ordered &= in_order
        raw.append(_ingest_raw(bench, n))
    rate, base = median(tool), median(raw)
    return [Row(f"3 log ingestion, {n // 1000}k-line agent", f"{rate:,.0f} lines/s" + ("" if ordered else " (ORDER LOST)"),
                f"{base:,.0f} lines/s docker logs -f", rate / base, ">= 50,000 lines/s, in order",
                rate >= 50_000 and ordered, "all lines kept in order" if ordered else "lines missing or out of order")]


# ---------------------------------------------------------------------------------------- 4
SLEEPER = "import time\ndef run(query):\n    time.sleep(2)\n    return 'slept'\n"


async def _makespan(count: int) -> float:
    from agenttui.client.remote import SocketClient
    from agenttui.core.config import load_settings
    from agenttui.core.domain import TestRequest

    request = TestRequest.parse(agent_code=SLEEPER, query="makespan", egress="none")
    async with SocketClient(load_settings()) as client:
        started = time.time()
        # Submitted together, as a batch of concurrent tests is: one after the other, the
        # client's round trips alone spread the ten starts over ~0.3 s.
        ids = [view.id for view in await asyncio.gather(*(client.submit(request) for _ in range(count)))]
        views = [await client.wait(test_id) for test_id in ids]
    assert all(v.status.value == "COMPLETED" for v in views), [v.status for v in views]
    return max(v.finished_at for v in views) - started


def _raw_makespan(bench: BenchEnv, count: int) -> float:
    """`docker run --rm` of the same 2 s program, `count` at once: Docker's own cost of a burst."""
    started = time.time()
    procs = [subprocess.Popen(["docker", "run", "--rm", "--network", "none", "--label",
                               f"agenttui.bench={bench.run_id}", bench.image, "python3", "-c",
                               "import time; time.sleep(2)"], stdout=subprocess.DEVNULL) for _ in range(count)]
    for proc in procs:
        proc.wait(timeout=120)
    return time.time() - started


def fig_makespan(bench: BenchEnv, quick: bool) -> list[Row]:
    """The first batch of ten finds one container of its kind started ahead (warm_pool); the
    later ones find as many as the last burst had (warm_pool_max): the row is those, the note
    says what the first one took, and what Docker alone takes for the same burst."""
    runs = 1 if quick else 3
    one, ten = [], []
    first = None
    for _ in range(runs + 1):
        one.append(asyncio.run(_makespan(1)))
        span = asyncio.run(_makespan(10))
        if first is None:
            first = span
        else:
            ten.append(span)
    raw_one = median([_raw_makespan(bench, 1) for _ in range(runs)])
    raw_ten = median([_raw_makespan(bench, 10) for _ in range(runs)])
    a, b = median(ten), median(one)
    note = (f"the first batch after start-up {fmt_s(first)} ({first / b:.2f}x); Docker alone, 10 `docker run` "
            f"at once vs one: {fmt_s(raw_ten)} vs {fmt_s(raw_one)} ({raw_ten / raw_one:.2f}x)")
    return [Row("4 makespan, 10 concurrent 2 s agents vs 1 (later batches)", fmt_s(a), f"{fmt_s(b)} one agent",
                a / b, "<= 1.5x", a / b <= 1.5, note)]


# ---------------------------------------------------------------------------------------- 5
WAITER = "import time\ndef run(query):\n    print('ready', flush=True)\n    time.sleep(3600)\n"
RAW_WAITER = ("import signal, sys, time\nsignal.signal(signal.SIGTERM, lambda *a: sys.exit(143))\n"
              "print('ready', flush=True)\ntime.sleep(3600)\n")


class DestroyEvents:
    """`docker events` for this bench's containers: when each was removed (engine clock)."""

    def __init__(self, bench: BenchEnv):
        self.times: dict[str, float] = {}
        self.proc = subprocess.Popen(
            ["docker", "events", "--filter", "event=destroy", "--filter", f"label=agenttui.bench={bench.run_id}",
             "--format", '{{.Actor.Attributes.name}} {{.TimeNano}}'],
            stdout=subprocess.PIPE, text=True, bufsize=1)
        threading.Thread(target=self._read, daemon=True).start()
        time.sleep(0.3)  # subscribed before anything happens

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            # By name (agenttui-<store>-<test>-a<attempt>-<mark>): a container started ahead (warm
            # pool) got its test after creation, so only its name says which test it served.
            match = re.fullmatch(r"agenttui-[0-9a-f]+-(\d+)-a\d+(?:-[0-9a-f]+)? (\d+)", line.strip())
            if match:  # agenttui's test containers (not the raw baseline's, nor waiting ones)
                self.times[match.group(1)] = int(match.group(2)) / 1e9

    def close(self) -> None:
        self.proc.terminate()


async def _cancel_once(bench: BenchEnv, events: DestroyEvents) -> tuple[float, float]:
    from agenttui.client.remote import SocketClient
    from agenttui.core.config import load_settings
    from agenttui.core.domain import TestRequest

    request = TestRequest.parse(agent_code=WAITER, query="cancel me", egress="none")
    async with SocketClient(load_settings()) as client:
        test_id = (await client.submit(request)).id
        while "ready" not in bench.log_texts(test_id):
            await asyncio.sleep(0.02)
        asked = time.time()
        await client.cancel(test_id)
        while True:
            [(status, finished)] = bench.query("select status, finished_at from tests where id=?", test_id)
            if status in TERMINAL:
                seen = time.time()
                break
            await asyncio.sleep(0.005)
    assert status == "CANCELLED", status
    deadline = time.time() + 30
    while str(test_id) not in events.times and time.time() < deadline:
        await asyncio.sleep(0.02)
    return seen - asked, events.times[str(test_id)] - finished


def fig_cancel(bench: BenchEnv, quick: bool) -> list[Row]:
    runs = 1 if quick else 5
    events = DestroyEvents(bench)
    cancel, cleanup, raw_stop, raw_rm = [], [], [], []
    try:
        for _ in range(runs):
            latency, removal = asyncio.run(_cancel_once(bench, events))
            cancel.append(latency)
            cleanup.append(removal)
            container = subprocess.run(
                ["docker", "run", "-d", "--init", "--label", f"agenttui.bench={bench.run_id}", bench.image,
                 "python3", "-c", RAW_WAITER], capture_output=True, text=True, check=True).stdout.strip()
            while "ready" not in subprocess.run(["docker", "logs", container], capture_output=True, text=True).stdout:
                time.sleep(0.02)
            started = time.time()
            subprocess.run(["docker", "stop", "-t", "1", container], capture_output=True, check=True)
            raw_stop.append(time.time() - started)
            started = time.time()
            subprocess.run(["docker", "rm", container], capture_output=True, check=True)
            raw_rm.append(time.time() - started)
    finally:
        events.close()
    c, r = median(cancel), median(cleanup)
    return [
        Row("5a cancel latency (request → CANCELLED)", fmt_s(c), f"{fmt_s(median(raw_stop))} docker stop -t 1",
            c / median(raw_stop), "< 1 s", c < 1.0),
        Row("5b cleanup (end → container removed)", fmt_s(r), f"{fmt_s(median(raw_rm))} docker rm",
            r / median(raw_rm), "< 2 s", r < 2.0),
    ]


# ---------------------------------------------------------------------------------------- 6
def fig_image_reuse(bench: BenchEnv, quick: bool) -> list[Row]:
    runs = 1 if quick else 3
    agent = bench.agent("def run(query):\n    return 'ok'\n", name="with_requirements.py")
    first_build, second_build, first_wall, second_wall, images = [], [], [], [], set()
    try:
        for i in range(runs):
            # Satisfied by the base image's own pip: a real image build, no package download.
            requirements = bench.root / f"requirements_{i}.txt"
            requirements.write_text(f"pip>=0.0.{int(time.time())}{i}\n")
            for builds, walls in ((first_build, first_wall), (second_build, second_wall)):
                started = time.perf_counter()
                record = json.loads(bench.cli("submit", str(agent), "--query", "x", "-r", str(requirements),
                                              "--json").stdout)
                walls.append(time.perf_counter() - started)
                builds.append(record["metrics"]["build_s"] if record["metrics"]["image_built"] else 0.0)
                images.add(bench.query("select image from tests where id=?", record["id"])[0][0])
    finally:
        for image in images - {bench.image}:
            subprocess.run(["docker", "rmi", "-f", image], capture_output=True)
    second, first = median(second_wall), median(first_wall)
    reused = all(b == 0.0 for b in second_build) and all(b > 0 for b in first_build)
    return [Row("6 image reuse: 2nd run, same requirements", f"build {max(second_build):.2f} s, wall {fmt_s(second)}",
                f"build {median(first_build):.2f} s, wall {fmt_s(first)} 1st run", second / first,
                "build time 0", reused)]


# ---------------------------------------------------------------------------------------- 7
class FirstRequest:
    """A Unix socket that records when the first request bytes arrive, then hangs up."""

    def __init__(self, path: Path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        self.sock.listen(8)
        self.arrivals: list[float] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            if conn.recv(65536):
                self.arrivals.append(time.perf_counter())
            conn.close()

    def time_to_first(self, cmd: list[str], env: dict[str, str]) -> float:
        before = len(self.arrivals)
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = started + 30
        while len(self.arrivals) == before and time.perf_counter() < deadline:
            time.sleep(0.001)
        proc.kill()
        proc.wait()
        return self.arrivals[before] - started

    def close(self) -> None:
        self.sock.close()


def fig_startup(bench: BenchEnv, quick: bool) -> list[Row]:
    runs = 3 if quick else 15
    fake = FirstRequest(bench.root / "fake.sock")
    env = {**bench.env, "AGENTTUI_SOCKET_PATH": str(fake.path)}
    bare = [sys.executable, "-c", "import socket, sys; s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); "
            "s.sendall(b'GET /v1/health HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n')", str(fake.path)]
    tool, raw = [], []
    try:
        for _ in range(runs):
            tool.append(fake.time_to_first([AGENTTUI, "queue", "--json"], env))
            raw.append(fake.time_to_first(bare, env))
    finally:
        fake.close()
    t, r = median(tool), median(raw)
    return [Row("7a headless CLI start → first request", fmt_s(t), f"{fmt_s(r)} bare python client", t / r,
                "< 300 ms", t < 0.300), *_tui_rows(quick)]


TUI_HISTORY = 50_000
QUICK_TUI_HISTORY = 5_000  # --quick only proves the figure runs


def _tui_rows(quick: bool) -> list[Row]:
    """The TUI engineer's bench/bench_tui.py (not duplicated here): the real binary's launch →
    status bar in tmux over an empty store (7b) and over TUI_HISTORY finished tests (7c), each
    against the in-process app's first frame (an empty store) in the same run."""
    history_size = QUICK_TUI_HISTORY if quick else TUI_HISTORY
    label, history_label = "7b TUI first paint", f"7c TUI first paint, {history_size // 1000}k tests in history"
    history_target = "<= 1.0x in-process app, <= 1.5 s"

    def unmeasured(why: str) -> list[Row]:
        return [Row(label, f"n/a ({why})", "-", None, "< 1.5 s", None),
                Row(history_label, f"n/a ({why})", "-", None, history_target, None)]

    script = REPO / "bench" / "bench_tui.py"
    if not script.exists():
        return unmeasured("TUI bench missing")
    # Its log-pane part is sized down: only the first-paint figures are read here.
    try:
        result = subprocess.run([sys.executable, str(script), "--lines", "2000" if quick else "20000",
                                 "--repeat", "1" if quick else "3", "--history", str(history_size)],
                                capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        return unmeasured("bench/bench_tui.py did not finish in 300 s")
    binary, in_process = _first_paint(result.stdout, "agenttui in tmux"), _first_paint(result.stdout, "in-process app")
    history = _first_paint(result.stdout, f"{history_size // 1000}k history in tmux")
    if result.returncode != 0 or binary is None or in_process is None or history is None:
        return unmeasured("could not read bench/bench_tui.py output")
    baseline = f"{fmt_s(in_process)} in-process app, empty store"
    return [
        Row(label, fmt_s(binary), baseline, binary / in_process, "< 1.5 s", binary < 1.5,
            "from bench/bench_tui.py (binary in tmux, launch → status bar)"),
        Row(history_label, fmt_s(history), baseline, history / in_process, history_target,
            history / in_process <= 1.0 and history <= 1.5,
            f"the binary in tmux over {history_size:,} finished tests; {history / binary:.2f}x its paint over an "
            "empty store"),
    ]


def _first_paint(output: str, which: str) -> float | None:
    match = re.search(rf"first paint, {re.escape(which)}:\s*([\d,.]+)\s*ms", output)
    return float(match.group(1).replace(",", "")) / 1000 if match else None


# ---------------------------------------------------------------------------------------- 8
def fig_claims(bench: BenchEnv, quick: bool) -> list[Row]:
    n = 50 if quick else 1000
    script = Path(__file__).resolve().parent / "_claims.py"
    result = subprocess.run([sys.executable, str(script), str(n), str(bench.root / "claims")], env=bench.env,
                            capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-2000:])
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    raw = figures["raw"]
    baseline = f"{raw:,.0f}/s raw sqlite3 claims"
    return [
        Row("8a store claims/s, 4 processes (store.claim)", f"{figures['store']:,.0f} claims/s", baseline,
            figures["store"] / raw, ">= 500/s (SQLite)", figures["store"] >= 500, f"{n} queued tests"),
        Row("8b the same through 4 orchestrators, noop backend", f"{figures['orchestrators']:,.0f} claims/s", baseline,
            figures["orchestrators"] / raw, ">= 500/s (SQLite)", figures["orchestrators"] >= 500,
            "each test claimed, run and finished at the default cap of 10"),
    ]


# ---------------------------------------------------------------------------------------- 9
def _history_store(bench: BenchEnv, path: Path, count: int) -> None:
    script = Path(__file__).resolve().parent / "_claims.py"
    subprocess.run([sys.executable, str(script), "history", str(count), str(path)], env=bench.env, check=True,
                   capture_output=True, text=True, timeout=300)


def _server_rss(bench: BenchEnv, db: Path, quick: bool) -> int:
    sock = bench.root / f"rss-{db.stem}.sock"
    env = {**bench.env, "AGENTTUI_SOCKET_PATH": str(sock), "AGENTTUI_DB_URL": f"sqlite+aiosqlite:///{db}"}
    server = subprocess.Popen([AGENTTUI, "server"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 30
        while not sock.exists() and time.time() < deadline:
            time.sleep(0.05)
        # What clients ask of it: the queue, history pages (the TUI's pane asks for 200), tests.
        requests = [["queue", "--json"], ["history", "--limit", "200", "--json"]]
        if not quick:
            requests += [["history", "--limit", "1000"], ["history", "--search", "needle", "--json"],
                         ["show", "1"], ["show", "5000"]]
        for args in requests:
            subprocess.run([AGENTTUI, *args], env=env, capture_output=True, timeout=120)
        return proc_status_kb(server.pid, "VmHWM")
    finally:
        server.terminate()
        server.wait(timeout=30)


def fig_rss(bench: BenchEnv, quick: bool) -> list[Row]:
    full, empty = bench.root / "history10k.db", bench.root / "empty.db"
    _history_store(bench, full, 10_000)
    _history_store(bench, empty, 0)
    with_history = _server_rss(bench, full, quick) / 1024
    baseline = _server_rss(bench, empty, quick) / 1024
    return [Row("9 server peak RSS, 10k finished tests", f"{with_history:.0f} MB", f"{baseline:.0f} MB empty store",
                with_history / baseline, "< 150 MB", with_history < 150)]


# ---------------------------------------------------------------------------------------- 10
def fig_recorder(bench: BenchEnv, quick: bool) -> list[Row]:
    """The recorder on the egress path against the plain tunnel: the same model server, the same run."""
    import bench_recorder

    calls = 60 if quick else 400
    result = subprocess.run([sys.executable, str(Path(__file__).resolve().parent / "bench_recorder.py"),
                             "--calls", str(calls)], env=bench.env, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-2000:])
    f = json.loads(result.stdout.strip().splitlines()[-1])
    over50, over95 = (f["recorded_p50"] - f["plain_p50"]) * 1000, (f["recorded_p95"] - f["plain_p95"]) * 1000
    ratio = f["recorded_mb_s"] / f["plain_mb_s"]
    note = f"{calls} calls each way; a stream of {bench_recorder.STREAM_MB} MB"
    return [
        Row("10a recorder overhead per call (p50 / p95)", f"+{over50:.2f} ms / +{over95:.2f} ms",
            f"plain tunnel {f['plain_p50'] * 1000:.2f} / {f['plain_p95'] * 1000:.2f} ms",
            f["recorded_p50"] / f["plain_p50"], "p50 overhead < 2 ms", over50 < 2, note),
        Row("10b recorded stream throughput", f"{f['recorded_mb_s']:.0f} MB/s", f"{f['plain_mb_s']:.0f} MB/s plain",
            ratio, ">= 0.8x plain", ratio >= 0.8, note),
    ]


# ---------------------------------------------------------------------------------------- 11
def fig_history_scale(bench: BenchEnv, quick: bool) -> list[Row]:
    """`queue` and a `history` page server side (the Service's calls) with 50k finished tests vs
    1k, each against the same rows read by rowid (bench/bench_history.py). Full runs only:
    tests/bench/test_bench_quick.py lists the rows `--quick` prints."""
    if quick:
        return []
    figures = bench_history.measure(runs=30)
    small, large = figures["1k"], figures["50k"]
    rows = []
    for key, label in (("queue", "11a `queue`, 50k finished tests (server side)"),
                       ("history", "11b `history` page of 50 (first, by cursor), 50k finished tests")):
        tool, raw, before = large[key], large[f"{key}_raw"], small[key]
        met = tool <= 0.005 and tool <= 1.5 * before
        rows.append(Row(label, f"{tool * 1000:.1f} ms (1k: {before * 1000:.1f} ms)",
                        f"{raw * 1000:.2f} ms same rows by rowid", tool / raw, "<= 5 ms and <= 1.5x 1k", met,
                        f"50k / 1k: {tool / before:.2f}x"))
    return rows


# ---------------------------------------------------------------------------------------- 12
def fig_suite_reports(bench: BenchEnv, quick: bool) -> list[Row]:
    """The suite reports (comparison, JUnit, HTML) for 1,000 results, in process (bench/bench_suites.py)."""
    import bench_suites

    f = bench_suites.measure(runs=1 if quick else 5)
    return [Row("12 suite reports for 1,000 results (JUnit + HTML)", fmt_s(f["reports"]),
                f"{fmt_s(f['json'])} the same results as JSON", f["reports"] / f["json"], "< 1 s",
                f["reports"] < 1.0)]


# ---------------------------------------------------------------------------------------- 13
def fig_client(bench: BenchEnv, quick: bool) -> list[Row]:
    """The headless client's start and the end of a test reaching it (bench/bench_client.py)."""
    import bench_client

    m = bench_client.measure(bench, runs=1 if quick else 7)
    imported, show, bare = median(m["import"]), median(m["show"]), median(m["pass"])
    tool_end, raw_end = median(m["tool_end"]), median(m["raw_end"])
    return [
        Row("13a headless client start: `import agenttui.cli` (-X importtime)", fmt_s(imported),
            f"{fmt_s(bare)} python -c pass", imported / bare, "<= 80 ms", imported <= 0.080,
            f"a whole `agenttui show` {fmt_s(show)} ({show / bare:.1f}x python -c pass)"),
        Row("13b agent return → `agenttui submit` exit", fmt_s(tool_end),
            f"{fmt_s(raw_end)} the same in docker run --rm", tool_end / raw_end, "<= 100 ms", tool_end <= 0.100),
    ]


# ---------------------------------------------------------------------------------------- 16
def fig_big_logs(bench: BenchEnv, quick: bool) -> list[Row]:
    """A big log read, stored and ingested under a follower (bench/bench_logs.py)."""
    import bench_logs

    lines = 20_000 if quick else 1_000_000
    own = bench_logs.sub_env(bench.image)  # its own server and store, with a cap the whole log fits
    try:
        read = bench_logs.measure_read(own, lines, runs=1 if quick else 3)
        ingested = bench_logs.measure_ingestion(own, lines, runs=1 if quick else 2)
    finally:
        own.close()
    rate, cat_rate = lines / read["tool_s"], lines / read["raw_s"]
    client_mb, server_mb = read["client_growth_kb"] / 1024, read["server_growth_kb"] / 1024
    constant = client_mb < 50 and server_mb < 50
    rows = [Row(f"16a `logs` of {lines:,} lines → /dev/null", f"{rate:,.0f} lines/s",
                f"{cat_rate:,.0f} lines/s cat of the same bytes", rate / cat_rate,
                ">= 500,000 lines/s, peak RSS growth < 50 MB", rate >= 500_000 and constant,
                f"peak RSS growth over a 10-line log's: client +{client_mb:.1f} MB, server +{server_mb:.1f} MB; "
                f"{read['bytes'] / 1e6:.0f} MB printed")]
    storage = ingested["stored_bytes"] / ingested["raw_bytes"]
    rows.append(Row(f"16b log storage, {lines:,} lines from a container", f"{ingested['stored_bytes'] / 1e6:.1f} MB",
                    f"{ingested['raw_bytes'] / 1e6:.1f} MB the raw log", storage, "<= 1.0x", storage <= 1.0,
                    "the store's used pages after the test vs before"))
    tool, raw = ingested["tool_rate"], ingested["raw_rate"]
    rows.append(Row(f"16c log ingestion, {lines:,} lines, `agenttui submit` following", f"{tool:,.0f} lines/s",
                    f"{raw:,.0f} lines/s docker logs -f", tool / raw, ">= 50,000 lines/s", tool >= 50_000,
                    "agent's first stamp → its last line printed by the follower"))
    return rows


# ---------------------------------------------------------------------------------------- 17
def fig_bulk_submit(bench: BenchEnv, quick: bool) -> list[Row]:
    """`agenttui submit --queries`: one request queueing many tests (bench/bench_submit.py)."""
    count, singles = (100, 3) if quick else (1000, 20)
    m = bench_submit.measure_bulk(bench.image, count, singles, runs=1 if quick else 3)
    rate, raw_rate, single_rate = count / m["bulk_s"], count / m["raw_s"], singles / m["single_s"]
    return [Row(f"17 bulk submit, {count:,} tests in one request (`submit --queries`, whole)", f"{rate:,.0f} tests/s",
                f"{raw_rate:,.0f} rows/s sqlite3 insert, one transaction", rate / raw_rate, ">= 500 tests/s",
                rate >= 500, f"one `submit --no-wait` each: {single_rate:,.1f} tests/s")]


# ---------------------------------------------------------------------------------------- 18
def fig_replay(bench: BenchEnv, quick: bool) -> list[Row]:
    """A suite replayed from its cassettes against the same suite live, the fake model taking
    500 ms per call (bench/bench_replay.py, in its own throwaway environment)."""
    import bench_replay

    cases = 2 if quick else 20
    f = bench_replay.measure(bench.image, cases, record_apart=not quick)
    ratio = f["replayed"] / f["live"]
    note = (f"tests' median run {fmt_s(f['live_test'])} live, {fmt_s(f['replayed_test'])} replayed; "
            f"{f['live_calls']:.0f} model calls live, {f['replayed_calls']:.0f} replayed"
            + ("" if quick else f"; the recording run {fmt_s(f['recorded'])}"))
    return [Row(f"18 suite of {cases} cases x {bench_replay.CALLS_PER_CASE} model calls, replayed",
                fmt_s(f["replayed"]), f"{fmt_s(f['live'])} live (500 ms a call)", ratio, "<= 0.35x",
                ratio <= 0.35, note)]


# ---------------------------------------------------------------------------------------- 19
def fig_suite_run(bench: BenchEnv, quick: bool) -> list[Row]:
    """N cases of a trivial agent through `suite run` against the same N queries through one
    `submit --no-wait --queries` and their ends (bench/bench_suite_run.py, its own environment)."""
    import bench_suite_run

    cases, runs = (4, 1) if quick else (100, 3)
    f = bench_suite_run.measure(bench.image, cases, runs)
    ratio = f["suite_s"] / f["bare_s"]
    note = ("every pair: " + ", ".join(f"{a:.1f}/{b:.1f} s" for a, b in zip(f["suite_all"], f["bare_all"]))
            + f" (suite / bare); the `suite run` command's own CPU {fmt_s(f['suite_cpu_s'])}")
    return [Row(f"19 suite run of {cases} cases of a trivial agent (whole `suite run`)", fmt_s(f["suite_s"]),
                f"{fmt_s(f['bare_s'])} `submit --no-wait --queries` + the tests' ends", ratio, "<= 1.2x",
                ratio <= 1.2, note)]


FIGURES: dict[int, Callable[[BenchEnv, bool], list[Row]]] = {
    1: fig_submit, 2: fig_log_latency, 3: fig_ingestion, 4: fig_makespan, 5: fig_cancel,
    6: fig_image_reuse, 7: fig_startup, 8: fig_claims, 9: fig_rss,
    10: fig_recorder, 11: fig_history_scale, 12: fig_suite_reports, 13: fig_client,
    16: fig_big_logs, 17: fig_bulk_submit, 18: fig_replay, 19: fig_suite_run,
}


def print_table(rows: list[Row], out=sys.stdout) -> None:
    headers = ("figure", "agenttui", "baseline (same run)", "ratio", "target", "result")
    table = [(r.figure, r.tool, r.baseline, f"{r.ratio:.2f}x" if r.ratio is not None else "-", r.target, r.result)
             for r in rows]
    widths = [max(len(h), *(len(row[i]) for row in table)) for i, h in enumerate(headers)]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths)) + " |"
    print(line, file=out)
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|", file=out)
    for row in table:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |", file=out)
    notes = [f"{r.figure.split()[0]}: {r.note}" for r in rows if r.note]
    if notes:
        print("notes: " + "; ".join(notes), file=out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one repetition each, smaller loads (CI smoke test)")
    parser.add_argument("--only", help=f"comma-separated figure numbers (of {', '.join(map(str, FIGURES))})")
    parser.add_argument("--image", default=DEFAULT_IMAGE)
    args = parser.parse_args()
    wanted = [int(x) for x in args.only.split(",")] if args.only else list(FIGURES)
    bench = BenchEnv(args.image)
    bench.activate()
    rows: list[Row] = []
    started = time.time()
    load_before = os.getloadavg()[0]
    try:
        for number in wanted:
            began = time.time()
            try:
                rows += FIGURES[number](bench, args.quick)
            except Exception as exc:  # one broken figure must not hide the others
                rows.append(Row(f"{number} {FIGURES[number].__name__[4:]}", f"error: {exc}"[:120], "-", None, "-", None))
            print(f"[bench] figure {number} took {time.time() - began:.1f} s", file=sys.stderr, flush=True)
    finally:
        bench.close()
    cpus = os.cpu_count()
    engine = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"], capture_output=True,
                            text=True).stdout.strip()
    cgroup = subprocess.run(["docker", "info", "--format", "{{.CgroupVersion}}"], capture_output=True,
                            text=True).stdout.strip()
    mode = "quick (1 repetition, smaller loads)" if args.quick else "full (medians of several repetitions)"
    print(f"agenttui benchmarks, {mode}: {cpus} cores, Docker {engine}, cgroup v{cgroup}, "
          f"{time.time() - started:.0f} s; load {load_before:.1f} before, {os.getloadavg()[0]:.1f} after")
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
