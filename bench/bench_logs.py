"""A big log's cost (issue 17): reading it, storing it, and ingesting it while `submit` follows.

Three figures, each against a raw baseline in the same run:
- `agenttui logs ID > /dev/null` of an N-line test (the log written through the store, as the
  log pump writes it), in lines/s, vs `cat` of the same bytes; and the peak RSS growth of the
  client (its own peak, from the kernel) and of the server (VmHWM), both over a 10-line log's;
- the store's growth for a log ingested from a real container, vs the log's raw bytes (the lines
  and their newlines): the pages the store uses more after the test than before;
- ingestion with `agenttui submit` following (its default): an agent prints N lines as fast as
  it can; lines/s from the agent's first stamp to the last line printed by `submit`, vs
  `docker logs -f` of the same program in the same image.

They run in a throwaway environment of their own (its own server and store, `sub_env`) with a
log cap that holds the whole log. The lines are `LINE` below: a counter, a hex id and a timing,
~50 bytes, so the store's compression meets some variety. bench/run.py uses `measure_read`
(figure 16a) and then `measure_ingestion` (16b, 16c) in one such environment.

    .venv/bin/python bench/bench_logs.py [--lines 1000000] [--runs 1] [--image agenttui-base:bookworm]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import AGENTTUI, DEFAULT_IMAGE, BenchEnv, median, proc_status_kb  # noqa: E402

LOG_CAP = str(400_000_000)  # above any log measured here: nothing is dropped
# One line of the log: the same in the store's seed, the agent and the raw program.
LINE = "'%07d step tool=search id=%08x took %.1f ms' % (i, (i * 2654435761) % 4294967296, (i * 7919) % 1000 / 10)"
SEED_BATCH = 5000  # lines a store append carries (the log pump's batches are at most this)

# Runs a command with stdout to a file and prints its exit code, seconds and peak RSS (KB): the
# command is this wrapper's only child, so no other process counts in RUSAGE_CHILDREN.
TIMED_PEAK = (
    "import resource, subprocess, sys, time\n"
    "with open(sys.argv[1], 'wb') as out:\n"
    "    started = time.perf_counter()\n"
    "    code = subprocess.run(sys.argv[2:], stdout=out).returncode\n"
    "    elapsed = time.perf_counter() - started\n"
    "print(code, elapsed, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
)

AGENT = f"""
import sys, time
def run(query):
    n = int(query)
    out = sys.stdout
    out.write("start %.6f\\n" % time.time())
    out.flush()
    for base in range(0, n, 10000):
        out.write("".join({LINE} + "\\n" for i in range(base, min(n, base + 10000))))
    out.flush()
    return "done"
"""
RAW_PROGRAM = (
    "import sys, time\nn = int(sys.argv[1])\nout = sys.stdout\nout.write('start %.6f\\n' % time.time())\n"
    "out.flush()\nfor base in range(0, n, 10000):\n"
    f"    out.write(''.join({LINE} + '\\n' for i in range(base, min(n, base + 10000))))\n"
    "out.flush()\ntime.sleep(1)\n"  # `docker logs -f` may end before the last lines when the container exits
)


line = eval(f"lambda i: {LINE}")  # the one definition of a line, as the agent and the raw program run it


def lines_bytes(n: int) -> int:
    return sum(len(line(i)) + 1 for i in range(n))


def sub_env(image: str) -> BenchEnv:
    """An environment of its own: its own server, store and log cap."""
    return BenchEnv(image, log_max_bytes=LOG_CAP)


# ------------------------------------------------------------------------------ reading
async def _seed(db_url: str, n: int) -> int:
    """A finished test with an n-line log, appended through the store as the log pump does
    (then marked finished, so the server it starts does not run it)."""
    from agenttui.core.domain import TestRequest
    from agenttui.engine.store import Owner, Store

    store = await Store.open(db_url, log_max_bytes=int(LOG_CAP))
    try:
        test = await store.submit(TestRequest.parse(agent_code="def run(q):\n    return q\n", query="q"),
                                  Owner(os.getuid(), "bench"))
        for start in range(0, n, SEED_BATCH):
            batch = [(1.0 + i, "stdout", line(i)) for i in range(start, min(n, start + SEED_BATCH))]
            await store.append_logs(test.id, batch)
    finally:
        await store.close()
    conn = sqlite3.connect(db_url.removeprefix("sqlite+aiosqlite:///"))
    with conn:
        conn.execute("UPDATE tests SET status = 'COMPLETED', claimed_at = ?, finished_at = ? WHERE id = ?",
                     (time.time(), time.time(), test.id))
    conn.close()
    return test.id


def _timed_peak(command: list[str], out: Path, env: dict[str, str]) -> tuple[float, int]:
    """(seconds, peak RSS KB) of `command` with its stdout to `out`."""
    done = subprocess.run([sys.executable, "-c", TIMED_PEAK, str(out), *command], env=env, capture_output=True,
                          text=True, timeout=900)
    code, elapsed, peak = done.stdout.split()
    if code != "0":
        raise RuntimeError(f"{' '.join(command)} exited {code}: {done.stderr[-500:]}")
    return float(elapsed), int(peak)


def measure_read(bench: BenchEnv, n: int, runs: int) -> dict[str, float]:
    """`logs` of an n-line test to /dev/null vs `cat` of its bytes: seconds (medians), and the
    peak RSS growth (KB) of the client and the server over a 10-line log's. First in `bench`:
    the logs are written before its server starts."""
    if bench.server_pid() is not None:
        raise RuntimeError("measure_read seeds the store before the server starts: call it first")
    db_url = f"sqlite+aiosqlite:///{bench.db_path}"
    bench.db_path.parent.mkdir(parents=True, exist_ok=True)
    small, huge = asyncio.run(_seed(db_url, 10)), asyncio.run(_seed(db_url, n))
    _, client_small = _timed_peak([AGENTTUI, "logs", str(small)], Path(os.devnull), bench.env)  # starts the server
    pid = bench.server_pid()
    assert pid is not None
    server_before = proc_status_kb(pid, "VmRSS")
    copy = bench.root / "huge.log"
    _timed_peak([AGENTTUI, "logs", str(huge)], copy, bench.env)  # the bytes `cat` reads
    with open(copy, "rb") as log:
        count = sum(1 for _ in log)
    if count != n:
        raise RuntimeError(f"`agenttui logs` printed {count} lines of {n}")
    tool, raw, client_peak = [], [], 0
    for _ in range(runs):
        seconds, peak = _timed_peak([AGENTTUI, "logs", str(huge)], Path(os.devnull), bench.env)
        tool.append(seconds)
        client_peak = max(client_peak, peak)
        raw.append(_timed_peak(["cat", str(copy)], Path(os.devnull), bench.env)[0])
    server_peak = proc_status_kb(pid, "VmHWM")
    return {"tool_s": median(tool), "raw_s": median(raw), "client_growth_kb": client_peak - client_small,
            "server_growth_kb": server_peak - server_before, "bytes": copy.stat().st_size}


# ------------------------------------------------------------------------------ ingesting
def _used_bytes(db: Path) -> int:
    """The bytes of the pages the store uses (the WAL included: page_count reads through it)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        free = conn.execute("PRAGMA freelist_count").fetchone()[0]
        return (pages - free) * page_size
    finally:
        conn.close()


