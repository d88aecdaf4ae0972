"""A suite's own cost (issue 20, docs/suites.md): N cases of a trivial agent through `agenttui
suite run` against the same N queries through `agenttui submit --no-wait --queries` in one run.

Both in the same throwaway environment and server (Docker backend, egress none, max_concurrent
10, the warm pool on), alternating, after a warm-up burst as wide as the cap (so neither side
finds a pool the other warmed), each run starting once the pool has refilled. `suite run` is timed whole: the file
read and checked, the run stored and its tests queued in one request, followed, each judged, the
report printed (`--json`) and the command's exit. The baseline is the bare work: the one submit
command queueing the same queries, then the tests' ends seen by polling the store every 20 ms
(an observer that costs nothing and is never late by more than that). bench/run.py uses `measure`
for figure 19.

    .venv/bin/python bench/bench_suite_run.py [--cases 100] [--runs 3] [--image agenttui-base:bookworm]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import time
from pathlib import Path

from _common import AGENTTUI, BENCH_LABEL, DEFAULT_IMAGE, BenchEnv, median

AGENT = '''
def run(query):
    return "ok " + query
'''
TERMINAL = ("COMPLETED", "FAILED", "TIMED_OUT", "CANCELLED")
CONCURRENCY = 10  # the default max_concurrent, pinned so the figure does not move with a setting


def suite_file(root: Path, cases: int) -> Path:
    body = 'name = "bench-suite"\nagent = "agent.py"\ntimeout = 120\n' + "".join(
        f'\n[[case]]\nid = "case-{i:03d}"\nquery = "question {i}"\n[[case.expect]]\ntype = "contains"\n'
        f'value = "ok question {i}"\n' for i in range(cases))
    path = root / "suite.toml"
    path.write_text(body)
    return path


def _suite_run(bench: BenchEnv, suite: Path, cases: int) -> tuple[float, float]:
    """The whole command's wall seconds, and its own CPU seconds (user + system)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run([AGENTTUI, "suite", "run", str(suite), "--json"], env=bench.env, capture_output=True,
                          text=True, timeout=900)
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode != 0:
        raise RuntimeError(f"suite run failed ({done.returncode}): {done.stderr[-2000:]}")
    report = json.loads(done.stdout)
    if report["totals"]["passes"] != cases:
        raise RuntimeError(f"suite run: {report['totals']['passes']} of {cases} cases passed")
    return elapsed, cpu


def _submit_and_wait(bench: BenchEnv, agent: Path, queries: Path, cases: int) -> float:
    started = time.perf_counter()
    ids = [int(i) for i in bench.cli("submit", str(agent), "--queries", str(queries), "--no-wait").stdout.split()]
    if len(ids) != cases:
        raise RuntimeError(f"submit --queries printed {len(ids)} ids for {cases} queries")
    marks = ",".join("?" * len(TERMINAL))
    while True:
        rows = bench.query(f"select status, count(*) from tests where id between ? and ? and status in ({marks}) "
                           "group by status", min(ids), max(ids), *TERMINAL)
        if sum(n for _status, n in rows) >= cases:
            break
        time.sleep(0.02)
    elapsed = time.perf_counter() - started
    if dict(rows).get("COMPLETED", 0) != cases:
        raise RuntimeError(f"submit --queries: the tests ended {dict(rows)}")
    return elapsed


def _settle(bench: BenchEnv, quiet_s: float = 1.5, limit_s: float = 30.0) -> None:
    """Wait until the warm pool has refilled after the last burst (the bench's containers stop
    changing): a run that starts while it refills shares the CPUs with those docker creates."""
    last, since, deadline = None, time.monotonic(), time.monotonic() + limit_s
    while time.monotonic() < deadline:
        now = subprocess.run(["docker", "ps", "-aq", "--filter", f"label={BENCH_LABEL}={bench.run_id}"],
                             capture_output=True, text=True).stdout.split()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return
        time.sleep(0.25)


def measure(image: str = DEFAULT_IMAGE, cases: int = 100, runs: int = 3) -> dict[str, float]:
    """Median wall seconds of the suite run and of the bare submit + wait, over `runs` pairs."""
    bench = BenchEnv(image, max_concurrent=str(CONCURRENCY))
    try:
        agent = bench.agent(AGENT)
        suite = suite_file(bench.root, cases)
        queries = bench.root / "queries.txt"
        queries.write_text("".join(f"question {i}\n" for i in range(cases)))
        bench.cli("submit", str(agent), "--query", "warm")  # the server up, the image built
        warm = bench.root / "warm.txt"  # a burst as wide as the cap: the warm pool keeps that many
        warm.write_text("".join(f"warm {i}\n" for i in range(CONCURRENCY)))
        _submit_and_wait(bench, agent, warm, CONCURRENCY)
        suite_s, bare_s, cpu_s = [], [], []
        for n in range(runs):
            order = (("suite", "bare") if n % 2 == 0 else ("bare", "suite"))
            for which in order:
                _settle(bench)
                if which == "suite":
                    wall, cpu = _suite_run(bench, suite, cases)
                    suite_s.append(wall)
                    cpu_s.append(cpu)
                else:
                    bare_s.append(_submit_and_wait(bench, agent, queries, cases))
        return {"cases": cases, "suite_s": median(suite_s), "bare_s": median(bare_s),
                "suite_all": suite_s, "bare_all": bare_s,
                "suite_cpu_s": median(cpu_s)}
    finally:
        bench.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--image", default=DEFAULT_IMAGE)
    args = parser.parse_args()
    m = measure(args.image, args.cases, args.runs)
    print(f"suite run of {m['cases']} cases: {m['suite_s']:.2f} s (all: {', '.join(f'{v:.2f}' for v in m['suite_all'])})")
    print(f"submit --no-wait --queries + wait: {m['bare_s']:.2f} s (all: {', '.join(f'{v:.2f}' for v in m['bare_all'])})")
    print(f"ratio {m['suite_s'] / m['bare_s']:.2f}x (target <= 1.2x); the suite command's own CPU "
          f"{m['suite_cpu_s']:.2f} s")


if __name__ == "__main__":
    main()
