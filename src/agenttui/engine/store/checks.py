"""Whether a store can be used at all, checked when it opens: a damaged, truncated, read-only
or unreachable store is named with its problem and what to do, never a traceback or a server
that does not answer."""

from __future__ import annotations

import logging
import os
import sqlite3

from sqlalchemy import Connection
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from agenttui.core.errors import SettingsError
from agenttui.engine.store.driver import StoreFull

log = logging.getLogger(__name__)

# Errors of the store itself (never a bug of ours), turned into StoreUnusable at open.
STORE_ERRORS = (DBAPIError, sqlite3.Error, OSError, StoreFull)
_DAMAGED = ("not a database", "not an sqlite database", "truncated", "malformed", "corrupt", "database disk image")
_NOT_WRITABLE = ("readonly", "read-only", "permission denied", "unable to open", "access permission")


class StoreUnusable(SettingsError):
    """The store (db_url) cannot be used as it is: its file is damaged or cannot be written."""


def where(url: str) -> str:
    """The store's file (SQLite) or its address without the password (PostgreSQL)."""
    if url.startswith("sqlite"):
        return url.split("///", 1)[-1]
    return make_url(url).render_as_string(hide_password=True)


def wal_left_behind(url: str) -> bool:
    """Whether a -wal file is there before this process opens the store: the last one to
    close it did not (a crash), or another process has it open now. A clean close removes it."""
    path = url.split("///", 1)[-1]
    try:
        return url.startswith("sqlite") and os.path.getsize(f"{path}-wal") > 0
    except OSError:
        return False


def header_problem(url: str) -> str | None:
    """What the first 100 bytes of an SQLite store say is wrong with its file (instant, so
    done at every open): not a database, or shorter than its header says (truncated)."""
    path = url.split("///", 1)[-1]
    if not url.startswith("sqlite") or path in ("", ":memory:"):
        return None
    try:
        with open(path, "rb") as file:
            header = file.read(100)
            size = os.fstat(file.fileno()).st_size
    except FileNotFoundError:
        return None  # a new store
    except OSError as exc:
        return f"cannot be read: {exc.strerror or exc}"
    if size == 0:
        return None  # created, never written
    if len(header) < 100 or not header.startswith(b"SQLite format 3\x00"):
        return "not an SQLite database (its header is wrong or cut short)"
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    expected = int.from_bytes(header[28:32], "big") * page_size
    if size < expected:
        return f"truncated: the file has {size:,} bytes where its header says {expected:,}"
    return None


def quick_check(conn: Connection) -> None:
    """SQLite's own check of every page's structure (not of the indexes' contents)."""
    problems = [row[0] for row in conn.exec_driver_sql("PRAGMA quick_check(5)").fetchall()]
    if problems != ["ok"]:
        # Its report names pages and cells, not the damage: say what it means.
        raise sqlite3.DatabaseError("database disk image is malformed: " + "; ".join(problems))


def unusable(url: str, exc: BaseException) -> StoreUnusable:
    """What is wrong with the store, in our words, and what to do."""
    cause = getattr(exc, "orig", None) or exc
    text = str(cause).strip() or type(cause).__name__
    lowered = text.lower()
    store = where(url)
    if isinstance(exc, StoreFull):
        return StoreUnusable(f"the store {store} cannot be opened: its disk is full; free space there and start again")
    if any(sign in lowered for sign in _DAMAGED):
        return StoreUnusable(
            f"the store {store} is damaged ({text}): restore it from a backup, or move it (with its -wal "
            "and -shm files) aside to start with an empty store"
        )
    if any(sign in lowered for sign in _NOT_WRITABLE):
        return StoreUnusable(
            f"the store {store} cannot be written ({text}): the server's user needs to write the file, its "
            "-wal and -shm files and their folder; check their owner and mode"
        )
    return StoreUnusable(f"the store {store} cannot be opened: {text}")
