"""Costs that must not grow with a log's size or a batch's length (issue 17), through the real
server and the installed command, each against a raw baseline in the same run:

- `agenttui logs ID > /dev/null` of an N-line log against `cat` of the same bytes, the server's
  and the client's memory growth, and the stored size against the raw bytes;
- one bulk submit of N tests (`agenttui submit --queries`) against N single submits' rate.

    .venv/bin/python bench/bench_scale.py --lines N --tests N   # prints one JSON line

A noop backend runs the tests: what is measured is the store, the server and the client.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import AGENTTUI, BenchEnv, proc_status_kb  # noqa: E402

SINGLE_SUBMITS = 20
# Runs a command with its stdout to /dev/null; prints its wall time and peak RSS (KB).
TIMED_PEAK = (
    "import resource, subprocess, sys, time\n"
    "started = time.perf_counter()\n"
    "code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode\n"
    "print(code, time.perf_counter() - started, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
)


def _line(n: int) -> str:
    return f"{n:07d} agent output of a typical length, with a number {n * 7919 % 100_003} in it"


async def _seed(lines: int) -> tuple[int, int]:
    """A finished-looking test with `lines` lines, appended as the log pump does (batches of
    1000); its id and the raw bytes of its lines."""
    from agenttui.core.config import load_settings
    from agenttui.core.domain import TestRequest
    from agenttui.engine.store import Owner, Store

    settings = load_settings()
    store = await Store.open(settings.resolved_db_url, log_max_bytes=settings.log_max_bytes)
    try:
        test = await store.submit(TestRequest.parse(agent_code="def run(q):\n    return q\n", query="q"),
                                  Owner(os.getuid(), "bench"))
        for start in range(0, lines, 1000):
            await store.append_logs(test.id, [(1e9 + n, "stdout", _line(n)) for n in range(start, min(start + 1000, lines))])
        return test.id, sum(len(_line(n)) + 1 for n in range(lines))
    finally:
        await store.close()


def _timed_peak(cmd: list[str], env: dict[str, str]) -> tuple[float, int]:
    out = subprocess.run([sys.executable, "-c", TIMED_PEAK, *cmd], env=env, capture_output=True, text=True,
                         check=True).stdout.split()
    if out[0] != "0":
        raise RuntimeError(f"{' '.join(cmd)} exited {out[0]}")
    return float(out[1]), int(out[2])


def measure_logs(lines: int) -> dict[str, float]:
    bench = BenchEnv(backend="noop", log_max_bytes=str(400_000_000))
    try:
        bench.activate()
        small_id, _ = asyncio.run(_seed(10))
        test_id, raw_bytes = asyncio.run(_seed(lines))
        _, small_rss = _timed_peak([AGENTTUI, "logs", str(small_id)], bench.env)  # starts the server
        server = bench.server_pid()
        assert server is not None
        server_before = proc_status_kb(server, "VmRSS")
        seconds, client_rss = _timed_peak([AGENTTUI, "logs", str(test_id)], bench.env)
        server_peak = proc_status_kb(server, "VmHWM")
        plain = bench.root / "plain.log"
        plain.write_text("".join(_line(n) + "\n" for n in range(lines)))
        cat_s, _ = _timed_peak(["cat", str(plain)], bench.env)
        stored = bench.query("select sum(length(data)) from log_chunks where test_id=?", test_id)[0][0]
        return {
            "lines": lines, "logs_s": seconds, "cat_s": cat_s, "server_growth_kb": server_peak - server_before,
            "client_growth_kb": client_rss - small_rss, "stored_bytes": stored, "raw_bytes": raw_bytes,
        }
    finally:
        bench.close()


def measure_bulk(tests: int) -> dict[str, float]:
    bench = BenchEnv(backend="noop", max_concurrent="1", noop_run_s="3600")
    try:
        agent = bench.agent("def run(query):\n    return query\n")
        queries = bench.root / "queries.txt"
        queries.write_text("".join(f"question {n}\n" for n in range(tests)))
        bench.cli("submit", str(agent), "--query", "warm", "--no-wait")  # the server is up
        started = time.perf_counter()
        for n in range(SINGLE_SUBMITS):
            bench.cli("submit", str(agent), "--query", f"single {n}", "--no-wait")
        single_s = (time.perf_counter() - started) / SINGLE_SUBMITS
        started = time.perf_counter()
        ids = bench.cli("submit", str(agent), "--queries", str(queries)).stdout.split()
        bulk_s = time.perf_counter() - started
        if len(ids) != tests:
            raise RuntimeError(f"{len(ids)} ids for {tests} queries")
        return {"tests": tests, "bulk_s": bulk_s, "single_s": single_s}
    finally:
        bench.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--tests", type=int, default=1000)
    args = parser.parse_args()
    print(json.dumps({**measure_logs(args.lines), **measure_bulk(args.tests)}))


if __name__ == "__main__":
    main()
