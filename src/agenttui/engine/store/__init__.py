"""The persistent store: tests, their log lines, claims with a global cap, leases, fencing.

SQLite (default) runs in WAL mode with a busy timeout; every write is one short
`BEGIN IMMEDIATE` transaction, so the cap check and the claim see the same state in every
process sharing the file (R-5, R-6). Rows are SQLModel tables used through SQLAlchemy Core;
callers get detached `TestRecord` / `LogRecord` objects.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import json
import logging
import os
import pwd
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, Index, bindparam, create_engine, event, func, inspect, or_, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.orm import configure_mappers
from sqlalchemy.pool import StaticPool
from sqlmodel import Field, SQLModel

from agenttui.core.domain import (
    ACTIVE,
    IllegalTransition,
    Status,
    TestRequest,
    check_transition,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

ACTIVE_VALUES = tuple(s.value for s in ACTIVE)
CLAIM_LOCK_KEY = 0x61676E74  # "agnt": the advisory lock claims take on PostgreSQL
MIGRATION_LOCK_KEY = 0x61676E75  # ... and the one schema upgrades take


class StoreMeta(SQLModel, table=True):
    __tablename__ = "store_meta"
    key: str = Field(primary_key=True)
    value: str


class TestRecord(SQLModel, table=True):
    """One test: its request, where it is in its life cycle, who runs it, what it produced."""

    __test__ = False
    __tablename__ = "tests"
    __table_args__ = (
        Index("ix_tests_queue", "status", "priority", "queued_at", "id"),
        # The claim's reads (see _next_in_line): waiting users, each user's line and
        # running count, and when each user was last served.
        Index("ix_tests_status_owner", "status", "owner_uid"),
        Index("ix_tests_owner_queue", "owner_uid", "status", "priority", "queued_at", "id"),
        Index("ix_tests_owner_claimed", "owner_uid", "claimed_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    request_json: str
    query: str
    status: str = Field(default=Status.QUEUED.value, index=True)
    priority: int = 2
    owner_uid: int = Field(index=True)
    owner_name: str
    parent_id: int | None = Field(default=None, index=True)
    attempt: int = 0  # execution attempt: incremented by every claim from QUEUED
    backend: str = "docker"
    handle: str | None = None  # container id / task ARN of the current attempt
    image: str | None = None
    log_cursor: str | None = None  # backend's resume position of the log stream
    lease_owner: str | None = Field(default=None, index=True)
    lease_expires_at: float | None = None
    cancel_requested: bool = False
    cancel_requested_at: float | None = None
    created_at: float
    queued_at: float | None = None
    claimed_at: float | None = None
    running_at: float | None = None
    finished_at: float | None = None
    deadline_at: float | None = None  # when RUNNING must end (timeout), survives adoption
    next_attempt_at: float | None = None  # backoff of an infrastructure retry
    exit_code: int | None = None
    oom_killed: bool = False
    failure_kind: str | None = None
    error: str | None = None
    response: str | None = None
    result_json: str | None = None  # the harness record, saved as soon as it is seen
    result_nonce: str | None = None  # per-attempt secret marking the harness record
    metrics_json: str | None = None
    log_seq: int = 0
    log_bytes: int = 0
    log_truncated: bool = False
    updated_at: float

    @property
    def state(self) -> Status:
        return Status(self.status)

    @property
    def request(self) -> TestRequest:
        return _parse_request(self.request_json)

    @property
    def metrics(self) -> dict[str, Any]:
        return json.loads(self.metrics_json) if self.metrics_json else {}

    @property
    def result(self) -> dict[str, Any] | None:
        return json.loads(self.result_json) if self.result_json else None


@functools.lru_cache(maxsize=32)
def _parse_request(request_json: str) -> TestRequest:
    # A request (frozen) is read several times a test; parsing checks the agent's syntax.
    # 32 covers the running tests at the default cap; each holds at most ~0.25 MB.
    return TestRequest.model_validate_json(request_json)


class LogRecord(SQLModel, table=True):
    __tablename__ = "log_lines"
    __table_args__ = (Index("ux_log_lines_test_seq", "test_id", "seq", unique=True),)

    id: int | None = Field(default=None, primary_key=True)
    test_id: int
    seq: int
    ts: float
    stream: str  # stdout | stderr | system
    text: str


class ClaimRecord(SQLModel, table=True):
    """Audit of every claim with the active count seen inside the claim transaction."""

    __tablename__ = "claims"
    id: int | None = Field(default=None, primary_key=True)
    test_id: int
    owner: str
    attempt: int
    active_after: int
    cap: int
    ts: float


class PackageRecord(SQLModel, table=True):
    """A deployment package generated from a test (R-21, R-23)."""

    __tablename__ = "packages"
    id: int | None = Field(default=None, primary_key=True)
    test_id: int = Field(index=True)
    owner_uid: int
    path: str
    size: int
    created_at: float
    s3_key: str | None = None
    url_expires_at: float | None = None


class TestSecretRecord(SQLModel, table=True):
    """A queued or running test's secret values, sealed (agenttui.core.secrets: encrypted with a key
    kept outside the store). Deleted when the test ends; the request itself keeps names only."""

    __test__ = False
    __tablename__ = "test_secrets"
    test_id: int = Field(primary_key=True)
    sealed: str


TESTS = TestRecord.__table__  # type: ignore[attr-defined]
SECRETS = TestSecretRecord.__table__  # type: ignore[attr-defined]
LOGS = LogRecord.__table__  # type: ignore[attr-defined]
CLAIMS = ClaimRecord.__table__  # type: ignore[attr-defined]
PACKAGES = PackageRecord.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Owner:
    """Who submitted a test. From the kernel's view of the caller, never from $USER."""

    uid: int
    name: str

    @classmethod
    def current(cls) -> Owner:
        uid = os.getuid()
        try:
            name = pwd.getpwuid(uid).pw_name
        except KeyError:
            name = str(uid)
        return cls(uid, name)


