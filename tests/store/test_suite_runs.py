"""Suite runs in the store (issue 20), on SQLite and PostgreSQL: a store written by version 0007
gains the suite tables and keeps its tests; a run and its tests are stored in one transaction (all
or none); a resume replaces only the slots it is given; a run's id is never reused; one baseline
per suite name."""

from __future__ import annotations

import asyncio

import pytest

from agenttui.core.domain import TestRequest
from agenttui.core.suite_wire import SuiteSlot
from agenttui.engine.store import Owner, Store

from .test_migrations import FIRST_VERSION_ROWS

PREVIOUS_ROWS = [row for row in FIRST_VERSION_ROWS if "log_lines" not in row]  # 0007 keeps logs in chunks


async def _fill_at_0007(url: str) -> None:
    """A store as version 0007 left it, with its tests."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    from agenttui.engine.store import MIGRATIONS_DIR

    engine = create_async_engine(url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))

    def fill(sync_conn):
        config.attributes["connection"] = sync_conn
        command.upgrade(config, "0007")
        for statement in PREVIOUS_ROWS:
            sync_conn.execute(text(statement))

    async with engine.begin() as conn:
        await conn.run_sync(fill)
    await engine.dispose()

ALICE = Owner(1000, "alice")


def fields(name: str = "greeter") -> dict:
    return dict(name=name, suite_digest="s" * 64, agent_digest="a" * 64, repeat=2, suite_json='{"cases": []}')


def requests(count: int) -> list:
    return [(TestRequest.parse(agent_code="def run(q):\n    return q\n", query=f"q{n}"), None) for n in range(count)]


def test_a_store_of_version_0007_gets_suite_runs_and_keeps_its_tests(store_url):
    asyncio.run(_fill_at_0007(store_url))

    async def check():
        store = await Store.open(store_url)
        try:
            assert (await store.get(1)).response == "old answer"
            slots = [SuiteSlot("greets", 1), SuiteSlot("greets", 2)]
            run_id, tests = await store.create_suite_run(fields(), slots, requests(2), ALICE)
            run = await store.suite_run(run_id)
            assert [(s.case_id, s.repeat, s.test_id) for s in run.slots] == [
                ("greets", 1, tests[0].id), ("greets", 2, tests[1].id)]
            assert tests[0].id > 2  # after the old tests
        finally:
            await store.close()

    asyncio.run(check())


async def test_runs_are_stored_with_their_tests_all_or_none(store):
    slots = [SuiteSlot("a", 1), SuiteSlot("b", 1)]
    run_id, tests = await store.create_suite_run(fields(), slots, requests(2), ALICE)
    run = await store.suite_run(run_id)
    assert (run.name, run.owner_name, run.repeat, run.baseline) == ("greeter", "alice", 2, False)
    assert [t.query for t in tests] == ["q0", "q1"]
    before = len(await store.list_tests(limit=100))
    with pytest.raises(Exception):  # the second test's secrets row cannot be written: nothing stays
        await store.create_suite_run(fields(), slots, [requests(1)[0], (requests(1)[0][0], object())], ALICE)
    assert len(await store.list_tests(limit=100)) == before
    assert [r.id for r in await store.suite_runs()] == [run_id]

    # A resume gives some slots new tests and leaves the rest.
    (again,) = await store.resume_suite_run(run_id, [SuiteSlot("b", 1)], requests(1), ALICE)
    run = await store.suite_run(run_id)
    assert [(s.case_id, s.test_id) for s in run.slots] == [("a", tests[0].id), ("b", again.id)]

    # One baseline per suite name; blessing another run moves it.
    await store.bless_suite_run("greeter", run_id)
    second, _ = await store.create_suite_run(fields(), [SuiteSlot("a", 1)], requests(1), ALICE)
    assert (await store.suite_run(run_id)).baseline and not (await store.suite_run(second)).baseline
    await store.bless_suite_run("greeter", second)
    assert await store.suite_baseline_id("greeter") == second
    assert [r.id for r in await store.suite_runs(name="greeter")] == [second, run_id]
    assert await store.suite_runs(name="other") == []
    assert await store.suite_runs(owner_uid=1) == []


async def test_a_run_id_is_never_reused(sqlite_store):
    from sqlalchemy import delete

    from agenttui.engine.store.tables import SUITE_RUNS

    first, _ = await sqlite_store.create_suite_run(fields(), [SuiteSlot("a", 1)], requests(1), ALICE)
    await sqlite_store._write_tx(lambda conn: conn.execute(delete(SUITE_RUNS)))
    second, _ = await sqlite_store.create_suite_run(fields(), [SuiteSlot("a", 1)], requests(1), ALICE)
    assert second > first
