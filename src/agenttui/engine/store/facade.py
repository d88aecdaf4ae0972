"""The Store: every read and write of the persistent store, one transaction each.

SQLite (default) runs in WAL mode with a busy timeout; every write is one short
`BEGIN IMMEDIATE` transaction, so the cap check and the claim see the same state in every
process sharing the file (R-5, R-6). Writes run the driver's own SQL (sql.py), reads
SQLAlchemy Core on the SQLModel tables; callers get detached `TestRecord` / `LogEntry`
objects.
"""

from __future__ import annotations

import dataclasses
import logging
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, Engine, select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import configure_mappers

from agenttui.core.domain import Status, TestRequest
import agenttui.engine.store.calls as calls
import agenttui.engine.store.checks as checks
import agenttui.engine.store.history as history
import agenttui.engine.store.logs as logs
import agenttui.engine.store.queue as queue
import agenttui.engine.store.sql as sql
import agenttui.engine.store.suites as suites
from agenttui.engine.store.driver import Transactions, engines, execute, first
from agenttui.engine.store.gate import status_after
from agenttui.engine.store.logs import Line
from agenttui.engine.store.migrate import migrate
from agenttui.engine.store.records import Fence, Owner, QueueStatus, driver_row_to_test, row_to_test
from agenttui.core.wire import LogEntry
from agenttui.core.suite_wire import SuiteRunView, SuiteSlot
from agenttui.engine.store.tables import CLAIMS, SECRETS, TESTS, ClaimRecord, ModelCallRecord, PackageRecord, TestRecord

log = logging.getLogger(__name__)


