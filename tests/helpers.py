"""Small helpers shared by the test packages."""

from __future__ import annotations

import sqlite3
import time


def stored_log(db_path, test_id: int | None = None) -> list:
    """The log lines (wire LogEntry objects) stored for `test_id` (None: every test's, test by
    test), read straight from an SQLite store's file, read-only."""
    from agenttui.engine.store import chunks

    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)
    try:
        where, params = ("WHERE test_id = ?", (test_id,)) if test_id is not None else ("", ())
        rows = conn.execute(f"SELECT data FROM log_chunks {where} ORDER BY test_id, last_seq", params).fetchall()
    finally:
        conn.close()
    return [entry for (data,) in rows for entry in chunks.unpack(data)]


def wait_for(predicate, timeout: float, interval: float = 0.05):
    """Poll `predicate` until it returns something truthy (and return that), or fail after
    `timeout` seconds. A store that is busy or not created yet counts as "not yet"."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except sqlite3.OperationalError:
            value = None
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")
