"""`queue` and `history` server side (the Service's calls, no socket) with 1k and 50k finished
tests in the store, each against the same rows read by rowid with sqlite3 in the same run.

    .venv/bin/python bench/bench_history.py [--runs N]   # prints one JSON line of seconds

A store of N finished tests (four statuses, five users) with 8 active and 20 queued tests is
written straight into a migrated store (executemany): submitting 50k tests would take minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

STATUSES = ["COMPLETED"] * 14 + ["FAILED"] * 4 + ["TIMED_OUT", "CANCELLED"]
WAITING = ["RUNNING"] * 6 + ["BUILDING"] * 2 + ["QUEUED"] * 20
USERS = [(1000 + n, f"user{n}") for n in range(5)]
COLUMNS = ("request_json", "query", "status", "priority", "owner_uid", "owner_name", "attempt", "backend",
           "cancel_requested", "created_at", "queued_at", "claimed_at", "finished_at", "oom_killed", "log_seq",
           "log_bytes", "log_truncated", "updated_at", "response", "exit_code")


def _row(n: int, status: str) -> tuple[Any, ...]:
    uid, name = USERS[n % len(USERS)]
    start = 1_000_000.0 + n
    finished = status not in ("RUNNING", "BUILDING", "QUEUED")
    return ('{"agent_code": "def run(q): return q", "query": "q"}', f"question {n}", status, n % 3 + 1, uid, name,
            0 if status == "QUEUED" else 1, "docker", False, start, start, None if status == "QUEUED" else start + 1,
            start + 2 + n % 7 if finished else None, False, 10, 400, False, start + 9,
            f"a typical response of a few words {n}" if finished else None, 0 if finished else None)


def build(path: Path, finished: int, *, waiting: bool = True) -> None:
    """A migrated store at `path` holding `finished` finished tests, then (with `waiting`) the
    active and queued ones."""
    from agenttui.engine.store import Store

    async def migrate() -> None:
        await (await Store.open(f"sqlite+aiosqlite:///{path}")).close()

    asyncio.run(migrate())
    rows = [_row(n, STATUSES[n % len(STATUSES)]) for n in range(finished)]
    rows += [_row(finished + n, status) for n, status in enumerate(WAITING if waiting else [])]
    conn = sqlite3.connect(path)
    with conn:
        conn.executemany(f"INSERT INTO tests ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})", rows)
    conn.close()


async def _timed(call: Callable[[], Awaitable[Any]], runs: int) -> tuple[float, Any]:
    result = await call()  # warm: the first call pays for imports and connections
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        result = await call()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def _raw(path: Path, ids: list[int], runs: int) -> float:
    """The same rows, every column, by rowid: what reading them costs at the least."""
    conn = sqlite3.connect(path)
    statement = f"SELECT * FROM tests WHERE rowid IN ({', '.join('?' * len(ids))})"
    times = []
    for _ in range(runs + 1):
        started = time.perf_counter()
        conn.execute(statement, ids).fetchall()
        times.append(time.perf_counter() - started)
    conn.close()
    return statistics.median(times[1:])


async def _measure_store(path: Path, runs: int) -> dict[str, float]:
    from agenttui.core.config import load_settings
    from agenttui.engine.service import Service
    from agenttui.engine.store import Owner, Store

    url = f"sqlite+aiosqlite:///{path}"
    store = await Store.open(url)
    try:
        service = Service(store, load_settings(db_url=url, backend="noop"))
        caller = Owner(*USERS[0])
        queue_s, queue = await _timed(lambda: service.queue(caller), runs)
        history_s, page = await _timed(lambda: service.history(caller, limit=50), runs)
        later_s, _ = await _timed(lambda: service.history(caller, limit=50, before_id=page[-1].id - 500), runs)
    finally:
        await store.close()
    return {"queue": queue_s, "queue_raw": _raw(path, [t.id for t in queue.tests], runs),
            "history": max(history_s, later_s), "history_raw": _raw(path, [v.id for v in page], runs)}


def measure(small: int = 1_000, large: int = 50_000, runs: int = 20) -> dict[str, dict[str, float]]:
    """{"1k"/"50k": {queue, queue_raw, history, history_raw}} in seconds (medians of `runs`);
    history is the slower of the first page and a later page by cursor."""
    figures = {}
    with tempfile.TemporaryDirectory(prefix="atb-history-") as folder:
        for count in (small, large):
            path = Path(folder) / f"history{count}.db"
            build(path, count)
            figures[f"{count // 1000}k"] = asyncio.run(_measure_store(path, runs))
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20)
    print(json.dumps(measure(runs=parser.parse_args().runs)))
