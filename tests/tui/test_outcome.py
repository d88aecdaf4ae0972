"""How a test's end is shown (issue 15, point 13): a failure's reason reads whole at 80x24 in
the log pane (under the queue or the history) and in the detail screen; the queue and the log
header show the end together, never a poll apart."""

from __future__ import annotations

import asyncio
import time

import pytest
from textual.widgets import Input

from .conftest import fixed_app, make_app, screen_text, type_text, wait_until
from .seed import LONG_FAILURE, LONG_REASON, seed_store


@pytest.fixture
def long_failure(noop_settings):
    asyncio.run(seed_store(noop_settings, [LONG_FAILURE]))
    return noop_settings


async def test_a_long_failure_reason_reads_whole_at_80x24_in_the_log_pane_and_the_detail_screen(long_failure):
    app = fixed_app(long_failure)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, app.data_loaded.is_set)
        await pilot.press("f4")  # the history: its row selected, its log below
        await wait_until(pilot, lambda: app.log_view.ended, what="the log read to its end")
        app.log_view.flush()
        await pilot.pause()
        lines = [str(line) for line in app.log_view.lines]
        reason_lines = lines[lines.index("[agenttui] error:") + 1:]
        assert " ".join(reason_lines) == LONG_REASON
        width = app.log_view.scrollable_content_region.width
        assert all(len(line) <= width for line in reason_lines), (width, reason_lines)
        shown = screen_text(app)
        assert all(line in shown for line in reason_lines), shown

        await pilot.press("enter")
        await wait_until(pilot, lambda: getattr(app.screen, "loaded", False), what="the detail screen")
        summary = app.screen.query_one("#detail-summary")
        error = app.screen.query_one("#detail-error")
        assert summary.content_region.contains_region(error.region), (summary.content_region, error.region)
        assert str(error.render()) == LONG_REASON


async def test_the_queue_and_the_log_header_show_a_tests_end_together(noop_settings):
    # The queue is polled every 3 s here: what shows the end must not wait for that poll.
    app = make_app(noop_settings, watch_interval_s=3.0)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, app.data_loaded.is_set)
        app.query_one("#query", Input).focus()
        await type_text(pilot, "hi")
        await pilot.press("ctrl+j")
        await wait_until(pilot, lambda: 1 in app.queue_table.views, what="the test in the queue")
        header_ended = queue_ended = None
        deadline = time.monotonic() + 10
        while (header_ended is None or queue_ended is None) and time.monotonic() < deadline:
            await pilot.pause(0.01)
            now = time.monotonic()
            if header_ended is None and "COMPLETED" in str(app.log_view.border_title):
                header_ended = now
            if queue_ended is None and 1 not in app.queue_table.views:
                queue_ended = now
            if header_ended is not None:
                assert 1 not in app.queue_table.views, "the log header says COMPLETED, the queue still lists it"
        assert header_ended is not None and queue_ended is not None, "the end was never shown"
        assert abs(header_ended - queue_ended) < 0.3, (header_ended, queue_ended)
