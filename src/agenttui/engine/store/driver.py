"""Connections and transactions, and the driver's own SQL on them.

Each store operation is one transaction, written as a plain function of a synchronous
SQLAlchemy connection and run:

- on SQLite, in a thread (pysqlite): one hand-off per transaction instead of several per
  statement through aiosqlite, so a write holds SQLite's lock for a fraction of a
  millisecond; and all of a process's writes go through one writer thread, so its own
  writers never meet in SQLite's sleeping busy handler (only other processes can);
- on PostgreSQL, through the async engine's `run_sync` (asyncpg).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import errno
import fcntl
import functools
import logging
import os
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from agenttui.core.errors import InfraError
from agenttui.core.paths import data_dir, private_dir, private_file

log = logging.getLogger(__name__)
T = TypeVar("T")

# Set in the orchestrator's tasks: while the store's disk is full their writes wait (pauses
# growing to FULL_RETRY_MAX_S) instead of failing the test; a client's write fails at once.
PATIENT: contextvars.ContextVar[bool] = contextvars.ContextVar("agenttui_store_patient", default=False)
FULL_RETRY_FIRST_S = 0.5
FULL_RETRY_MAX_S = 30.0
_FULL_SIGNS = ("database or disk is full", "no space left on device", "could not extend file")


class StoreFull(InfraError):
    """The store's disk is full: nothing can be written until space is freed."""


def is_disk_full(exc: BaseException) -> bool:
    """Whether a write failed for want of disk space (SQLite's SQLITE_FULL, ENOSPC, or
    PostgreSQL's disk-full error), raised bare or wrapped by SQLAlchemy."""
    for error in (exc, getattr(exc, "orig", None), exc.__cause__):
        if isinstance(error, OSError) and error.errno == errno.ENOSPC:
            return True
        if error is not None and any(sign in str(error).lower() for sign in _FULL_SIGNS):
            return True
    return False

_PLACEHOLDERS = {  # DB-API paramstyle → the placeholder of the n-th parameter
    "qmark": lambda n: "?",
    "format": lambda n: "%s",
    "pyformat": lambda n: "%s",  # psycopg takes %s with positional parameters too
    "numeric": lambda n: f":{n}",
    "numeric_dollar": lambda n: f"${n}",
}


@functools.lru_cache(maxsize=256)
def render(template: str, paramstyle: str, dialect: str) -> str:
    """A statement of sql.py in the connection's paramstyle and dialect."""
    mark = _PLACEHOLDERS[paramstyle]
    parts = template.replace("{for_update}", " FOR UPDATE" if dialect == "postgresql" else "").split("?")
    return parts[0] + "".join(mark(n) + part for n, part in enumerate(parts[1:], 1))


def execute(conn: Connection, template: str, params: Sequence[Any] = (), *, many: bool = False) -> Any:
    """Run a statement of sql.py on the DB-API connection inside the caller's transaction;
    `many`: `params` is a list of parameter tuples. Returns the DB-API cursor."""
    sql = render(template, conn.dialect.paramstyle, conn.dialect.name)
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    if many:
        cursor.executemany(sql, params)
    else:
        cursor.execute(sql, params)
    return cursor


def first(cursor: Any) -> SimpleNamespace | None:
    """The cursor's first row, its columns as attributes."""
    row = cursor.fetchone()
    return None if row is None else SimpleNamespace(**dict(zip(_names(cursor), row)))


def all_rows(cursor: Any) -> list[SimpleNamespace]:
    names = _names(cursor)
    return [SimpleNamespace(**dict(zip(names, row))) for row in cursor.fetchall()]


def _names(cursor: Any) -> list[str]:
    return [d[0] for d in cursor.description]


def engines(url: str) -> tuple[AsyncEngine, Engine | None]:
    """The async engine of `url` and, for SQLite, the synchronous one its threads use."""
    if not url.startswith("sqlite"):
        return create_async_engine(url, pool_pre_ping=True), None
    path = url.split("///", 1)[-1]
    in_memory = not path or path == ":memory:"
    if not in_memory:
        # SQLite gives its -wal, -shm and -journal files the database file's mode: a database
        # created private keeps all of them private.
        folder = Path(path).parent
        private_file(private_dir(folder, ours=folder == data_dir()) / Path(path).name)
    engine = create_async_engine(url, connect_args={"timeout": 60})
    _install_sqlite_hooks(engine.sync_engine)
    sync_url = make_url(url).set(drivername="sqlite")
    if in_memory:  # one shared connection, or every thread would see its own database
        sync_engine = create_engine(sync_url, poolclass=StaticPool, connect_args={"check_same_thread": False})
    else:
        sync_engine = create_engine(sync_url, connect_args={"timeout": 60, "check_same_thread": False})
    _install_sqlite_hooks(sync_engine)
    return engine, sync_engine