def _follow_rate(cmd: list[str], env: dict[str, str], n: int) -> float:
    """Lines/s from the program's start stamp to the last of its n lines printed by `cmd`."""
    last = (line(n - 1) + "\n").encode()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, bufsize=1 << 20)
    start, done = None, None
    assert proc.stdout is not None
    for text in proc.stdout:
        if text == last:
            done = time.time()
        elif start is None and text.startswith(b"start "):
            start = float(text.split()[1])
    code = proc.wait(timeout=60)
    if code != 0 or start is None or done is None:
        raise RuntimeError(f"{cmd[0]} {cmd[1]}: exit {code}, start {'seen' if start else 'missing'}, "
                           f"last line {'seen' if done else 'missing'}")
    return n / (done - start)


def measure_ingestion(bench: BenchEnv, n: int, runs: int) -> dict[str, float]:
    """An n-line agent followed by `agenttui submit` vs `docker logs -f` of the same program:
    lines/s (medians); and the store's growth per run vs the log's raw bytes."""
    agent = bench.agent(AGENT, name="log_lines.py")
    submit = [AGENTTUI, "submit", str(agent), "--query", str(n), "--egress", "none"]
    bench.cli("submit", str(agent), "--query", "10", "--egress", "none")  # the server up, a container run
    tool, raw, stored = [], [], []
    for _ in range(runs):
        before = _used_bytes(bench.db_path)
        tool.append(_follow_rate(submit, bench.env, n))
        stored.append(_used_bytes(bench.db_path) - before)
        [(test_id, status)] = bench.query("select id, status from tests order by id desc limit 1")
        kept = [text for text in bench.log_texts(test_id) if text[:1].isdigit()]
        if status != "COMPLETED" or kept != [line(i) for i in range(n)]:
            raise RuntimeError(f"the {n}-line test {test_id} ended {status} with {len(kept)} of its lines in order")
        container = subprocess.run(
            ["docker", "run", "-d", "--label", f"agenttui.bench={bench.run_id}", bench.image, "python3", "-c",
             RAW_PROGRAM, str(n)], capture_output=True, text=True, check=True).stdout.strip()
        try:
            raw.append(_follow_rate(["docker", "logs", "-f", container], bench.env, n))
        finally:
            subprocess.run(["docker", "rm", "-f", container], capture_output=True)
    return {"tool_rate": median(tool), "raw_rate": median(raw), "stored_bytes": median(stored),
            "raw_bytes": lines_bytes(n)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--image", default=DEFAULT_IMAGE)
    args = parser.parse_args()
    bench = sub_env(args.image)
    try:
        print(json.dumps({"read": measure_read(bench, args.lines, args.runs),
                          "ingestion": measure_ingestion(bench, args.lines, args.runs)}))
    finally:
        bench.close()


if __name__ == "__main__":
    main()
