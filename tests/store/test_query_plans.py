"""`queue`, `history` (any page, filters, search), a queued test's position and the ETA's typical
duration read only the rows they return, whatever the history's length: on a 50k-test store every
statement they run is planned through an index (no table scan, no sort of the table),
on SQLite (as a store is left, no ANALYZE) and on PostgreSQL (analyzed, as autovacuum does).

The statements are captured while the real Service/Store methods run, then EXPLAINed."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import Connection, event, text

import agenttui.engine.store.calls as calls_module
import agenttui.engine.store.queue as queue_module
from agenttui.core.config import load_settings
from agenttui.core.domain import TERMINAL, Status, TestRequest
from agenttui.engine.service import Service
from agenttui.engine.store import TESTS, Owner, Store
from agenttui.engine.store.tables import CALLS
from agenttui.engine.store.driver import execute, render
import agenttui.engine.store.sql as sql

from ..conftest import IN_CI
from .conftest import PG_URL, _admin

FINISHED = 50_000
OWNERS = [Owner(1000 + n, f"user{n}") for n in range(5)]
ALICE = OWNERS[0]
NEEDLE = "needle"  # in every 500th test's response
SORT_ROWS_ALLOWED = 100  # see _sorts_many
# Of the finished tests: 70% COMPLETED, 20% FAILED, 5% TIMED_OUT, 5% CANCELLED.
SHARES = [Status.COMPLETED] * 14 + [Status.FAILED] * 4 + [Status.TIMED_OUT, Status.CANCELLED]


def _finished_row(n: int) -> dict[str, Any]:
    owner = OWNERS[n % len(OWNERS)]
    start = 1_000_000.0 + n
    return dict(
        sql.TEST_DEFAULTS,
        request_json='{"agent_code": "def run(q): return q", "query": "q"}',
        query=f"question {n}",
        status=SHARES[n % len(SHARES)].value,
        owner_uid=owner.uid,
        owner_name=owner.name,
        attempt=1,
        created_at=start,
        queued_at=start,
        claimed_at=start + 1,
        finished_at=start + 1 + n % 7,
        response=f"answer {n}" + (f" {NEEDLE}" if n % 500 == 0 else ""),
        updated_at=start + 9,
    )


def _call_row(test_id: int, seq: int) -> dict[str, Any]:
    return dict(test_id=test_id, seq=seq, attempt=1, kind="call", provider="ollama", model="llama3.2", status=200,
                streamed=False, started_at=1_000_000.0, ended_at=1_000_001.0, tokens_in=10, tokens_out=20,
                cost_usd=0.0, bytes_up=100, bytes_down=200)


def _waiting_rows() -> list[dict[str, Any]]:
    """Active and queued tests of several users: priorities, equal queue times, users never
    served (last served 0), so a position meets every tie of the claim order."""
    rows = []
    for n in range(40):
        owner = OWNERS[n % 3 if n % 4 else 3]
        status = Status.RUNNING if n < 6 else Status.BUILDING if n < 8 else Status.QUEUED
        claimed = 2_000_000.0 + n if n < 8 else None
        rows.append(
            dict(
                _finished_row(FINISHED + n),
                status=status.value,
                owner_uid=owner.uid,
                owner_name=owner.name,
                priority=(n * 7) % 3 + 1,
                queued_at=2_000_000.0 + n // 5,  # five at a time share a queue time
                claimed_at=claimed,
                finished_at=None,
                response=None,
            )
        )
    return rows


async def _fill(url: str) -> None:
    store = await Store.open(url)
    try:
        rows = [_finished_row(n) for n in range(FINISHED)]
        for start in range(0, FINISHED, 10_000):
            batch = rows[start : start + 10_000]
            await store._write_tx(lambda conn, batch=batch: conn.execute(TESTS.insert(), batch))
        await store._write_tx(lambda conn: conn.execute(TESTS.insert(), _waiting_rows()))
        # Two model calls a test: a history page reads its tests' call totals (the recorder).
        calls = [_call_row(n // 2 + 1, n % 2 + 1) for n in range(2 * FINISHED)]
        for start in range(0, len(calls), 20_000):
            batch = calls[start : start + 20_000]
            await store._write_tx(lambda conn, batch=batch: conn.execute(CALLS.insert(), batch))
        if not store.is_sqlite:
            async with store.engine.connect() as conn:
                await conn.execution_options(isolation_level="AUTOCOMMIT")
                await conn.execute(text("ANALYZE tests"))
                await conn.execute(text("ANALYZE model_calls"))
    finally:
        await store.close()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def big_store(request, tmp_path_factory):
    """The URL of a store holding 50k finished tests (built once per module and database)."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('plans') / 'store.db'}"
        asyncio.run(_fill(url))
        yield url
        return
    _require_postgres()
    name = f"agenttui_plans_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    url = PG_URL.rsplit("/", 1)[0] + "/" + name
    try:
        asyncio.run(_fill(url))
        yield url
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _require_postgres() -> None:
    if PG_URL:
        return
    if IN_CI:
        pytest.fail("CI=true but AGENTTUI_TEST_PG_URL is not set (scripts/test.sh sets it)")
    pytest.skip("no PostgreSQL: run scripts/dev-postgres.sh and set AGENTTUI_TEST_PG_URL")


