"""A test's model calls in the store (docs/recorder.md): the recorder's sink that redacts, caps,
prices and writes them in batches, and the reads of `trace` and a test's totals.

The `model_calls` table is read and written here alone."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec
from sqlalchemy import Connection, func, select

from agenttui.core.prices import PriceTable
from agenttui.core.redact import Redactor
from agenttui.engine.store.driver import execute
from agenttui.engine.store.tables import CALLS, TESTS, ModelCallRecord
from agenttui.harness import is_judge_request
from agenttui.sandbox.recorder import ModelCall

log = logging.getLogger(__name__)

FLUSH_DELAY_S = 0.2  # a batch waits this long after its first call for more
FLUSH_AT = 200  # ... or is written at once when this many are pending
COLUMNS = tuple(c.name for c in CALLS.c if c.name != "id")
INSERT = f"INSERT INTO {CALLS.name} ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
TOUCH_TEST = f"UPDATE {TESTS.name} SET updated_at = ? WHERE id = ?"  # followers' change token moves
DELETE = f"DELETE FROM {CALLS.name} WHERE test_id = ?"
TRUNCATION = "calls past the first {cap} were not stored (model_calls_max); {dropped} more came"
MAX_ERRORS = 3  # distinct call errors a failure reason names


# ---------------------------------------------------------------- writes and reads (one connection)
def insert(conn: Connection, test_id: int, rows: list[tuple[Any, ...]], now: float) -> None:
    execute(conn, INSERT, rows, many=True)
    execute(conn, TOUCH_TEST, (now, test_id))


def next_seq(conn: Connection, test_id: int) -> int:
    return int(conn.execute(select(func.coalesce(func.max(CALLS.c.seq), 0)).where(CALLS.c.test_id == test_id)).scalar_one())


def read(conn: Connection, test_id: int, after_seq: int, limit: int) -> list[ModelCallRecord]:
    query = (
        select(CALLS).where(CALLS.c.test_id == test_id, CALLS.c.seq > after_seq).order_by(CALLS.c.seq).limit(limit)
    )
    return [ModelCallRecord.model_construct(**dict(r._mapping)) for r in conn.execute(query).all()]


# The sums of the totals, as the driver's own SQL (a history page reads them for each of its tests).
_SUMS = """count(*),
    sum(CASE WHEN kind = 'call' THEN 1 ELSE 0 END),
    sum(CASE WHEN kind = 'call' THEN tokens_in END),
    sum(CASE WHEN kind = 'call' THEN tokens_out END),
    sum(CASE WHEN kind = 'call' THEN cost_usd END),
    sum(CASE WHEN kind = 'call' AND cost_usd IS NULL THEN 1 ELSE 0 END),
    sum(CASE WHEN kind = 'call' THEN ended_at - started_at END),
    sum(CASE WHEN kind = 'connection' THEN 1 ELSE 0 END),
    sum(CASE WHEN kind = 'truncated' THEN 1 ELSE 0 END)"""
assert {"test_id", "kind", "tokens_in", "tokens_out", "cost_usd", "started_at", "ended_at"} <= set(CALLS.c.keys())


def totals(conn: Connection, test_id: int) -> dict[str, Any] | None:
    """calls, tokens in/out, cost (sums of what was measured: None when nothing was), how many
    calls were unmeasured, model time, unread connections; None when nothing was recorded."""
    return totals_for(conn, [test_id]).get(test_id)


def totals_for(conn: Connection, test_ids: list[int]) -> dict[int, dict[str, Any]]:
    """The totals of each of `test_ids` that recorded anything (one query, by the test_id index)."""
    if not test_ids:
        return {}
    statement = (f"SELECT test_id, {_SUMS} FROM {CALLS.name} WHERE test_id IN ({', '.join('?' * len(test_ids))}) "
                 "GROUP BY test_id")
    found = {row[0]: _totals_of(row[1:]) for row in execute(conn, statement, tuple(test_ids)).fetchall()}
    return {test_id: value for test_id, value in found.items() if value is not None}


def _totals_of(row: Any) -> dict[str, Any] | None:
    if not row[0]:
        return None
    return {
        "calls": int(row[1] or 0),
        "tokens_in": None if row[2] is None else int(row[2]),
        "tokens_out": None if row[3] is None else int(row[3]),
        "cost_usd": None if row[4] is None else round(float(row[4]), 6),
        "unmeasured": int(row[5] or 0),
        "model_s": round(float(row[6] or 0.0), 3),
        "connections": int(row[7] or 0),
        "truncated": bool(row[8]),
    }


# ---------------------------------------------------------------- the sink
@dataclass(frozen=True)
class CallLimits:
    max_calls: int  # stored a test (model_calls_max)
    text_max: int  # characters kept of a request's and a response's text (model_call_text_max)


class CallWriter:
    """The recorder's sink for one attempt of one test (agenttui.sandbox.recorder.CallSink).

    `add` runs in the forwarder's path: it only queues the call. A task of its own redacts,
    caps and prices the queued calls and writes them in one transaction (`write(rows)` is the
    store's), so a burst of calls costs one write, not one a call."""

    def __init__(
        self,
        write: Callable[[list[tuple[Any, ...]]], Any],
        test_id: int,
        attempt: int,
        redact: Redactor,
        prices: PriceTable,
        limits: CallLimits,
        first_seq: int = 1,
    ):
        self._write = write
        self.test_id = test_id
        self.attempt = attempt
        self._secrets = redact.secrets
        self.prices = prices
        self.limits = limits
        self._seq = first_seq - 1
        self._pending: list[ModelCall] = []
        self._dropped = 0
        self._timer: asyncio.Task[None] | None = None
        self._closed = False
        self.errors: list[str] = []  # what went wrong with its calls, distinct, redacted (the failure reason's)

    def add(self, call: ModelCall) -> None:
        if self._closed:
            return
        if call.kind == "call" and is_judge_request(call.request):
            call.kind = "judge"  # a suite rubric's judge: priced, but not one of the agent's calls (docs/suites.md)
        self._note_error(call)
        if self._seq + len(self._pending) >= self.limits.max_calls:
            self._dropped += 1
            return
        self._pending.append(call)
        if len(self._pending) >= FLUSH_AT:
            self._schedule(0.0)
        elif self._timer is None:
            self._schedule(FLUSH_DELAY_S)

    def _schedule(self, delay: float) -> None:
        if self._timer is not None and delay > 0:
            return
        self._timer = asyncio.ensure_future(self._flush_after(delay))

    async def _flush_after(self, delay: float) -> None:
        await asyncio.sleep(delay)
        self._timer = None
        await self.flush()

    async def flush(self) -> None:
        batch, self._pending = self._pending, []
        rows = [self._row(call) for call in batch]
        if self._closed and self._dropped:
            rows.append(self._truncation_row())
        if not rows:
            return
        try:
            await self._write(rows)
        except Exception as exc:  # the store's trouble must not stop the test; the calls are lost
            log.warning("test %s: %d model call(s) not stored: %s", self.test_id, len(rows), exc)

    async def close(self) -> None:
        """Write what is pending (and the cap's notice); later calls are ignored."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer
            self._timer = None
        await self.flush()

    def _note_error(self, call: ModelCall) -> None:
        if call.error is None or len(self.errors) >= MAX_ERRORS:
            return
        where = f"{call.provider} {call.model}" if call.model else call.provider
        status = f"HTTP {call.status}: " if call.status and not call.error.startswith("HTTP ") else ""
        text = f"{where}: {status}{call.error}"
        text = "\n".join(Redactor(self._secrets).lines([text[:300]]))
        if text not in self.errors:
            self.errors.append(text)

    def _text(self, value: Any) -> str | None:
        if value is None:
            return None
        text = value if isinstance(value, str) else msgspec.json.encode(value).decode("utf-8", "replace")
        if len(text) > self.limits.text_max:
            text = text[: self.limits.text_max] + f" …[cut at {self.limits.text_max} characters]"
        return "\n".join(Redactor(self._secrets).lines(text.split("\n")))

    def _row(self, call: ModelCall) -> tuple[Any, ...]:
        self._seq += 1
        cost = self.prices.cost(call.provider, call.model, call.tokens_in, call.tokens_out) if call.kind in ("call", "judge") else None
        tools = self._text(call.tool_calls) if call.tool_calls else None
        values = {
            "test_id": self.test_id, "seq": self._seq, "attempt": self.attempt, "kind": call.kind,
            "provider": call.provider, "method": call.method, "path": call.path, "model": call.model,
            "status": call.status, "streamed": call.streamed, "started_at": call.started_at,
            "first_byte_s": None if call.first_byte_at is None else round(call.first_byte_at - call.started_at, 6),
            "ended_at": call.ended_at, "tokens_in": call.tokens_in, "tokens_out": call.tokens_out, "cost_usd": cost,
            "tool_calls_json": tools, "request_text": self._text(call.request), "response_text": self._text(call.response),
            "error": self._text(call.error), "bytes_up": call.bytes_up, "bytes_down": call.bytes_down,
        }
        return tuple(values[c] for c in COLUMNS)

    def _truncation_row(self) -> tuple[Any, ...]:
        now = time.time()
        notice = ModelCall("", "truncated", now, ended_at=now,
                           error=TRUNCATION.format(cap=self.limits.max_calls, dropped=self._dropped))
        self._dropped = 0
        return self._row(notice)