class Transactions:
    """Runs the store's transactions (see the module's docstring)."""

    def __init__(self, engine: AsyncEngine, url: str, sync_engine: Engine | None = None):
        self.engine = engine
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self.sync_engine = sync_engine
        path = url.split("///", 1)[-1] if self.is_sqlite else ""
        self._lock_path: str | None = f"{path}-writers.lock" if path and path != ":memory:" else None
        self._lock_fd: int | None = None  # opened by the writer thread, on its first write
        self._changed = asyncio.Event()  # set (and replaced) when a write of this process commits
        self._writer_conn: Connection | None = None  # the writer thread's own (SQLite)
        self._writer: ThreadPoolExecutor | None = None
        self._readers: ThreadPoolExecutor | None = None
        self.problem: str | None = None  # why writes fail now (the disk is full), for `queue`
        if sync_engine is not None:
            self._writer = ThreadPoolExecutor(1, thread_name_prefix="agenttui-store-write")
            self._readers = ThreadPoolExecutor(2, thread_name_prefix="agenttui-store-read")

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

    async def _write_tx(self, body: Callable[[Connection], T]) -> T:
        """Run `body` as one write transaction; on SQLite it takes the write lock up front
        (BEGIN IMMEDIATE) so read-then-write sequences never deadlock or race between processes.
        While the disk is full, a PATIENT caller's write waits and retries; others' raise StoreFull."""
        pause = FULL_RETRY_FIRST_S
        while True:
            try:
                return await self._write_once(body)
            except Exception as exc:
                if not is_disk_full(exc):
                    raise
                self._disk_full(exc)
                if not PATIENT.get():
                    raise StoreFull(self.problem or "") from exc
            await asyncio.sleep(pause)
            pause = min(pause * 2, FULL_RETRY_MAX_S)

    def _disk_full(self, exc: Exception) -> None:
        """One warning when writes start failing for want of space (not one per retry)."""
        if self.problem is not None:
            return
        where = self.url.split("///", 1)[-1] if self.is_sqlite else make_url(self.url).render_as_string()
        self.problem = f"the store's disk is full ({where}): work waits until space is freed there"
        log.warning(
            "store %s: the disk is full (%s); the engine's writes wait and retry, pausing up to %.0f s, "
            "until space is freed", where, getattr(exc, "orig", None) or exc, FULL_RETRY_MAX_S,
        )

    def _wrote(self) -> None:
        if self.problem is not None:
            self.problem = None
            log.warning("store: writes succeed again (disk space was freed)")

    async def _write_once(self, body: Callable[[Connection], T]) -> T:
        try:
            if self._writer is None:
                async with self._write() as conn:
                    result = await conn.run_sync(body)
                self._wrote()
                return result
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
            changes = conn.connection.dbapi_connection.total_changes  # type: ignore[union-attr]
            with conn.begin():
                result = body(conn)
            # Only a commit that wrote rows shows the disk has room (an empty one always succeeds).
            if conn.connection.dbapi_connection.total_changes != changes:  # type: ignore[union-attr]
                self._wrote()
            return result

    @contextlib.contextmanager
    def _writers_turn(self) -> Iterator[None]:
        """Writers of every process sharing the file queue on one flock before BEGIN IMMEDIATE:
        the kernel wakes the next one the moment the lock is free, where SQLite's busy handler
        would sleep 1, 2, 5, 10... ms between retries (too slow for claims across processes).
        Without the lock file (read-only directory), SQLite's own locking still keeps writes
        correct."""
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

    def note_test_id(self, test_id: int) -> None:
        """Keep the newest test id in the writers' lock file too (called inside a write, so
        under its flock): outside the database, a lost -wal file cannot take it back, and the
        next open numbers new tests after it (Store._raise_id_floor)."""
        if self._lock_fd is not None:
            os.pwrite(self._lock_fd, f"{test_id:>20}\n".encode(), 0)

    def noted_test_id(self) -> int:
        """The newest test id noted by any process (0: none); call inside a write."""
        if self._lock_fd is None:
            return 0
        text = os.pread(self._lock_fd, 32, 0).strip()
        return int(text) if text.isdigit() else 0

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