@dataclass(frozen=True)
class Fence:
    """A writer's claim on a test: writes only land while (lease_owner, attempt) still match."""

    owner: str
    attempt: int


@dataclass(frozen=True)
class QueueStatus:
    running: int  # BUILDING + RUNNING
    queued: int
    cap: int

    @property
    def utilization(self) -> float:
        return round(100.0 * self.running / self.cap, 1) if self.cap else 0.0


def _row_to_test(row: Any) -> TestRecord:
    # A row of our own table, typed by its columns (Boolean reads back as bool): no validation
    # needed; model_validate on the table class cost ~0.15 ms a row of every claim and list.
    return TestRecord.model_construct(**row._mapping)


_LOG_COLUMNS = ("test_id", "seq", "ts", "stream", "text")
_PLACEHOLDERS = {  # DB-API paramstyle → the placeholder of the n-th parameter
    "qmark": lambda n: "?",
    "format": lambda n: "%s",
    "pyformat": lambda n: "%s",  # psycopg takes %s with positional parameters too
    "numeric": lambda n: f":{n}",
    "numeric_dollar": lambda n: f"${n}",
}


# The writes every test makes (its log lines, fenced updates, transitions) run as the driver's
# own SQL: building and compiling a SQLAlchemy statement cost ~0.3 ms each, several times
# a test, which capped the whole lifecycle near 150 tests/s. Templates mark parameters
# with `?` and row locks with `{for_update}`; columns are checked against the table.
_BOOL_COLUMNS = frozenset(c.name for c in TESTS.c if c.type.python_type is bool)
_TEST_COLUMNS = ", ".join(c.name for c in TESTS.c)
_INSERT_LOG = f"INSERT INTO {LOGS.name} ({', '.join(_LOG_COLUMNS)}) VALUES ({', '.join('?' * len(_LOG_COLUMNS))})"
_DELETE_SECRETS = f"DELETE FROM {SECRETS.name} WHERE test_id = ?"
_LOCK_TEST = (
    f"SELECT status, log_seq, log_bytes, log_truncated, lease_owner, attempt FROM {TESTS.name} "
    "WHERE id = ?{for_update}"
)


@functools.lru_cache(maxsize=256)
def _driver_sql(template: str, paramstyle: str, dialect: str) -> str:
    mark = _PLACEHOLDERS[paramstyle]
    parts = template.replace("{for_update}", " FOR UPDATE" if dialect == "postgresql" else "").split("?")
    return parts[0] + "".join(mark(n) + part for n, part in enumerate(parts[1:], 1))


def _driver(conn: Connection, template: str, params: Sequence[Any], *, many: bool = False) -> Any:
    """Run a template on the DB-API connection inside the caller's transaction (through
    SQLAlchemy's exec_driver_sql a statement cost ~40 us, on the cursor ~4 us); `many`:
    `params` is a list of parameter tuples. Returns the DB-API cursor."""
    sql = _driver_sql(template, conn.dialect.paramstyle, conn.dialect.name)
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    if many:
        cursor.executemany(sql, params)
    else:
        cursor.execute(sql, params)
    return cursor


def _first(cursor: Any) -> SimpleNamespace | None:
    """The cursor's first row, its columns as attributes."""
    row = cursor.fetchone()
    return None if row is None else SimpleNamespace(**dict(zip((d[0] for d in cursor.description), row)))


def _update_test(conn: Connection, test_id: int, changes: dict[str, Any]) -> None:
    _driver(conn, _update_tests_sql(tuple(changes), "id = ?"), (*changes.values(), test_id))


@functools.lru_cache(maxsize=256)
def _update_tests_sql(columns: tuple[str, ...], where: str, returning: bool = False) -> str:
    unknown = [c for c in columns if c not in TESTS.c]
    if unknown:
        raise KeyError(f"not columns of {TESTS.name}: {unknown}")
    assignments = ", ".join(f"{c} = ?" for c in columns)
    return f"UPDATE {TESTS.name} SET {assignments} WHERE {where}" + (f" RETURNING {_TEST_COLUMNS}" if returning else "")


def _locked_test(conn: Connection, test_id: int, fence: Fence | None) -> Any:
    """The test's status, log position and lease, locked for this transaction; None when
    `fence` no longer holds it."""
    row = _first(_driver(conn, _LOCK_TEST, (test_id,)))
    if row is None:
        raise KeyError(test_id)
    if fence is not None and (row.lease_owner != fence.owner or row.attempt != fence.attempt):
        return None
    return row


