"""A store made by the first schema version keeps every test and log line when opened by this
version (SQLite and PostgreSQL). The old store is made by the baseline migration alone, then filled
with rows as the first version wrote them; every later migration runs over it."""

import asyncio

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from agenttui.core.domain import TestRequest
from agenttui.engine.store import BASELINE_REVISION, MIGRATIONS_DIR, Owner, Store

FIRST_VERSION_ROWS = [
    """INSERT INTO tests (request_json, query, status, priority, owner_uid, owner_name, attempt, backend,
       cancel_requested, created_at, queued_at, finished_at, oom_killed, log_seq, log_bytes, log_truncated,
       updated_at, response, exit_code)
       VALUES ('{"agent_code": "def run(q): return q", "query": "old"}', 'old', 'COMPLETED', 2, 1000, 'alice',
       1, 'docker', false, 1.0, 1.0, 2.0, false, 2, 20, false, 2.0, 'old answer', 0)""",
    """INSERT INTO tests (request_json, query, status, priority, owner_uid, owner_name, attempt, backend,
       cancel_requested, created_at, queued_at, oom_killed, log_seq, log_bytes, log_truncated, updated_at)
       VALUES ('{"agent_code": "def run(q): return q", "query": "waiting"}', 'waiting', 'QUEUED', 1, 1001,
       'bob', 0, 'docker', false, 3.0, 3.0, false, 0, 0, false, 3.0)""",
    "INSERT INTO log_lines (test_id, seq, ts, stream, text) VALUES (1, 1, 1.5, 'stdout', 'first line')",
    "INSERT INTO log_lines (test_id, seq, ts, stream, text) VALUES (1, 2, 1.6, 'system', '[agenttui] COMPLETED')",
    "INSERT INTO store_meta (key, value) VALUES ('store_id', 'feedfacefeedface')",
]


def test_a_first_version_store_is_upgraded_without_losing_anything(store_url):
    asyncio.run(_fill_with_async(store_url))

    async def check():
        store = await Store.open(store_url)
        try:
            old = await store.get(1)
            assert (old.query, old.status, old.response, old.owner_name) == ("old", "COMPLETED", "old answer", "alice")
            assert [(r.seq, r.text) for r in await store.logs(1)] == [(1, "first line"), (2, "[agenttui] COMPLETED")]
            assert [t.id for t in await store.queued_in_order()] == [2]
            assert store.store_id == "feedfacefeedface"
            async with store.engine.connect() as conn:
                version = await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_revision())
            assert version is not None
            # The upgraded store works: the old queued test can be claimed, new ones stored.
            assert [t.id for t in await store.claim("w", cap=1, lease_s=5)] == [2]
            new = await store.submit(TestRequest.parse(agent_code="def run(q): return q", query="new"), Owner(1, "c"))
            assert new.id == 3
        finally:
            await store.close()

    asyncio.run(check())


async def _fill_with_async(url: str, revision: str = BASELINE_REVISION) -> None:
    """Run the migrations up to `revision` (the baseline: the first version's schema) and the
    first version's inserts over the async driver."""
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))

    def baseline(sync_conn):
        config.attributes["connection"] = sync_conn
        command.upgrade(config, revision)
        for statement in FIRST_VERSION_ROWS:
            sync_conn.execute(text(statement))

    async with engine.begin() as conn:
        await conn.run_sync(baseline)
    await engine.dispose()


def test_a_store_of_the_previous_version_gets_the_history_indexes(store_url):
    """A store left at revision 0004 (tests and lines in it) is upgraded to the indexes that
    read history newest first, and keeps what it held."""
    from sqlalchemy import inspect

    asyncio.run(_fill_with_async(store_url, "0004"))

    async def check():
        store = await Store.open(store_url)
        try:
            async with store.engine.connect() as conn:
                indexes = await conn.run_sync(
                    lambda c: {i["name"]: i["column_names"] for i in inspect(c).get_indexes("tests")}
                )
            assert indexes["ix_tests_status"] == ["status", "id"]
            assert indexes["ix_tests_status_owner"] == ["status", "owner_uid", "id"]
            assert [t.query for t in await store.list_tests()] == ["waiting", "old"]
            assert [t.query for t in await store.list_tests(statuses=["COMPLETED"], before_id=2)] == ["old"]
            assert [(r.seq, r.text) for r in await store.logs(1)] == [(1, "first line"), (2, "[agenttui] COMPLETED")]
        finally:
            await store.close()

    asyncio.run(check())


