"""Following a test's model calls through the client, for the TUI's calls view (docs/recorder.md).

No Textual here: `follow_calls` yields what the view shows next. It reads `trace` from the last
call it has (`after_seq`): the recorder's writer stores calls in batches and each batch bumps
the test's `updated_at`, so a read while nothing new was stored is one small query that
returns no call. While the test runs it reads every POLL_S; it asks for the test's status
every CHECK_S (or when told the test may have ended), and once the test has ended it reads one
last time (the calls of an attempt are stored before its end is) and stops.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from agenttui.core.lifecycle import Status
from agenttui.core.wire import CallTotals, ModelCallView, TestView

POLL_S = 0.25
CHECK_S = 1.0

Call = Callable[[Awaitable[Any]], Awaitable[Any]]


@dataclass
class CallsUpdate:
    """New calls (after those already yielded), the test's totals and status so far."""

    calls: list[ModelCallView] = field(default_factory=list)
    totals: CallTotals | None = None
    note: str | None = None  # why calls may be missing (egress full, the ecs backend)
    view: TestView | None = None  # the test, when read: its status
    ended: bool = False  # the test has ended and every call it stored is in


async def follow_calls(
    call: Call,
    client: Any,
    test_id: int,
    *,
    keep_going: Callable[[], bool] = lambda: True,
    may_have_ended: Callable[[], bool] = lambda: False,
) -> AsyncIterator[CallsUpdate]:
    """Yield the test's calls as they are stored, then an update with `ended` once the test has
    ended. Raises what the client raises (AccessDenied: another user's test)."""
    position = 0
    view: TestView = await call(client.show(test_id))
    last_check = time.monotonic()
    ending = view.status.is_terminal or view.status is Status.ARCHIVED
    shown: Status | None = None  # the status last yielded: a quiet read yields nothing new
    while keep_going():
        trace = await call(client.trace(test_id, after_seq=position))
        if trace.calls:
            position = trace.calls[-1].seq
        done = ending and not trace.calls  # a read after the end found nothing more
        if trace.calls or done or view.status is not shown:
            shown = view.status
            yield CallsUpdate(trace.calls, trace.totals, trace.note, view, done)
        if done:
            return
        if trace.calls:
            continue  # more may be stored than one read returns
        now = time.monotonic()
        if not ending and (may_have_ended() or now - last_check >= CHECK_S):
            last_check = now
            view = await call(client.show(test_id))
            ending = view.status.is_terminal or view.status is Status.ARCHIVED
            if ending:
                continue  # one more read now: it holds every call
        await asyncio.sleep(POLL_S)