# ---------------------------------------------------------------------------- the plan check
def plan_problems(conn: Connection, statement: str, params: Any) -> tuple[list[str], str]:
    """What in the plan of `statement` (in the connection's paramstyle) reads more than the
    rows it returns: a scan of a whole table or index, or a sort in the database. Also the
    plan's text, for the assertion's message."""
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    if conn.dialect.name == "sqlite":
        cursor.execute("EXPLAIN QUERY PLAN " + statement, params)
        details = [row[3] for row in cursor.fetchall()]
        subqueries = {m.group(1) for d in details if (m := re.match(r"(?:MATERIALIZE|CO-ROUTINE) (\w+)", d))}
        problems = [
            d for d in details
            if "USE TEMP B-TREE" in d or ((m := re.match(r"SCAN (\w+)", d)) and m.group(1) not in subqueries)
        ]
        return problems, "\n".join(details)
    cursor.execute("EXPLAIN " + statement, params)
    lines = [row[0] for row in cursor.fetchall()]
    return [line for line in lines if "Seq Scan" in line or _sorts_many(line)], "\n".join(lines)


def _sorts_many(plan_line: str) -> bool:
    """A PostgreSQL Sort of more than a page of rows: the planner may sort what an index
    condition already narrowed to a few rows (one user's waiting tests, a search's matches of
    one status), which costs what reading them does; more is a sort of the history."""
    sort = re.search(r"\bSort\b.*\brows=(\d+)", plan_line)
    return sort is not None and int(sort.group(1)) > SORT_ROWS_ALLOWED


