"""agenttui submit vs a raw `docker run --rm` of the same image, for a trivial agent; and a bulk
submit of many tests in one request vs the same rows written raw.

Two figures from the same runs (N interleaved repetitions, medians): the time to the agent's
first output line on the terminal (target <= 1.5x the raw run), and the whole command, which
waits for the result (target <= 0.5x). Runs in a throwaway XDG directory with egress 'none';
the personal server is started (and warmed) once, as a user's first command would.
bench/run.py uses `measure` for figure 1 of the suite and `measure_bulk` for figure 17: a whole
`agenttui submit --queries FILE` queueing N tests in one request (all validated, all or none),
against the same N rows inserted with sqlite3 in one transaction into a store of the same schema
(the least a write of them costs); the same tests submitted one command each are the note.

    .venv/bin/python bench/bench_submit.py [--runs 7] [--image agenttui-base:bookworm]
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import AGENTTUI, DEFAULT_IMAGE, BenchEnv, first_line_and_exit, median  # noqa: E402

AGENT = "def run(query):\n    print('first output', flush=True)\n    return 'pong: ' + query\n"
RAW_PROGRAM = "print('first output', flush=True); print('pong: ping')"


def measure(bench: BenchEnv, runs: int, egress: str = "none") -> dict[str, list[float]]:
    """Seconds to the first output line and to the exit, for agenttui and the raw baseline."""
    agent = bench.agent(AGENT, name="trivial_agent.py")
    raw_cmd = ["docker", "run", "--rm", "--label", f"agenttui.bench={bench.run_id}", bench.image,
               "python3", "-c", RAW_PROGRAM]
    tool_cmd = [AGENTTUI, "submit", str(agent), "--query", "ping", "--egress", egress]
    first_line_and_exit(raw_cmd, bench.env, "first output")  # warm caches once each, not measured
    first_line_and_exit(tool_cmd, bench.env, "first output")
    result: dict[str, list[float]] = {"raw_first": [], "raw_whole": [], "tool_first": [], "tool_whole": []}
    for _ in range(runs):
        for name, cmd in (("raw", raw_cmd), ("tool", tool_cmd)):
            first, whole = first_line_and_exit(cmd, bench.env, "first output")
            result[f"{name}_first"].append(first)
            result[f"{name}_whole"].append(whole)
    return result


def _raw_insert_s(request_json: str, count: int) -> float:
    """`count` queued rows of `request_json` inserted with sqlite3 in one transaction, into a
    migrated store of its own (WAL, synchronous=NORMAL, as the store runs)."""
    import bench_history

    with tempfile.TemporaryDirectory(prefix="atb-bulk-") as folder:
        path = Path(folder) / "raw.db"
        bench_history.build(path, 0)
        rows = [(request_json, *bench_history._row(n, "QUEUED")[1:]) for n in range(count)]
        columns = bench_history.COLUMNS
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        started = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(f"INSERT INTO tests ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})", rows)
        conn.execute("COMMIT")
        elapsed = time.perf_counter() - started
        conn.close()
    return elapsed


def measure_bulk(image: str, count: int, singles: int, runs: int) -> dict[str, float]:
    """Seconds (medians) of `agenttui submit --queries` queueing `count` tests in one request,
    of `singles` tests submitted one `agenttui submit --no-wait` each, and of the raw insert of
    `count` rows. Its own server, on the noop backend with one test "running" for an hour: the
    tests stay queued, so nothing but the submits is measured."""
    bench = BenchEnv(image, backend="noop", max_concurrent="1", noop_run_s="3600")
    try:
        agent = bench.agent(AGENT, name="bulk_agent.py")
        queries = bench.root / "queries.txt"
        queries.write_text("".join(f"question {n}\n" for n in range(count)))
        bench.cli("submit", str(agent), "--query", "warm", "--no-wait")  # the server up
        bulk, single, raw = [], [], []
        for _ in range(runs):
            started = time.perf_counter()
            ids = bench.cli("submit", str(agent), "--queries", str(queries)).stdout.split()
            bulk.append(time.perf_counter() - started)
            if len(ids) != count:
                raise RuntimeError(f"a bulk submit of {count} tests printed {len(ids)} ids")
            started = time.perf_counter()
            for n in range(singles):
                bench.cli("submit", str(agent), "--query", f"single {n}", "--no-wait")
            single.append(time.perf_counter() - started)
            [(request_json,)] = bench.query("select request_json from tests where id=?", int(ids[-1]))
            raw.append(_raw_insert_s(request_json, count))
        return {"bulk_s": median(bulk), "single_s": median(single), "raw_s": median(raw)}
    finally:
        bench.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--image", default=DEFAULT_IMAGE)
    args = parser.parse_args()
    bench = BenchEnv(args.image)
    try:
        m = measure(bench, args.runs)
    finally:
        bench.close()
    print(f"{'measure':<44}{'median s':>10}{'min s':>9}{'max s':>9}")
    for label, key in (("docker run --rm: first output (baseline)", "raw_first"),
                       ("agenttui submit: first output", "tool_first"),
                       ("docker run --rm: whole run (baseline)", "raw_whole"),
                       ("agenttui submit: whole run (waits)", "tool_whole")):
        values = m[key]
        print(f"{label:<44}{median(values):>10.3f}{min(values):>9.3f}{max(values):>9.3f}")
    for label, key, target in (("first output", "first", 1.5), ("whole run", "whole", 0.5)):
        ratio = median(m[f"tool_{key}"]) / median(m[f"raw_{key}"])
        print(f"ratio agenttui / docker run, {label}: {ratio:.2f}  (target <= {target}, "
              f"{'met' if ratio <= target else 'NOT met'})")


if __name__ == "__main__":
    main()
