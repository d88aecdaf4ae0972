"""Following a test's log through the client: batches of stored lines, then the final view.

The TUI's own loop (rather than `Client.follow_logs`) so that every engine call goes through
the app's `call()` (shielded: a worker cancelled at exit never abandons a half-done store
query) and so that the loop stops between calls when asked to. It polls every FAST_S while
lines flow and backs off to SLOW_S when the test is quiet (a line still shows within ~0.3 s,
R-19), and asks for the test's status only when told it may have ended or every CHECK_S.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from agenttui.core.wire import LogEntry, TestView
from agenttui.core.lifecycle import Status

# Rows per read. Turning stored rows into records costs tens of µs each (in the server, or on
# this very loop for the in-process client), so a read of BATCH rows keeps the UI loop busy for
# well under the 200 ms a key press may wait, while the per-call overhead stays small.
BATCH = 1000
FAST_S = 0.05
SLOW_S = 0.25
CHECK_S = 1.0


async def follow(
    call: Callable[[Awaitable[Any]], Awaitable[Any]],
    client: Any,
    test_id: int,
    *,
    keep_going: Callable[[], bool] = lambda: True,
    may_have_ended: Callable[[], bool] = lambda: False,
) -> AsyncIterator[list[LogEntry] | TestView]:
    """Yield lists of new log records as they are stored; when the test has ended and every
    line is delivered, yield its final TestView and stop. Raises what the client raises
    (e.g. PermissionError for another user's log)."""
    position = 0
    delay = FAST_S
    last_check = 0.0
    settled = False  # one more quiet read after the end catches the final status line
    while keep_going():
        records: list[LogEntry] = await call(client.logs(test_id, after_seq=position, limit=BATCH))
        if records:
            position = records[-1].seq
            delay, settled = FAST_S, False
            yield records
            continue
        now = time.monotonic()
        if settled or may_have_ended() or now - last_check >= CHECK_S:
            last_check = now
            view: TestView = await call(client.show(test_id))
            if view.status is Status.ARCHIVED:
                yield view
                return
            if view.status.is_terminal:
                if settled and position >= view.log_lines:
                    yield view
                    return
                settled, delay = True, FAST_S
        await asyncio.sleep(delay)
        delay = min(SLOW_S, delay * 1.5)