class Captured:
    """The SELECTs a store operation runs, in the connection's paramstyle."""

    def __init__(self) -> None:
        self.statements: list[tuple[str, Any]] = []

    def add(self, statement: str, params: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            self.statements.append((statement, params))


async def _captured(
    url: str, monkeypatch: pytest.MonkeyPatch, operation: Callable[[Service], Awaitable[Any]]
) -> tuple[Any, list[tuple[str, Any, list[str], str]]]:
    """Run `operation` on a Service of the store at `url`; its result and, for every SELECT it
    ran, (statement, params, plan problems, plan)."""
    settings = load_settings(db_url=url, backend="noop")
    store = await Store.open(url)
    captured = Captured()
    engine = store.sync_engine if store.is_sqlite else store.engine.sync_engine

    def on_core(_conn, _cursor, statement, params, _context, _many):
        captured.add(statement, params)

    def on_driver(conn, template, params=(), **kwargs):
        captured.add(render(template, conn.dialect.paramstyle, conn.dialect.name), params)
        return execute(conn, template, params, **kwargs)

    event.listen(engine, "before_cursor_execute", on_core)
    monkeypatch.setattr(queue_module, "execute", on_driver)
    monkeypatch.setattr(calls_module, "execute", on_driver)  # a history page's call totals
    try:
        result = await operation(Service(store, settings))
    finally:
        event.remove(engine, "before_cursor_execute", on_core)
        monkeypatch.undo()
    try:
        plans = await store._read_tx(
            lambda conn: [(s, p, *plan_problems(conn, s, p)) for s, p in captured.statements]
        )
    finally:
        await store.close()
    return result, plans


def _assert_index_plans(plans: list[tuple[str, Any, list[str], str]]) -> None:
    assert plans, "the operation ran no SELECT"
    for statement, params, problems, plan in plans:
        assert not problems, f"{statement}\n  params {params}\nreads more than its rows:\n{plan}"


# ---------------------------------------------------------------------------- the reads
def test_queue_reads_by_index(big_store, monkeypatch):
    async def queue(service: Service):
        counts = await service.store.queue_status(10)  # what the server's status and the orchestrator read
        return counts, await service.queue(ALICE)

    (counts, view), plans = asyncio.run(_captured(big_store, monkeypatch, queue))
    _assert_index_plans(plans)
    assert (counts.running, counts.queued) == (8, 32)
    active = [t for t in view.tests if t.status in (Status.BUILDING, Status.RUNNING)]
    assert [t.id for t in active] == sorted(t.id for t in active) and len(active) == 8  # oldest first
    assert len(view.tests) == 40


def test_history_pages_by_cursor_read_by_index(big_store, monkeypatch):
    async def pages(service: Service):
        first = await service.history(ALICE, limit=50)
        second = await service.history(ALICE, limit=50, before_id=first[-1].id)
        return first, second

    (first, second), plans = asyncio.run(_captured(big_store, monkeypatch, pages))
    _assert_index_plans(plans)
    assert any("model_calls" in statement for statement, *_ in plans), "the page's call totals were not checked"
    ids = [v.id for v in first + second]
    assert ids == list(range(FINISHED, FINISHED - 100, -1))  # newest first, the second page right after


def test_history_filters_and_search_read_by_index(big_store, monkeypatch):
    async def filtered(service: Service):
        failed = await service.store.list_tests(statuses=[Status.FAILED], limit=50, before_id=40_000)
        mine = await service.history(ALICE, limit=50, mine=True)
        found = await service.history(ALICE, limit=5, search=NEEDLE)
        return failed, mine, found

    (failed, mine, found), plans = asyncio.run(_captured(big_store, monkeypatch, filtered))
    _assert_index_plans(plans)
    assert len(failed) == 50 and {t.status for t in failed} == {Status.FAILED} and failed[0].id < 40_000
    assert [t.id for t in failed] == sorted((t.id for t in failed), reverse=True)
    assert len(mine) == 50 and {v.owner_uid for v in mine} == {ALICE.uid}
    assert [v.id for v in found] == [n + 1 for n in range(FINISHED - 1, 0, -1) if n % 500 == 0][:5]  # ids from 1


def test_typical_duration_reads_by_index(big_store, monkeypatch):
    typical, plans = asyncio.run(_captured(big_store, monkeypatch, lambda service: service._typical_duration()))
    _assert_index_plans(plans)
    assert 1 <= typical <= 7


def test_a_queued_tests_position_is_counted_by_index_not_read_from_the_queue(big_store, monkeypatch):
    """Each position is where the whole claim order places the test, and showing it reads one
    whole test (itself), not the queue: the rest are counts on the users' lines."""

    async def order_of(service: Service):
        return [t.id for t in await service.store.queued_in_order()]

    order, _plans = asyncio.run(_captured(big_store, monkeypatch, order_of))

    async def shows(service: Service):
        return [await service.show(ALICE, test_id) for test_id in order]

    shown, plans = asyncio.run(_captured(big_store, monkeypatch, shows))
    assert [v.position for v in shown] == list(range(1, len(order) + 1))
    assert all(v.eta_s is not None for v in shown)
    _assert_index_plans(plans)
    whole_tests = asyncio.run(_rows_returned(big_store, [p for p in plans if "request_json" in p[0]]))
    assert whole_tests == len(order)


async def test_positions_follow_the_claim_order_when_users_tie(store):
    """Users never served (last served 0 for all) and a user with running tests: every queued
    test's position is its place in queued_in_order."""
    users = [Owner(2000 + n, f"u{n}") for n in range(3)]
    for n in range(24):
        request = TestRequest.parse(agent_code="def run(q): return q", query=f"q{n}", priority=(n * 5) % 3 + 1)
        await store.submit(request, users[n % 3 if n % 5 else 0])
    await store.claim("w", cap=2, lease_s=60, only_ids=[1, 2])  # users 0 and 1 have one running each
    order = [t.id for t in await store.queued_in_order()]
    assert [await store.queue_position(test_id) for test_id in order] == list(range(1, len(order) + 1))
    assert await store.queue_position(1) is None  # running: no place in the queue


async def _rows_returned(url: str, plans: list[tuple[str, Any, list[str], str]]) -> int:
    """How many rows the statements return, run again."""
    store = await Store.open(url)

    def count(conn: Connection) -> int:
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        total = 0
        for statement, params, _problems, _plan in plans:
            cursor.execute(statement, params)
            total += len(cursor.fetchall())
        return total

    try:
        return await store._read_tx(count)
    finally:
        await store.close()


# ---------------------------------------------------------------------------- the check itself
def test_the_plan_check_catches_a_query_without_its_index(big_store):
    """The check is not blind: history as it was read before (every finished test sorted by
    id), and a page ordered by a column no index has, are caught."""
    terminal = ", ".join(f"'{s.value}'" for s in sorted(TERMINAL))
    unindexed = "SELECT id FROM tests WHERE response LIKE ? ORDER BY finished_at DESC LIMIT 50"
    whole_history = f"SELECT * FROM tests WHERE status IN ({terminal}) ORDER BY id DESC LIMIT 50"

    async def check():
        store = await Store.open(big_store)
        try:
            def plans(conn: Connection):
                template = render(unindexed, conn.dialect.paramstyle, conn.dialect.name)
                return plan_problems(conn, template, ("%x%",)), plan_problems(conn, whole_history, ())

            return store.is_sqlite, await store._read_tx(plans)
        finally:
            await store.close()

    is_sqlite, ((unindexed_problems, _), (whole_problems, whole_plan)) = asyncio.run(check())
    assert unindexed_problems
    if is_sqlite:  # PostgreSQL walks the primary key backwards for this one: no sort, no table scan
        assert any("TEMP B-TREE" in p for p in whole_problems), whole_plan
