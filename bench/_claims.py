"""Store workloads for bench/run.py (figures 8 and 9), each in fresh SQLite files.

    python bench/_claims.py N DIR            # claims/s: 4 orchestrators (noop), 4 store.claim loops, raw sqlite3
    python bench/_claims.py history N PATH   # a store holding N finished tests (10 log lines each)

Prints one JSON line with the figures (claims mode).
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

PROCESSES = 4
AGENT = "def run(query):\n    return query\n"


def _url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


async def _fill(path: Path, n: int) -> None:
    from agenttui.core.domain import TestRequest
    from agenttui.engine.store import Owner, Store

    store = await Store.open(_url(path))
    request = TestRequest.parse(agent_code=AGENT, query="claim me", egress="none")
    owner = Owner.current()
    for _ in range(n):
        await store.submit(request, owner, backend="noop")
    await store.close()


async def _orchestrator_worker(path: Path) -> None:
    from agenttui.backends.noop import NoopBackend
    from agenttui.core.config import load_settings
    from agenttui.engine.orchestrator import Orchestrator
    from agenttui.engine.store import Store

    settings = load_settings(backend="noop")  # default cap (10), default polling
    store = await Store.open(_url(path), log_max_bytes=settings.log_max_bytes)
    orchestrator = Orchestrator(store, NoopBackend(), settings)
    idle = False

    async def watch() -> None:
        nonlocal idle
        while True:
            status = await store.queue_status(settings.max_concurrent)
            if status.queued == 0 and status.running == 0:
                idle = True
                orchestrator.wake()
                return
            await asyncio.sleep(0.1)

    watcher = asyncio.create_task(watch())
    await orchestrator.run(until=lambda: idle)
    watcher.cancel()
    await store.close()


async def _claim_worker(path: Path) -> None:
    from agenttui.engine.store import Store

    store = await Store.open(_url(path))
    owner = f"claimer-{os.getpid()}"
    while await store.claim(owner, cap=10**9, lease_s=600, limit=1):
        pass
    await store.close()


def _raw_fill(path: Path, n: int) -> None:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("create table t (id integer primary key, status text, owner text, ts real)")
    conn.execute("create index ix_t_status on t (status, id)")
    conn.executemany("insert into t (status) values ('QUEUED')", [()] * n)
    conn.commit()
    conn.close()


def _raw_worker(path: Path) -> None:
    """The ceiling: one claim = BEGIN IMMEDIATE, pick the first queued row, mark it, COMMIT."""
    conn = sqlite3.connect(path, timeout=60, isolation_level=None)
    conn.execute("PRAGMA synchronous=NORMAL")
    owner = str(os.getpid())
    while True:
        conn.execute("BEGIN IMMEDIATE")
        row = conn.execute("select id from t where status='QUEUED' order by id limit 1").fetchone()
        if row is None:
            conn.execute("COMMIT")
            return
        conn.execute("update t set status='CLAIMED', owner=?, ts=? where id=?", (owner, time.time(), row[0]))
        conn.execute("COMMIT")


def _run_workers(mode: str, path: Path) -> None:
    procs = [subprocess.Popen([sys.executable, __file__, "worker", mode, str(path)]) for _ in range(PROCESSES)]
    for proc in procs:
        if proc.wait(timeout=600) != 0:
            raise SystemExit(f"{mode} worker failed")


def _claim_rate(path: Path, n: int, table: str = "claims", column: str = "ts") -> float:
    conn = sqlite3.connect(path)
    stamps = sorted(r[0] for r in conn.execute(f"select {column} from {table} where {column} is not null"))
    conn.close()
    if len(stamps) < n:
        raise SystemExit(f"only {len(stamps)} of {n} claimed in {path}")
    return (n - 1) / (stamps[-1] - stamps[0])


def claims(n: int, folder: Path) -> dict[str, float]:
    folder.mkdir(parents=True, exist_ok=True)
    figures = {}
    for mode in ("orchestrators", "store"):
        path = folder / f"{mode}.db"
        asyncio.run(_fill(path, n))
        _run_workers(mode, path)
        figures[mode] = _claim_rate(path, n)
    raw = folder / "raw.db"
    _raw_fill(raw, n)
    _run_workers("raw", raw)
    figures["raw"] = _claim_rate(raw, n, table="t")
    return figures


def _ten_lines(test_id: int, now: float) -> bytes:
    from agenttui.core.wire import LogEntry
    from agenttui.engine.store import chunks

    return chunks.pack([LogEntry(test_id, seq, now, "stdout", f"log line {seq} of a finished test", 1)
                        for seq in range(1, 11)])


async def history(n: int, path: Path) -> None:
    """N finished tests (COMPLETED, with a response and metrics), 10 log lines each."""
    from sqlalchemy import text

    from agenttui.engine.store import Store

    await _fill(path, 1 if n else 0)
    store = await Store.open(_url(path))
    if n:
        now = time.time()
        async with store.engine.begin() as conn:
            await conn.execute(text(
                "update tests set status='COMPLETED', attempt=1, claimed_at=:t, running_at=:t, finished_at=:t, "
                "exit_code=0, response='a typical response of a few words, needle', "
                "metrics_json='{\"wall_s\": 1.2, \"build_s\": 0.0, \"peak_memory_bytes\": 12000000}'"), {"t": now})
            while (await conn.execute(text("select count(*) from tests"))).scalar_one() < n:
                await conn.execute(text(
                    "insert into tests (request_json, query, status, priority, owner_uid, owner_name, attempt, "
                    "backend, created_at, queued_at, claimed_at, running_at, finished_at, exit_code, response, "
                    "metrics_json, updated_at, oom_killed, cancel_requested, log_seq, log_bytes, log_truncated) "
                    "select request_json, query, status, priority, owner_uid, owner_name, attempt, backend, "
                    "created_at, queued_at, claimed_at, running_at, finished_at, exit_code, response, metrics_json, "
                    "updated_at, oom_killed, cancel_requested, 10, 400, log_truncated from tests limit :k"),
                    {"k": n - (await conn.execute(text("select count(*) from tests"))).scalar_one()})
            ids = (await conn.execute(text("select id from tests"))).scalars().all()
            await conn.execute(text(
                "insert into log_chunks (test_id, first_seq, last_seq, attempt, data) "
                "values (:test_id, 1, 10, 1, :data)"), [{"test_id": test_id, "data": _ten_lines(test_id, now)} for test_id in ids])
    await store.close()


def main() -> None:
    if sys.argv[1] == "worker":
        mode, path = sys.argv[2], Path(sys.argv[3])
        if mode == "orchestrators":
            asyncio.run(_orchestrator_worker(path))
        elif mode == "store":
            asyncio.run(_claim_worker(path))
        else:
            _raw_worker(path)
    elif sys.argv[1] == "history":
        asyncio.run(history(int(sys.argv[2]), Path(sys.argv[3])))
    else:
        print(json.dumps(claims(int(sys.argv[1]), Path(sys.argv[2]))))


if __name__ == "__main__":
    main()
