"""Following a suite run's tests until every one has ended (`agenttui suite run` and `suite resume`
after queueing): one queue snapshot a round says which tests still wait or run, and a test is
read once, when it has left the queue, to be judged. A test waiting its turn costs the server
nothing; a run of 100 tests costs about 100 reads, not 32 a round. docs/suites.md."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from agenttui.suites.file import Suite
from agenttui.suites.runner import judge

if TYPE_CHECKING:
    from agenttui.client.base import Client
    from agenttui.core.suite_wire import SuiteRunView
    from agenttui.core.wire import TestView

POLL_S = 0.5


async def follow_run(client: Client, run: SuiteRunView, on_progress: Callable[[int, int, int, str | None], None],
                     ) -> dict[int, TestView]:
    """Poll the run's tests until every one has ended; `on_progress(done, failed, total, line)`
    after each change, `line` saying which case × repeat just ended and how. The final views."""
    suite = Suite.from_json(run.suite_json)
    pending = {slot.test_id: slot for slot in run.slots if slot.test_id is not None}
    total, done, failed = len(run.slots), 0, 0
    ended: dict[int, TestView] = {}
    on_progress(done, failed, total, None)
    while pending:
        active = {view.id for view in (await client.queue()).tests}
        for test_id, slot in sorted(pending.items()):
            if test_id in active:
                continue
            view = await client.show(test_id)
            if not view.status.is_terminal:
                continue
            del pending[test_id]
            ended[test_id] = view
            result = await judge(client, suite, slot, view)
            done += 1
            failed += not result.passed
            verdict = "pass" if result.passed else "FAIL: " + "; ".join(result.reasons)
            on_progress(done, failed, total,
                        f"{slot.case_id} #{slot.repeat} (test {test_id}) {view.status.value.lower()}: {verdict}")
        if pending:
            await asyncio.sleep(POLL_S)
    return ended