def _test_of_driver_row(row: SimpleNamespace) -> TestRecord:
    """A row of the driver's own SELECT/RETURNING: SQLite hands back booleans as 0/1."""
    values = vars(row)
    for name in _BOOL_COLUMNS:
        if values[name] is not None:
            values[name] = bool(values[name])
    return TestRecord.model_construct(**values)


def _row_to_log(row: Any) -> LogRecord:
    # As _row_to_test: model_validate cost ~30 us a line, seconds of server CPU to follow a
    # 200k-line log; model_construct ~4 us.
    return LogRecord.model_construct(**row._mapping)


class Store:
    """Every read and write of the store. Each operation is one transaction, written as a plain
    function of a synchronous SQLAlchemy connection and run:

    - on SQLite, in a thread (pysqlite): one hand-off per transaction instead of several per
      statement through aiosqlite, so a write holds SQLite's lock for a fraction of a
      millisecond; and all of a process's writes go through one writer thread, so its own
      writers never meet in SQLite's sleeping busy handler (only other processes can);
    - on PostgreSQL, through the async engine's `run_sync` (asyncpg)."""

    def __init__(
        self,
        engine: AsyncEngine,
        url: str,
        log_max_bytes: int,
        store_id: str = "",
        sync_engine: Engine | None = None,
    ):
        self.engine = engine
        self.url = url
        self.log_max_bytes = log_max_bytes
        self.store_id = store_id
        self.is_sqlite = url.startswith("sqlite")
        self.sync_engine = sync_engine
        path = url.split("///", 1)[-1] if self.is_sqlite else ""
        self._lock_path: str | None = f"{path}-writers.lock" if path and path != ":memory:" else None
        self._lock_fd: int | None = None  # opened by the writer thread, on its first write
        self._changed = asyncio.Event()  # set (and replaced) when a write of this process commits
        self._writer_conn: Connection | None = None  # the writer thread's own (SQLite)
        self._writer: ThreadPoolExecutor | None = None
        self._readers: ThreadPoolExecutor | None = None
        if sync_engine is not None:
            self._writer = ThreadPoolExecutor(1, thread_name_prefix="agenttui-store-write")
            self._readers = ThreadPoolExecutor(2, thread_name_prefix="agenttui-store-read")

    # ------------------------------------------------------------------ set-up
    @classmethod
    async def open(cls, url: str, *, log_max_bytes: int = 20_000_000) -> Store:
        configure_mappers()  # model_construct of a table class needs its attributes set up
        sync_engine = None
        if url.startswith("sqlite"):
            path = url.split("///", 1)[-1]
            in_memory = not path or path == ":memory:"
            if not in_memory:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            engine = create_async_engine(url, connect_args={"timeout": 60})
            _install_sqlite_hooks(engine.sync_engine)
            sync_url = make_url(url).set(drivername="sqlite")
            if in_memory:  # one shared connection, or every thread would see its own database
                sync_engine = create_engine(sync_url, poolclass=StaticPool, connect_args={"check_same_thread": False})
            else:
                sync_engine = create_engine(sync_url, connect_args={"timeout": 60, "check_same_thread": False})
            _install_sqlite_hooks(sync_engine)
        else:
            engine = create_async_engine(url, pool_pre_ping=True)
        store = cls(engine, url, log_max_bytes, sync_engine=sync_engine)

        def migrate(conn: Connection) -> None:
            if not store.is_sqlite:
                # Servers starting together must not run the same migration twice.
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            _migrate(conn)

        await store._write_tx(migrate)
        store.store_id = await store._ensure_store_id()
        return store

    async def close(self) -> None:
        await self.engine.dispose()
        if self.sync_engine is not None:
            if self._writer_conn is not None:
                assert self._writer is not None
                await asyncio.get_running_loop().run_in_executor(self._writer, self._writer_conn.close)
            for pool in (self._writer, self._readers):
                assert pool is not None
                await asyncio.to_thread(pool.shutdown)
            self.sync_engine.dispose()
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None

    async def _ensure_store_id(self) -> str:
        def body(conn: Connection) -> str:
            row = conn.execute(select(StoreMeta.__table__).where(StoreMeta.__table__.c.key == "store_id")).first()
            if row:
                return row.value
            value = uuid.uuid4().hex
            conn.execute(StoreMeta.__table__.insert().values(key="store_id", value=value))
            return value

        return await self._write_tx(body)

    async def _write_tx(self, body: Callable[[Connection], T]) -> T:
        """Run `body` as one write transaction; on SQLite it takes the write lock up front
        (BEGIN IMMEDIATE) so read-then-write sequences never deadlock or race between processes."""
        try:
            if self._writer is None:
                async with self._write() as conn:
                    return await conn.run_sync(body)
            return await asyncio.get_running_loop().run_in_executor(self._writer, self._sqlite_tx, body, True)
        finally:
            changed, self._changed = self._changed, asyncio.Event()
            changed.set()

    def next_change(self) -> asyncio.Event:
        """An event set when the next write of this process commits: a follower in the process
        that writes (the server, whose orchestrator stores the lines) wakes at once; changes by
        other processes are only seen by reading again (poll with a timeout on the wait)."""
        return self._changed

    async def _read_tx(self, body: Callable[[Connection], T]) -> T:
        if self._readers is None:
            async with self._read() as conn:
                return await conn.run_sync(body)
        return await asyncio.get_running_loop().run_in_executor(self._readers, self._sqlite_tx, body, False)

    def _sqlite_tx(self, body: Callable[[Connection], T], write: bool) -> T:
        assert self.sync_engine is not None
        if not write:
            with self.sync_engine.connect() as conn, conn.begin():
                return body(conn)
        with self._writers_turn():
            # The writer thread keeps its connection: a pool check-out and reset per write
            # cost as much as a claim's statements.
            conn = self._writer_conn
            if conn is None or conn.closed or conn.invalidated:
                conn = self._writer_conn = self.sync_engine.connect().execution_options(sqlite_immediate=True)
            with conn.begin():
                return body(conn)

    @contextlib.contextmanager
    def _writers_turn(self) -> Iterator[None]:
        """Writers of every process sharing the file queue on one flock before BEGIN IMMEDIATE:
        the kernel wakes the next one the moment the lock is free, where SQLite's busy handler
        would sleep 1, 2, 5, 10... ms between retries (which capped claims at a few hundred a
        second across processes). Without the lock file (read-only directory), SQLite's own
        locking still keeps writes correct."""
        if self._lock_fd is None and self._lock_path is not None:
            try:
                self._lock_fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except OSError as exc:
                log.warning("store: no writers' lock file (%s); relying on SQLite's busy timeout", exc)
                self._lock_path = None
        if self._lock_fd is None:
            yield
            return
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncConnection]:
        """One write transaction on the async engine (PostgreSQL; kept for callers that hold
        an AsyncConnection)."""
        async with self.engine.connect() as conn:
            await conn.execution_options(sqlite_immediate=True)
            async with conn.begin():
                yield conn

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as conn:
            async with conn.begin():
                yield conn

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
        now = time.time()
        check_transition(0, Status.CREATED, Status.QUEUED)
        values = dict(
            request_json=request.model_dump_json(),
            query=request.query,
            status=Status.QUEUED.value,
            priority=int(request.priority),
            owner_uid=owner.uid,
            owner_name=owner.name,
            parent_id=parent_id,
            backend=backend,
            created_at=now,
            queued_at=now,
            updated_at=now,
        )

        def body(conn: Connection) -> TestRecord:
            row = conn.execute(TESTS.insert().values(**values).returning(*TESTS.c)).first()
            if sealed_secrets is not None:
                conn.execute(SECRETS.insert().values(test_id=row.id, sealed=sealed_secrets))
            return _row_to_test(row)

        return await self._write_tx(body)

    async def sealed_secrets(self, test_id: int) -> str | None:
        def body(conn: Connection) -> str | None:
            row = conn.execute(select(SECRETS.c.sealed).where(SECRETS.c.test_id == test_id)).first()
            return row[0] if row else None

        return await self._read_tx(body)

    async def get(self, test_id: int) -> TestRecord | None:
        def body(conn: Connection) -> TestRecord | None:
            row = conn.execute(select(TESTS).where(TESTS.c.id == test_id)).first()
            return _row_to_test(row) if row else None

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
    ) -> list[TestRecord]:
        query = select(TESTS)
        if statuses is not None:
            query = query.where(TESTS.c.status.in_([Status(s).value for s in statuses]))
        if owner_uid is not None:
            query = query.where(TESTS.c.owner_uid == owner_uid)
        if ids is not None:
            query = query.where(TESTS.c.id.in_(list(ids)))
        if search:
            pattern = f"%{search}%"
            query = query.where(
                or_(
                    TESTS.c.query.ilike(pattern),
                    TESTS.c.response.ilike(pattern),
                    TESTS.c.error.ilike(pattern),
                    TESTS.c.owner_name.ilike(pattern),
                    TESTS.c.status.ilike(pattern),
                )
            )
        order = TESTS.c.id.desc() if newest_first else TESTS.c.id.asc()
        query = query.order_by(order).limit(limit)
        return await self._read_tx(lambda conn: [_row_to_test(r) for r in conn.execute(query).all()])

    async def queued_in_order(self) -> list[TestRecord]:
        """QUEUED tests in the order they will be claimed (see _next_in_line)."""
        now = time.time()
        return await self._read_tx(lambda conn: _queued_in_order(conn, now))

    async def queue_snapshot(self, cap: int) -> tuple[QueueStatus, list[TestRecord], list[TestRecord]]:
        """The active tests (oldest first), the queued ones in claim order and their counts,
        read in one transaction: the counts always match the lists."""
        now = time.time()

        def body(conn: Connection) -> tuple[QueueStatus, list[TestRecord], list[TestRecord]]:
            if not self.is_sqlite:  # one snapshot for every statement (SQLite's read tx has one)
                conn.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
            active = [_row_to_test(r) for r in conn.execute(_ACTIVE_TESTS).all()]
            queued = _queued_in_order(conn, now)
            return QueueStatus(running=len(active), queued=len(queued), cap=cap), active, queued

        return await self._read_tx(body)

    async def queue_status(self, cap: int) -> QueueStatus:
        query = select(TESTS.c.status, func.count()).where(
            TESTS.c.status.in_([*ACTIVE_VALUES, Status.QUEUED.value])
        ).group_by(TESTS.c.status)
        counts = dict(await self._read_tx(lambda conn: conn.execute(query).all()))
        running = sum(counts.get(s, 0) for s in ACTIVE_VALUES)
        return QueueStatus(running=running, queued=counts.get(Status.QUEUED.value, 0), cap=cap)

    async def active_count(self) -> int:
        return await self._read_tx(lambda conn: int(conn.execute(_COUNT_ACTIVE).scalar_one()))

    # ------------------------------------------------------------------ claims & leases
    async def claim(
        self,
        owner: str,
        *,
        cap: int,
        lease_s: float,
        limit: int | None = None,
        only_ids: Iterable[int] | None = None,
        start: Callable[[int], tuple[str, dict[str, Any]]] | None = None,
    ) -> list[TestRecord]:
        """Atomically move up to `limit` QUEUED tests to BUILDING for `owner`, never letting
        BUILDING+RUNNING exceed `cap` across all processes (R-5, R-6).

        `start(attempt)` gives each claimed test the first line of its attempt's log and fields
        to set (the orchestrator's result nonce), written in the claim's transaction."""
        now = time.time()
        only = None if only_ids is None else list(only_ids)

        def body(conn: Connection) -> list[Any]:
            if not self.is_sqlite:
                # Count-then-claim is racy under READ COMMITTED: one transaction-level advisory
                # lock makes claims take turns across every server sharing the database, so the
                # cap holds exactly. (SQLite's BEGIN IMMEDIATE already serializes writers.)
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CLAIM_LOCK_KEY})
            owners = conn.execute(_WAITING_OWNERS).all()  # each row also counts the active tests
            if not owners:
                return []
            active = int(owners[0].active)
            free = cap - active if limit is None else min(cap - active, limit)
            if free <= 0:
                return []
            ids = _next_in_line(conn, owners, free, now, only)
            if not ids:
                return []
            rows = conn.execute(
                _CLAIM_UPDATE, {"ids": ids, "owner": owner, "now": now, "expires": now + lease_s}
            ).all()
            by_id = {row.id: row for row in rows}
            claimed = [by_id[i] for i in ids if i in by_id]  # in claim order
            # Writers take turns (the write lock, or the advisory lock), so the count read in
            # this transaction plus what it claimed is what is active when it commits.
            active_after = active + len(claimed)
            if claimed:
                conn.execute(
                    CLAIMS.insert(),
                    [
                        dict(test_id=r.id, owner=owner, attempt=r.attempt, active_after=active_after, cap=cap, ts=now)
                        for r in claimed
                    ],
                )
            records = [dict(r._mapping) for r in claimed]
            if start is not None:
                for record in records:
                    note, fields = start(record["attempt"])
                    position = SimpleNamespace(**record)
                    changes = dict(fields, **self._insert_lines(conn, record["id"], position, [(now, "system", note)]))
                    _update_test(conn, record["id"], changes)
                    record.update(changes)
            return records

        return [TestRecord.model_construct(**record) for record in await self._write_tx(body)]

    async def heartbeat(self, owner: str, test_ids: Iterable[int], lease_s: float) -> set[int]:
        """Renew the lease on every test `owner` still holds; return the ids it holds."""
        ids = list(test_ids)
        if not ids:
            return set()
        now = time.time()
        query = (
            update(TESTS)
            .where(TESTS.c.id.in_(ids))
            .where(TESTS.c.lease_owner == owner)
            .where(TESTS.c.status.in_(ACTIVE_VALUES))
            .values(lease_expires_at=now + lease_s)
            .returning(TESTS.c.id)
        )
        return await self._write_tx(lambda conn: {r[0] for r in conn.execute(query).all()})

    async def expired_leases(self) -> list[TestRecord]:
        now = time.time()
        query = (
            select(TESTS)
            .where(TESTS.c.status.in_(ACTIVE_VALUES))
            .where(or_(TESTS.c.lease_expires_at.is_(None), TESTS.c.lease_expires_at < now))
        )
        return await self._read_tx(lambda conn: [_row_to_test(r) for r in conn.execute(query).all()])

    async def take_over(self, test: TestRecord, new_owner: str, lease_s: float) -> TestRecord | None:
        """Adopt a test whose lease expired; None if someone else got there first."""
        now = time.time()
        query = (
            update(TESTS)
            .where(TESTS.c.id == test.id)
            .where(TESTS.c.status.in_(ACTIVE_VALUES))
            .where(TESTS.c.attempt == test.attempt)
            .where(
                TESTS.c.lease_owner.is_(None)
                if test.lease_owner is None
                else TESTS.c.lease_owner == test.lease_owner
            )
            .where(or_(TESTS.c.lease_expires_at.is_(None), TESTS.c.lease_expires_at < now))
            .values(lease_owner=new_owner, lease_expires_at=now + lease_s, updated_at=now)
            .returning(*TESTS.c)
        )

        def body(conn: Connection) -> TestRecord | None:
            row = conn.execute(query).first()
            return _row_to_test(row) if row else None

        return await self._write_tx(body)

    # ------------------------------------------------------------------ fenced writes
    async def update_fenced(self, test_id: int, fence: Fence, *, note: str | None = None, **values: Any) -> bool:
        """Write fields (and a `note` line of the engine's in the log) only while `fence`
        still holds the test. False: lost it."""
        if note is not None:
            line = [(time.time(), "system", note)]
            return await self._write_tx(lambda conn: self._append_in(conn, test_id, line, fence=fence, values=values))
        values["updated_at"] = time.time()
        sql = _update_tests_sql(tuple(values), "id = ? AND lease_owner = ? AND attempt = ?")
        params = (*values.values(), test_id, fence.owner, fence.attempt)
        return await self._write_tx(lambda conn: _driver(conn, sql, params).rowcount == 1)

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
        now = time.time()

        def body(conn: Connection) -> TestRecord | None:
            row = _locked_test(conn, test_id, fence)
            if row is None:
                log.info("test %s: %s no longer holds it; %s dropped", test_id, fence and fence.owner, to.value)
                return None
            current = Status(row.status)
            try:
                check_transition(test_id, current, to)
            except IllegalTransition:
                log.warning("refused illegal transition of test %s: %s -> %s", test_id, current.value, to.value)
                raise
            if notes:
                values.update(self._insert_lines(conn, test_id, row, [(now, "system", note) for note in notes]))
            values.update(status=to.value, updated_at=now)
            if to.is_terminal:
                values.setdefault("finished_at", now)
                values.setdefault("lease_owner", None)
                values.setdefault("lease_expires_at", None)
            new_row = _first(_driver(
                conn,
                _update_tests_sql(tuple(values), "id = ? AND status = ?", returning=True),
                (*values.values(), test_id, current.value),
            ))
            if new_row is not None and to.is_terminal:
                _driver(conn, _DELETE_SECRETS, (test_id,))
            return _test_of_driver_row(new_row) if new_row else None

        return await self._write_tx(body)

    async def request_cancel(self, test_id: int) -> TestRecord:
        """Cancel (R-10): a queued test is dequeued at once; an active one is flagged for its
        owner, which stops the container. Returns the test as it now stands."""
        now = time.time()

        def body(conn: Connection) -> TestRecord:
            row = conn.execute(select(TESTS).where(TESTS.c.id == test_id).with_for_update()).first()
            if row is None:
                raise KeyError(test_id)
            status = Status(row.status)
            if status in (Status.QUEUED, Status.CREATED):
                check_transition(test_id, status, Status.CANCELLED)
                values: dict[str, Any] = dict(
                    status=Status.CANCELLED.value, finished_at=now, updated_at=now, error="cancelled while queued"
                )
            elif status in ACTIVE:
                values = dict(cancel_requested=True, cancel_requested_at=now, updated_at=now)
            else:
                return _row_to_test(row)
            new_row = conn.execute(
                update(TESTS).where(TESTS.c.id == test_id).values(**values).returning(*TESTS.c)
            ).first()
            if "status" in values:  # dequeued: it will never run
                conn.execute(SECRETS.delete().where(SECRETS.c.test_id == test_id))
            return _row_to_test(new_row)

        return await self._write_tx(body)

    async def cancel_requested(self, owner: str) -> list[int]:
        query = (
            select(TESTS.c.id)
            .where(TESTS.c.lease_owner == owner)
            .where(TESTS.c.cancel_requested.is_(True))
            .where(TESTS.c.status.in_(ACTIVE_VALUES))
        )
        return await self._read_tx(lambda conn: [r[0] for r in conn.execute(query).all()])

    # ------------------------------------------------------------------ logs
    async def append_logs(
        self,
        test_id: int,
        lines: Sequence[tuple[float, str, str]],
        *,
        fence: Fence | None = None,
        cursor: str | None = None,
        **values: Any,
    ) -> bool:
        """Append (ts, stream, text) lines in one transaction, with the backend cursor that
        follows them, so a resumed stream neither repeats nor skips (R-6), and any other
        `values` of the test (e.g. the harness record seen among them). Past the per-test cap,
        lines are counted but not stored and one truncation notice is written (R-19)."""
        return await self._write_tx(
            lambda conn: self._append_in(conn, test_id, lines, fence=fence, cursor=cursor, values=values)
        )

    def _append_in(
        self,
        conn: Connection,
        test_id: int,
        lines: Sequence[tuple[float, str, str]],
        *,
        fence: Fence | None = None,
        cursor: str | None = None,
        values: dict[str, Any] | None = None,
    ) -> bool:
        """append_logs inside a transaction of its caller's."""
        row = _locked_test(conn, test_id, fence)
        if row is None:
            return False
        changes = dict(values or {}, **self._insert_lines(conn, test_id, row, lines))
        if cursor is not None:
            changes["log_cursor"] = cursor
        if changes["log_seq"] != row.log_seq or cursor is not None or values:
            changes["updated_at"] = time.time()
            _update_test(conn, test_id, changes)
        return True

    def _insert_lines(
        self, conn: Connection, test_id: int, row: Any, lines: Sequence[tuple[float, str, str]]
    ) -> dict[str, Any]:
        """Insert `lines` after the log position of `row` (from _locked_test); the test's new
        log_seq, log_bytes and log_truncated, for the caller's UPDATE."""
        cap = self.log_max_bytes
        # What the lines add to the test's log bytes, counted at once (each line's UTF-8
        # size + 1): a batch that stays under the cap needs no line-by-line check.
        total = len("\n".join(text for _ts, _stream, text in lines).encode("utf-8", "replace")) + 1 if lines else 0
        seq, used, truncated = row.log_seq, row.log_bytes, bool(row.log_truncated)
        if not truncated and used + total <= cap:
            rows = [(test_id, number, ts, stream, text) for number, (ts, stream, text) in enumerate(lines, seq + 1)]
            seq += len(rows)
            used += total
        else:
            rows = []
            for ts, stream, text in lines:
                size = len(text.encode("utf-8", "replace")) + 1
                # The engine's own lines (a handful per attempt: stop reasons, the outcome)
                # are kept past the cap, so a flooded log still ends with what happened.
                engine_line = stream == "system"
                if not truncated and not engine_line and used + size > cap:
                    truncated = True
                    seq += 1
                    notice = (
                        f"[agenttui] log truncated: the {cap:,}-byte cap per test was reached; "
                        "later output is not stored (the agent keeps running)"
                    )
                    rows.append((test_id, seq, ts, "system", notice))
                if truncated and not engine_line:
                    continue
                seq += 1
                used += size
                rows.append((test_id, seq, ts, stream, text))
        if rows:
            # The driver's own executemany: building SQLAlchemy parameters per row cost
            # more than SQLite's insert of it.
            _driver(conn, _INSERT_LOG, rows, many=True)
        return dict(log_seq=seq, log_bytes=used, log_truncated=truncated)

    async def system_log(self, test_id: int, text: str, *, fence: Fence | None = None) -> bool:
        return await self.append_logs(test_id, [(time.time(), "system", text)], fence=fence)

    async def logs(self, test_id: int, *, after_seq: int = 0, limit: int | None = None) -> list[LogRecord]:
        query = select(LOGS).where(LOGS.c.test_id == test_id).where(LOGS.c.seq > after_seq).order_by(LOGS.c.seq)
        if limit is not None:
            query = query.limit(limit)
        return await self._read_tx(lambda conn: [_row_to_log(r) for r in conn.execute(query).all()])

    async def claims(self) -> list[ClaimRecord]:
        rows = await self._read_tx(lambda conn: conn.execute(select(CLAIMS).order_by(CLAIMS.c.id)).all())
        return [ClaimRecord.model_validate(dict(r._mapping)) for r in rows]

    # ------------------------------------------------------------------ packages
    async def record_package(
        self, test_id: int, owner_uid: int, path: str, size: int, *, s3_key: str | None = None,
        url_expires_at: float | None = None,
    ) -> PackageRecord:
        query = (
            PACKAGES.insert()
            .values(test_id=test_id, owner_uid=owner_uid, path=path, size=size, created_at=time.time(),
                    s3_key=s3_key, url_expires_at=url_expires_at)
            .returning(*PACKAGES.c)
        )
        row = await self._write_tx(lambda conn: conn.execute(query).first())
        return PackageRecord.model_validate(dict(row._mapping))

    async def packages_for(self, test_id: int) -> list[PackageRecord]:
        query = select(PACKAGES).where(PACKAGES.c.test_id == test_id).order_by(PACKAGES.c.id)
        rows = await self._read_tx(lambda conn: conn.execute(query).all())
        return [PackageRecord.model_validate(dict(r._mapping)) for r in rows]

    # ------------------------------------------------------------------ change detection
    async def change_token(self) -> Any:
        """A cheap value that changes whenever any process changes a test or appends a log
        line (both bump tests.updated_at): followers poll it instead of re-reading lists."""
        query = select(func.max(TESTS.c.updated_at), func.count())
        return await self._read_tx(lambda conn: conn.execute(query).first())

    # ------------------------------------------------------------------ history maintenance
    async def archive_older_than(self, age_s: float, *, owner_uid: int | None = None) -> int:
        """Archive finished tests older than age_s (of one owner, or everyone's) and purge
        their logs (R-20)."""
        cutoff = time.time() - age_s
        terminal = [s.value for s in Status if s.is_terminal]
        query = select(TESTS.c.id).where(TESTS.c.status.in_(terminal)).where(TESTS.c.finished_at < cutoff)
        if owner_uid is not None:
            query = query.where(TESTS.c.owner_uid == owner_uid)

        def body(conn: Connection) -> int:
            ids = [r[0] for r in conn.execute(query).all()]
            if not ids:
                return 0
            conn.execute(LOGS.delete().where(LOGS.c.test_id.in_(ids)))
            conn.execute(SECRETS.delete().where(SECRETS.c.test_id.in_(ids)))
            conn.execute(
                update(TESTS)
                .where(TESTS.c.id.in_(ids))
                .values(status=Status.ARCHIVED.value, updated_at=time.time())
            )
            return len(ids)

        return await self._write_tx(body)