class Store(Transactions):
    """Every read and write of the store (see driver.Transactions for how they run)."""

    def __init__(
        self,
        engine: AsyncEngine,
        url: str,
        log_max_bytes: int,
        store_id: str = "",
        sync_engine: Engine | None = None,
    ):
        super().__init__(engine, url, sync_engine)
        self.log_max_bytes = log_max_bytes
        self.store_id = store_id

    # ------------------------------------------------------------------ set-up
    @classmethod
    async def open(cls, url: str, *, log_max_bytes: int = 20_000_000) -> Store:
        configure_mappers()  # model_construct of a table class needs its attributes set up
        engine, sync_engine = engines(url)
        store = cls(engine, url, log_max_bytes, sync_engine=sync_engine)
        try:
            problem = checks.header_problem(url)
            if problem is not None:
                raise sqlite3.DatabaseError(problem)
            if checks.wal_left_behind(url):  # not closed cleanly: check every page (~0.3 s a 140 MB store)
                await store._read_tx(checks.quick_check)
            await store._write_tx(migrate)
            store.store_id = await store._write_tx(_ensure_store_id)
            if store.is_sqlite:
                await store._write_tx(store._raise_id_floor)
        except checks.STORE_ERRORS as exc:
            await store.close()
            raise checks.unusable(url, exc) from None
        return store

    def _raise_id_floor(self, conn: Connection) -> None:
        """Number new tests after every id ever handed out, even when the database lost its
        newest tests with its -wal file (the ids noted beside it, driver.note_test_id)."""
        noted = self.noted_test_id()
        known = int(execute(conn, sql.HIGHEST_TEST_ID).fetchone()[0])
        if noted <= known:
            return
        log.warning(
            "store %s: tests %d to %d are missing (its -wal file was lost after a crash?); "
            "their ids are not given again: new tests are numbered from %d",
            self.url.split("///", 1)[-1], known + 1, noted, noted + 1,
        )
        if execute(conn, sql.SET_TEST_ID_FLOOR, (noted,)).rowcount == 0:
            execute(conn, sql.INSERT_TEST_ID_FLOOR, (noted,))

    # ------------------------------------------------------------------ tests
    async def submit(
        self,
        request: TestRequest,
        owner: Owner,
        *,
        parent_id: int | None = None,
        backend: str = "docker",
        sealed_secrets: str | None = None,
    ) -> TestRecord:
        (test,) = await self.submit_many([(request, sealed_secrets)], owner, parent_id=parent_id, backend=backend)
        return test

    async def submit_many(
        self,
        requests: Sequence[tuple[TestRequest, str | None]],
        owner: Owner,
        *,
        parent_id: int | None = None,
        backend: str = "docker",
        then: Callable[[Connection, list[TestRecord]], Any] | None = None,
    ) -> list[TestRecord]:
        """Queue every (request, sealed secrets) in one transaction: all of them, or none.
        `then(conn, tests)` writes what goes with them in the same transaction (a suite run)."""
        now = time.time()
        rows = [
            dict(
                sql.TEST_DEFAULTS,
                request_json=request.model_dump_json(),
                query=request.query,
                status=status_after(0, Status.CREATED, Status.QUEUED),
                priority=int(request.priority),
                owner_uid=owner.uid,
                owner_name=owner.name,
                parent_id=parent_id,
                backend=backend,
                created_at=now,
                queued_at=now,
                updated_at=now,
            )
            for request, _sealed in requests
        ]

        def body(conn: Connection) -> list[TestRecord]:
            tests = []
            for values, (_request, sealed) in zip(rows, requests):
                row = first(execute(conn, sql.insert_test(tuple(values)), tuple(values.values())))
                assert row is not None
                self.note_test_id(row.id)
                if sealed is not None:
                    execute(conn, sql.INSERT_SECRETS, (row.id, sealed))
                tests.append(driver_row_to_test(vars(row)))
            if then is not None:
                then(conn, tests)
            return tests

        return await self._write_tx(body)

    # ------------------------------------------------------------------ suite runs (docs/suites.md)
    async def create_suite_run(
        self, fields: dict[str, Any], slots: Sequence[SuiteSlot], requests: Sequence[tuple[TestRequest, str | None]],
        owner: Owner, *, backend: str = "docker",
    ) -> tuple[int, list[TestRecord]]:
        """A run and a test per slot, in one transaction: all of it, or nothing."""
        made: list[int] = []

        def record(conn: Connection, tests: list[TestRecord]) -> None:
            run_id = suites.insert_run(conn, fields, owner.uid, owner.name)
            suites.set_slots(conn, run_id, [SuiteSlot(s.case_id, s.repeat, t.id) for s, t in zip(slots, tests)],
                             replace=False)
            made.append(run_id)

        tests = await self.submit_many(requests, owner, backend=backend, then=record)
        return made[0], tests

    async def resume_suite_run(
        self, run_id: int, slots: Sequence[SuiteSlot], requests: Sequence[tuple[TestRequest, str | None]],
        owner: Owner, *, backend: str = "docker",
    ) -> list[TestRecord]:
        """New tests for some slots of a run, replacing their old ones, in one transaction."""

        def record(conn: Connection, tests: list[TestRecord]) -> None:
            suites.set_slots(conn, run_id, [SuiteSlot(s.case_id, s.repeat, t.id) for s, t in zip(slots, tests)],
                             replace=True)

        return await self.submit_many(requests, owner, backend=backend, then=record)

    async def suite_run(self, run_id: int) -> SuiteRunView | None:
        return await self._read_tx(lambda conn: suites.read_run(conn, run_id))

    async def suite_runs(self, *, name: str | None = None, owner_uid: int | None = None,
                         limit: int = 50) -> list[SuiteRunView]:
        return await self._read_tx(lambda conn: suites.list_runs(conn, name=name, owner_uid=owner_uid, limit=limit))

    async def suite_baseline_id(self, name: str) -> int | None:
        return await self._read_tx(lambda conn: suites.baseline_id(conn, name))

    async def bless_suite_run(self, name: str, run_id: int) -> None:
        await self._write_tx(lambda conn: suites.bless(conn, name, run_id))

    async def sealed_secrets(self, test_id: int) -> str | None:
        def body(conn: Connection) -> str | None:
            row = conn.execute(select(SECRETS.c.sealed).where(SECRETS.c.test_id == test_id)).first()
            return row[0] if row else None

        return await self._read_tx(body)

    async def get(self, test_id: int) -> TestRecord | None:
        def body(conn: Connection) -> TestRecord | None:
            row = conn.execute(select(TESTS).where(TESTS.c.id == test_id)).first()
            return row_to_test(row) if row else None

        return await self._read_tx(body)

    async def list_tests(
        self,
        *,
        statuses: Iterable[Status] | None = None,
        owner_uid: int | None = None,
        search: str | None = None,
        ids: Iterable[int] | None = None,
        limit: int = 200,
        newest_first: bool = True,
        before_id: int | None = None,
    ) -> list[TestRecord]:
        """Up to `limit` tests matching every filter, by id; `before_id`: the next page of a
        newest-first listing starts below the last id of the previous one (a cursor, so a
        later page costs what the first does)."""
        return await self._read_tx(
            lambda conn: history.list_tests(conn, statuses, owner_uid, search, ids, limit, newest_first, before_id)
        )

    async def history_page(
        self, *, statuses: Iterable[Status], owner_uid: int | None, search: str | None, limit: int,
        before_id: int | None,
    ) -> tuple[list[Any], dict[int, dict[str, Any]]]:
        """A newest-first page of tests (as `list_tests`, the table's rows) and their model calls'
        totals, read in one transaction: a history page is one trip to the store."""
        def body(conn: Connection) -> tuple[list[Any], dict[int, dict[str, Any]]]:
            rows = history.list_rows(conn, statuses, owner_uid, search, None, limit, True, before_id)
            return rows, calls.totals_for(conn, [row.id for row in rows])

        return await self._read_tx(body)

    async def recent_durations(self, statuses: Iterable[Status], count: int) -> list[float]:
        """Claim-to-end durations of the newest `count` tests of `statuses`."""
        return await self._read_tx(lambda conn: history.recent_durations(conn, statuses, count))

    async def queued_in_order(self) -> list[TestRecord]:
        """QUEUED tests in the order they will be claimed (see queue.next_in_line)."""
        now = time.time()
        return await self._read_tx(lambda conn: queue.queued_in_order(conn, now))

    async def queue_position(self, test_id: int) -> int | None:
        """Where a QUEUED test stands in claim order (1: next); None if it is not queued."""
        return await self._read_tx(lambda conn: queue.position(conn, test_id))

    async def queue_snapshot(self, cap: int) -> tuple[QueueStatus, list[TestRecord], list[TestRecord]]:
        """The active tests (oldest first), the queued ones in claim order and their counts,
        read in one transaction: the counts always match the lists."""
        now = time.time()
        status, active, queued = await self._read_tx(lambda conn: queue.snapshot(conn, now, cap))
        return dataclasses.replace(status, store_problem=self.problem), active, queued

    async def queue_status(self, cap: int) -> QueueStatus:
        return await self._read_tx(lambda conn: queue.status_counts(conn, cap))

    async def active_count(self) -> int:
        return await self._read_tx(lambda conn: int(conn.execute(queue.COUNT_ACTIVE).scalar_one()))

    # ------------------------------------------------------------------ claims & leases
    async def claim(
        self,
        owner: str,
        *,
        cap: int,
        lease_s: float,
        limit: int | None = None,
        only_ids: Iterable[int] | None = None,
    ) -> list[TestRecord]:
        """Atomically move up to `limit` QUEUED tests to BUILDING for `owner`, never letting
        BUILDING+RUNNING exceed `cap` across all processes (R-5, R-6).

        Each claimed test gets, in the claim's transaction, the first line of its attempt's
        log and a fresh secret marking its result record (stored, so an adopter recognises
        the same run's record)."""
        order = queue.ClaimOrder(owner, cap, lease_s, limit, None if only_ids is None else list(only_ids))
        now = time.time()
        return await self._write_tx(lambda conn: queue.claim(conn, order, now))

    async def heartbeat(self, owner: str, test_ids: Iterable[int], lease_s: float) -> set[int]:
        """Renew the lease on every test `owner` still holds; return the ids it holds."""
        ids = list(test_ids)
        if not ids:
            return set()
        expires = time.time() + lease_s
        return await self._write_tx(lambda conn: queue.heartbeat(conn, owner, ids, expires))

    async def expired_leases(self) -> list[TestRecord]:
        now = time.time()
        return await self._read_tx(
            lambda conn: [row_to_test(r) for r in conn.execute(queue.EXPIRED, {"now": now}).all()]
        )

    async def take_over(self, test: TestRecord, new_owner: str, lease_s: float) -> TestRecord | None:
        """Adopt a test whose lease expired; None if someone else got there first."""
        now = time.time()
        return await self._write_tx(lambda conn: queue.take_over(conn, test, new_owner, lease_s, now))

    # ------------------------------------------------------------------ fenced writes
    async def update_fenced(self, test_id: int, fence: Fence, *, note: str | None = None, **values: Any) -> bool:
        """Write fields (and a `note` line of the engine's in the log) only while `fence`
        still holds the test. False: lost it."""
        _no_status(values)
        if note is not None:
            line = [(time.time(), "system", note)]
            return await self._write_tx(
                lambda conn: logs.append(conn, test_id, line, self.log_max_bytes, fence=fence, values=values)
            )
        values["updated_at"] = time.time()
        statement = sql.update_tests(tuple(values), sql.BY_ID_IF_FENCED)
        params = (*values.values(), test_id, fence.owner, fence.attempt)
        return await self._write_tx(lambda conn: execute(conn, statement, params).rowcount == 1)

    async def transition(
        self,
        test_id: int,
        to: Status,
        *,
        fence: Fence | None = None,
        notes: Sequence[str] = (),
        **values: Any,
    ) -> TestRecord | None:
        """Move a test to `to` if the table allows it from its current status, writing the
        engine's `notes` to its log in the same transaction (a follower that sees the end has
        every line).

        With a fence, only the holder of (lease_owner, attempt) may do it: returns None when
        the fence no longer holds. An illegal transition raises IllegalTransition (logged)."""
        cap = self.log_max_bytes
        return await self._write_tx(lambda conn: queue.transition(conn, test_id, to, cap, fence, notes, values))

    async def request_cancel(self, test_id: int) -> TestRecord:
        """Cancel (R-10): a queued test is dequeued at once; an active one is flagged for its
        owner, which stops the container. Returns the test as it now stands."""
        now = time.time()
        return await self._write_tx(lambda conn: queue.request_cancel(conn, test_id, now))

    async def cancel_requested(self, owner: str) -> list[int]:
        return await self._read_tx(
            lambda conn: [r[0] for r in conn.execute(queue.CANCEL_REQUESTED, {"owner": owner}).all()]
        )

    # ------------------------------------------------------------------ logs
    async def append_logs(
        self,
        test_id: int,
        lines: Sequence[Line],
        *,
        fence: Fence | None = None,
        cursor: str | None = None,
        **values: Any,
    ) -> bool:
        """Append (ts, stream, text) lines in one transaction, with the backend cursor that
        follows them, so a resumed stream neither repeats nor skips (R-6), and any other
        `values` of the test (e.g. the harness record seen among them). Past the per-test cap,
        lines are counted but not stored and one truncation notice is written (R-19)."""
        _no_status(values)
        cap = self.log_max_bytes
        return await self._write_tx(
            lambda conn: logs.append(conn, test_id, lines, cap, fence=fence, cursor=cursor, values=values)
        )

    async def system_log(self, test_id: int, text: str, *, fence: Fence | None = None) -> bool:
        return await self.append_logs(test_id, [(time.time(), "system", text)], fence=fence)

    async def logs(self, test_id: int, *, after_seq: int = 0, limit: int | None = None) -> list[LogEntry]:
        return await self._read_tx(lambda conn: logs.read(conn, test_id, after_seq, limit))

    async def log_json(self, test_id: int, *, after_seq: int, max_chunks: int) -> list[tuple[int, bytes]]:
        """(last line, JSON array of the lines) of the next stored chunks: a log streamed as stored."""
        return await self._read_tx(lambda conn: logs.read_json(conn, test_id, after_seq, max_chunks))

    async def claims(self) -> list[ClaimRecord]:
        rows = await self._read_tx(lambda conn: conn.execute(select(CLAIMS).order_by(CLAIMS.c.id)).all())
        return [ClaimRecord.model_validate(dict(r._mapping)) for r in rows]

    # ------------------------------------------------------------------ model calls (calls.py)
    async def add_model_calls(self, test_id: int, rows: list[tuple[Any, ...]]) -> None:
        """A batch of a test's recorded calls (calls.CallWriter's rows), in one transaction."""
        now = time.time()
        await self._write_tx(lambda conn: calls.insert(conn, test_id, rows, now))

    async def next_model_call_seq(self, test_id: int) -> int:
        return await self._read_tx(lambda conn: calls.next_seq(conn, test_id)) + 1

    async def model_calls(self, test_id: int, *, after_seq: int = 0, limit: int = 1000) -> list[ModelCallRecord]:
        return await self._read_tx(lambda conn: calls.read(conn, test_id, after_seq, limit))

    async def model_call_totals(self, test_id: int) -> dict[str, Any] | None:
        return await self._read_tx(lambda conn: calls.totals(conn, test_id))

    async def model_call_totals_for(self, test_ids: list[int]) -> dict[int, dict[str, Any]]:
        return await self._read_tx(lambda conn: calls.totals_for(conn, test_ids))

    # ------------------------------------------------------------------ packages
    async def record_package(
        self, test_id: int, owner_uid: int, path: str, size: int, *, s3_key: str | None = None,
        url_expires_at: float | None = None,
    ) -> PackageRecord:
        values = (test_id, owner_uid, path, size, time.time(), s3_key, url_expires_at)
        return await self._write_tx(lambda conn: history.record_package(conn, values))

    async def packages_for(self, test_id: int) -> list[PackageRecord]:
        return await self._read_tx(lambda conn: history.packages_for(conn, test_id))

    # ------------------------------------------------------------------ change detection
    async def change_token(self) -> Any:
        """A cheap value that changes whenever any process changes a test or appends a log
        line (both bump tests.updated_at): followers poll it instead of re-reading lists."""
        return await self._read_tx(lambda conn: conn.execute(history.CHANGE_TOKEN).first())

    # ------------------------------------------------------------------ history maintenance
    async def archive_older_than(self, age_s: float, *, owner_uid: int | None = None) -> int:
        """Archive finished tests older than age_s (of one owner, or everyone's) and purge
        their logs (R-20)."""
        cutoff = time.time() - age_s
        return await self._write_tx(lambda conn: history.archive(conn, cutoff, owner_uid))


def _ensure_store_id(conn: Connection) -> str:
    row = first(execute(conn, sql.STORE_ID))
    if row:
        return row.value
    # Servers opening a new store at once: the first insert wins and every one reads its value.
    execute(conn, sql.INSERT_STORE_ID, (uuid.uuid4().hex,))
    return first(execute(conn, sql.STORE_ID)).value


def _no_status(values: dict[str, Any]) -> None:
    """A status only changes through the transition gate (transition, claim, cancel, archive)."""
    if "status" in values:
        raise ValueError("the status of a test changes through Store.transition, not a field write")
