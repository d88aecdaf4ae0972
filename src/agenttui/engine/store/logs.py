"""Tests' logs: the byte cap, appends in the caller's transaction (a chunk each, chunks.py), reads.

The cap counts each line's UTF-8 bytes plus one (its newline); `count_into_cap` is the one
place that counts, for the store and for the orchestrator that stops sending past it."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import Connection

from agenttui.core.wire import LogEntry
import agenttui.engine.store.chunks as chunks
import agenttui.engine.store.sql as sql
from agenttui.engine.store.driver import execute, first
from agenttui.engine.store.records import Fence

Line = tuple[float, str, str]  # (ts, stream, text)
# A big append is stored as several chunks: a reader never decodes much it does not need, and a
# chunk sent as one line of a stream stays small.
CHUNK_LINES = 1000
CHUNK_BYTES = 256 * 1024
CHUNKS_PER_FETCH = 4  # a read takes chunks a few at a time, and stops once it has its lines


def line_bytes(text: str) -> int:
    """What one line adds to its test's log size."""
    return len(text.encode("utf-8", "replace")) + 1


def count_into_cap(lines: Sequence[Line], used: int, cap: int) -> tuple[int, int | None]:
    """(the log's bytes after `lines` follow `used` bytes, the index of the first agent line
    that passes `cap` or None). Past that line nothing is counted. The engine's own lines
    (stream "system": a handful per attempt, stop reasons, the outcome) never pass the cap,
    so a flooded log still ends with what happened."""
    if not lines:
        return used, None
    # The whole batch at once (line_bytes summed): one that stays under the cap needs no
    # line-by-line check.
    total = len("\n".join(text for _ts, _stream, text in lines).encode("utf-8", "replace")) + 1
    if used + total <= cap:
        return used + total, None
    for index, (_ts, stream, text) in enumerate(lines):
        size = line_bytes(text)
        if stream != "system" and used + size > cap:
            return used, index
        used += size
    return used, None


def insert_lines(conn: Connection, test_id: int, position: Any, lines: Sequence[Line], cap: int) -> dict[str, Any]:
    """Insert `lines` after the log `position` (log_seq, log_bytes, log_truncated); the test's
    new position, for the caller's UPDATE. Past the cap, agent lines are dropped and one
    truncation notice is written (R-19)."""
    seq, used, truncated = position.log_seq, position.log_bytes, bool(position.log_truncated)
    attempt = position.attempt  # every line says which attempt wrote it
    cut = None
    if not truncated:
        used, cut = count_into_cap(lines, used, cap)
        kept, rest = (lines, ()) if cut is None else (lines[:cut], lines[cut:])
    else:
        kept, rest = (), lines
    entries = [LogEntry(test_id, number, ts, stream, text, attempt) for number, (ts, stream, text) in enumerate(kept, seq + 1)]
    seq += len(entries)
    if cut is not None:
        truncated = True
        seq += 1
        notice = (
            f"[agenttui] log truncated: the {cap:,}-byte cap per test was reached; "
            "later output is not stored (the agent keeps running)"
        )
        entries.append(LogEntry(test_id, seq, rest[0][0], "system", notice, attempt))
    for ts, stream, text in rest:
        if stream == "system":
            seq += 1
            used += line_bytes(text)
            entries.append(LogEntry(test_id, seq, ts, stream, text, attempt))
    if entries:
        rows = [chunk_row(test_id, attempt, run) for run in _runs(entries)]
        execute(conn, sql.INSERT_LOG_CHUNK, rows, many=True)
    return dict(log_seq=seq, log_bytes=used, log_truncated=truncated)


def lock_test(conn: Connection, test_id: int, fence: Fence | None) -> Any:
    """The test's status, log position and lease, locked for this transaction; None when
    `fence` no longer holds it."""
    row = first(execute(conn, sql.LOCK_TEST, (test_id,)))
    if row is None:
        raise KeyError(test_id)
    if fence is not None and (row.lease_owner != fence.owner or row.attempt != fence.attempt):
        return None
    return row


def append(
    conn: Connection,
    test_id: int,
    lines: Sequence[Line],
    cap: int,
    *,
    fence: Fence | None = None,
    cursor: str | None = None,
    values: dict[str, Any] | None = None,
) -> bool:
    """Store.append_logs inside a transaction of its caller's. False: `fence` lost the test."""
    row = lock_test(conn, test_id, fence)
    if row is None:
        return False
    changes = dict(values or {}, **insert_lines(conn, test_id, row, lines, cap))
    if cursor is not None:
        changes["log_cursor"] = cursor
    if changes["log_seq"] != row.log_seq or cursor is not None or values:
        changes["updated_at"] = time.time()
        update_test(conn, test_id, changes)
    return True


def update_test(conn: Connection, test_id: int, changes: dict[str, Any]) -> None:
    execute(conn, sql.update_tests(tuple(changes), sql.BY_ID), (*changes.values(), test_id))


def _runs(entries: list[LogEntry]) -> Iterator[list[LogEntry]]:
    """`entries` cut into chunks of at most CHUNK_LINES lines and about CHUNK_BYTES of text."""
    start, size = 0, 0
    for index, entry in enumerate(entries):
        length = len(entry.text) + 1
        if index > start and (index - start >= CHUNK_LINES or size + length > CHUNK_BYTES):
            yield entries[start:index]
            start, size = index, 0
        size += length
    yield entries[start:]


def chunk_row(test_id: int, attempt: int, entries: list[LogEntry]) -> tuple[Any, ...]:
    """The log_chunks row (sql.LOG_COLUMNS) holding consecutive `entries` of one attempt."""
    return (test_id, entries[0].seq, entries[-1].seq, attempt, chunks.pack(entries))


def read_json(conn: Connection, test_id: int, after_seq: int, max_chunks: int) -> list[tuple[int, bytes]]:
    """(last line, the JSON array of the lines) of up to `max_chunks` chunks after line
    `after_seq`: as stored, but for the chunk a reader starts inside of."""
    out = []
    rows = execute(conn, sql.LOG_CHUNKS_AFTER + " LIMIT ?", (test_id, after_seq, max_chunks)).fetchall()
    for first_seq, last_seq, data in rows:
        if first_seq <= after_seq:
            out.append((last_seq, chunks.encode(chunks.unpack(bytes(data))[after_seq + 1 - first_seq:])))
        else:
            out.append((last_seq, chunks.json_of(bytes(data))))
    return out


def read(conn: Connection, test_id: int, after_seq: int, limit: int | None) -> list[LogEntry]:
    """Up to `limit` lines after line `after_seq` (None: all of them), chunk by chunk."""
    cursor = execute(conn, sql.LOG_CHUNKS_AFTER, (test_id, after_seq))
    entries: list[LogEntry] = []
    while limit is None or len(entries) < limit:
        rows = cursor.fetchmany(CHUNKS_PER_FETCH)
        if not rows:
            break
        for first_seq, _last_seq, data in rows:
            lines = chunks.unpack(bytes(data))
            entries += lines[after_seq + 1 - first_seq:] if first_seq <= after_seq else lines
    return entries if limit is None else entries[:limit]