# The claim path's statements, built once: building and cache-keying a fresh statement per
# claim cost more than running it.
_COUNT_ACTIVE = select(func.count()).select_from(TESTS).where(TESTS.c.status.in_(ACTIVE_VALUES))
_READY = or_(TESTS.c.next_attempt_at.is_(None), TESTS.c.next_attempt_at <= bindparam("now"))
_WAITING = select(TESTS.c.owner_uid).where(TESTS.c.status == Status.QUEUED.value).distinct().subquery("waiting")
_OTHER = TESTS.alias("other")
_WAITING_OWNERS = select(
    _WAITING.c.owner_uid,
    _COUNT_ACTIVE.scalar_subquery().label("active"),
    select(func.count())
    .select_from(_OTHER)
    .where(_OTHER.c.owner_uid == _WAITING.c.owner_uid, _OTHER.c.status.in_(ACTIVE_VALUES))
    .scalar_subquery()
    .label("running"),
    select(func.coalesce(func.max(_OTHER.c.claimed_at), 0))
    .where(_OTHER.c.owner_uid == _WAITING.c.owner_uid)
    .scalar_subquery()
    .label("last_served"),
)
_OWNER_LINE = (
    select(TESTS.c.id, TESTS.c.priority, TESTS.c.queued_at)
    .where(TESTS.c.owner_uid == bindparam("owner"), TESTS.c.status == Status.QUEUED.value)
    .order_by(TESTS.c.priority, TESTS.c.queued_at, TESTS.c.id)
)
_CLAIM_UPDATE = (
    update(TESTS)
    .where(TESTS.c.id.in_(bindparam("ids", expanding=True)))
    .where(TESTS.c.status == Status.QUEUED.value)
    .values(
        status=Status.BUILDING.value,
        attempt=TESTS.c.attempt + 1,
        lease_owner=bindparam("owner"),
        lease_expires_at=bindparam("expires"),
        claimed_at=bindparam("now"),
        handle=None,
        log_cursor=None,
        result_json=None,
        result_nonce=None,
        next_attempt_at=None,
        updated_at=bindparam("now"),
    )
    .returning(*TESTS.c)
)