def test_a_store_of_the_previous_version_keeps_every_log_line_in_chunks(store_url):
    """A store at revision 0006 with logs of several tests and attempts (more lines than one
    chunk holds) keeps every line, in order, with its stream and attempt, when its lines move
    into chunks; appending and reading go on from where the log was."""
    from sqlalchemy.ext.asyncio import create_async_engine

    lines = [(1, 3 + n, 10.0 + n, "stderr" if n % 7 == 0 else "stdout", f"old line {n} ünïcödé", 1 + n // 1500)
             for n in range(2600)]
    lines += [(2, 1 + n, 20.0 + n, "system", f"waiting line {n}", 0) for n in range(5)]

    async def fill():
        await _fill_with_async(store_url, "0006")
        engine = create_async_engine(store_url)
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO log_lines (test_id, seq, ts, stream, text, attempt) "
                                    "VALUES (:t, :s, :ts, :st, :x, :a)"),
                               [dict(t=t, s=s, ts=ts, st=st, x=x, a=a) for t, s, ts, st, x, a in lines])
            await conn.execute(text("UPDATE tests SET log_seq = 2602 WHERE id = 1"))
        await engine.dispose()

    asyncio.run(fill())

    async def check():
        store = await Store.open(store_url)
        try:
            first = [(1, 1, 1.5, "stdout", "first line", 0), (1, 2, 1.6, "system", "[agenttui] COMPLETED", 0)]
            expected = first + [line for line in lines if line[0] == 1]
            expected.sort(key=lambda line: line[1])
            got = [(r.test_id, r.seq, r.ts, r.stream, r.text, r.attempt) for r in await store.logs(1)]
            assert len(got) == len(expected) and got == expected
            assert [(r.seq, r.text) for r in await store.logs(1, after_seq=1500, limit=3)] == [
                (seq, text) for _t, seq, _ts, _st, text, _a in expected[1500:1503]]
            assert [r.text for r in await store.logs(2)] == [f"waiting line {n}" for n in range(5)]
            await store.append_logs(1, [(99.0, "stdout", "new line")])
            assert [(r.seq, r.text) for r in await store.logs(1, after_seq=2602)] == [(2603, "new line")]
        finally:
            await store.close()

    asyncio.run(check())


def test_lines_written_out_of_order_move_into_chunks_in_order_across_the_migrations_pages(store_url):
    """A 0006 store whose lines sit in the table in no order (rowid order is not seq order),
    more of them than the migration reads a page at a time (10,000), the page's end inside a
    chunk: every log comes out whole and in order, each chunk one attempt's consecutive lines."""
    import random

    from sqlalchemy.ext.asyncio import create_async_engine

    first = [(1, 1, 1.5, "stdout", "first line", 0), (1, 2, 1.6, "system", "[agenttui] COMPLETED", 0)]
    lines = [(1, 3 + n, 10.0 + n, "stdout", f"test one line {n}", 1 if n < 3000 else 2) for n in range(8000)]
    lines += [(2, 1 + n, 20.0 + n, "stderr" if n % 3 else "stdout", f"test two line {n}", 0) for n in range(4000)]
    shuffled = lines[:]
    random.Random(17).shuffle(shuffled)

    async def fill():
        await _fill_with_async(store_url, "0006")
        engine = create_async_engine(store_url)
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO log_lines (test_id, seq, ts, stream, text, attempt) "
                                    "VALUES (:t, :s, :ts, :st, :x, :a)"),
                               [dict(t=t, s=s, ts=ts, st=st, x=x, a=a) for t, s, ts, st, x, a in shuffled])
            await conn.execute(text("UPDATE tests SET log_seq = 8002 WHERE id = 1"))
            await conn.execute(text("UPDATE tests SET log_seq = 4000 WHERE id = 2"))
        await engine.dispose()

    asyncio.run(fill())

    async def check():
        store = await Store.open(store_url)
        try:
            for test_id, expected in ((1, first + lines[:8000]), (2, lines[8000:])):
                got = [(r.test_id, r.seq, r.ts, r.stream, r.text, r.attempt) for r in await store.logs(test_id)]
                assert len(got) == len(expected) and got == expected, test_id
            async with store.engine.connect() as conn:
                stored = (await conn.execute(text(
                    "SELECT test_id, first_seq, last_seq, attempt FROM log_chunks ORDER BY test_id, last_seq"))).all()
            attempt_of = {(t, s): a for t, s, _ts, _st, _x, a in first + lines}
            for test_id in (1, 2):
                runs = [(f, last, a) for t, f, last, a in stored if t == test_id]
                assert runs[0][0] == 1 and all(b[0] == a[1] + 1 for a, b in zip(runs, runs[1:])), runs
                assert all(last - f < 1000 for f, last, _a in runs)
                assert all(attempt_of[(test_id, f)] == a == attempt_of[(test_id, last)] for f, last, a in runs)
        finally:
            await store.close()

    asyncio.run(check())
