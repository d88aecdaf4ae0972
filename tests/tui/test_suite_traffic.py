"""The Suites view says how a case run reached its model (issue 19): a run whose tests were queued
to record (as `suite run --record DIR` queues them), on the in-process engine and a real store;
the view's report marks each repeat `recorded` and the case pane says so beside the test's id,
while a live repeat's line stays as it was."""

from __future__ import annotations

import asyncio
import time

from agenttui.cli.suite_cassettes import with_cassettes
from agenttui.client.local import LocalClient
from agenttui.suites.file import load_suite
from agenttui.suites.results import RepeatResult
from agenttui.suites.runner import start_run
from agenttui.tui.suite_link import SuitesLink
from agenttui.tui.widgets.suite_case_view import repeat_lines

from .conftest import noop_settings  # noqa: F401 - the fixture
from .test_suites import write_suite


async def _identity(awaitable):
    return await awaitable


def test_the_case_pane_says_a_repeat_was_recorded(noop_settings, tmp_path):  # noqa: F811
    async def scenario():
        client = LocalClient(noop_settings, work_whole_queue=True)
        await client.open()
        try:
            path = write_suite(tmp_path, {"greets": ("hello", "hello")}, repeat=2)
            run = await start_run(with_cassettes(client, lambda case_id, repeat: {"record": True}), load_suite(path))
            ids = [slot.test_id for slot in run.slots]
            for _ in range(300):
                if all([(await client.show(test_id)).status.is_terminal for test_id in ids]):
                    break
                await asyncio.sleep(0.1)
            report = await SuitesLink(client, _identity, clock=time.monotonic).report(run.id, {})
        finally:
            await client.close()
        return ids, report

    ids, report = asyncio.run(scenario())
    repeats = report.cases[0].repeats
    assert [r.model_traffic for r in repeats] == ["recorded", "recorded"]
    assert f"(test {ids[0]}, recorded)" in repeat_lines(repeats[0], {}, None)[0]
    live = RepeatResult(1, 9, "COMPLETED", True, [], "hi", duration_s=1.0, model_traffic="live")
    assert repeat_lines(live, {}, None)[0].endswith("(test 9)")