_ACTIVE_TESTS = select(TESTS).where(TESTS.c.status.in_(ACTIVE_VALUES)).order_by(TESTS.c.id)


def _queued_in_order(conn: Connection, now: float) -> list[TestRecord]:
    order = _next_in_line(conn, conn.execute(_WAITING_OWNERS).all(), None, now, None, ready_only=False)
    rows = conn.execute(select(TESTS).where(TESTS.c.status == Status.QUEUED.value)).all()
    ranks = {test_id: i for i, test_id in enumerate(order)}
    return sorted((_row_to_test(r) for r in rows), key=lambda t: ranks.get(t.id, len(ranks)))


def _next_in_line(
    conn: Connection,
    owners: Sequence[Any],
    count: int | None,
    now: float,
    only_ids: list[int] | None,
    *,
    ready_only: bool = True,
) -> list[int]:
    """Ids of the next `count` (None: all) QUEUED tests in claim order: priority first (R-5),
    then fair share between users (a user's n-th waiting test ranks after everyone's earlier
    ones, counting the tests that user already has running), then the user served least
    recently, then FIFO. One user's ten queued tests never starve another's. `owners`: the
    rows of _WAITING_OWNERS.

    Only a user's first `count` waiting tests can be among the next `count` overall (each of
    that user's earlier tests ranks before them), so this reads at most count x users rows
    through the (owner, status, priority, queued_at, id) index, whatever the queue's length."""
    line = _OWNER_LINE
    if ready_only:
        line = line.where(_READY)
    if only_ids is not None:
        line = line.where(TESTS.c.id.in_(only_ids))
    if count is not None:
        line = line.limit(count)
    ranked = []
    for owner in owners:
        rows = conn.execute(line, {"owner": owner.owner_uid, "now": now}).all()
        for place, row in enumerate(rows, start=1):
            ranked.append((row.priority, place + owner.running, owner.last_served, row.queued_at, row.id))
    ranked.sort()
    return [entry[-1] for entry in ranked[:count]]


MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
BASELINE_REVISION = "0001"  # the first released schema


def _migrate(sync_conn: Any) -> None:
    """Bring the schema to the newest version (Alembic), saying so when it changes anything.
    A store made before versioning started has the baseline schema: it is stamped, not rebuilt."""
    from alembic import command
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = sync_conn
    head = ScriptDirectory.from_config(config).get_current_head()
    current = MigrationContext.configure(sync_conn).get_current_revision()
    if current is None and inspect(sync_conn).has_table("tests"):
        command.stamp(config, BASELINE_REVISION)
        current = BASELINE_REVISION
    if current != head:
        if current is None:
            log.info("creating the store schema (version %s)", head)
        else:
            log.warning("upgrading the store schema from version %s to %s", current, head)
        command.upgrade(config, "head")


def _install_sqlite_hooks(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let us emit BEGIN ourselves (pysqlite's implicit BEGIN is always deferred).
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get("sqlite_immediate")
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
