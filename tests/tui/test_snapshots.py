"""Snapshots of the main screen (80x24 and 120x40), the help screen and the detail screen.

Deterministic: seeded store (fixed ids, owners, times and logs), a fixed clock, UTC times, no
cursor blink, no animations, isolated config (conftest's XDG dirs), the noop backend and a
client that works no queue. Update with `pytest tests/tui --snapshot-update` after checking
the new look in the report.
"""

from __future__ import annotations

import asyncio

import pytest

from .conftest import fixed_app, wait_until
from .seed import ACTIVE, FINISHED, QUEUED, seed_store

RUNNING_LOG_LINES = len(ACTIVE[0].logs)


@pytest.fixture
def seeded(noop_settings):
    asyncio.run(seed_store(noop_settings, FINISHED + ACTIVE + QUEUED))
    return noop_settings


async def _main_ready(pilot) -> None:
    app = pilot.app
    await wait_until(pilot, app.data_loaded.is_set, what="first queue/history snapshot")
    await wait_until(pilot, lambda: app.log_view.lines_received >= RUNNING_LOG_LINES, what="running test's log")
    app.log_view.flush()
    await pilot.pause()


def test_main_screen_80x24(seeded, snap_compare):
    assert snap_compare(fixed_app(seeded), terminal_size=(80, 24), run_before=_main_ready)


def test_main_screen_120x40(seeded, snap_compare):
    assert snap_compare(fixed_app(seeded), terminal_size=(120, 40), run_before=_main_ready)


def test_main_screen_history_tab_120x40(seeded, snap_compare):
    async def history(pilot) -> None:
        await _main_ready(pilot)
        await pilot.press("f4")
        await pilot.pause()

    assert snap_compare(fixed_app(seeded), terminal_size=(120, 40), run_before=history)


def test_help_screen(seeded, snap_compare):
    async def help_screen(pilot) -> None:
        await _main_ready(pilot)
        await pilot.press("f3", "question_mark")
        await pilot.pause()

    assert snap_compare(fixed_app(seeded), terminal_size=(100, 40), run_before=help_screen)


def test_detail_screen(seeded, snap_compare):
    async def detail(pilot) -> None:
        app = pilot.app
        await _main_ready(pilot)
        await pilot.press("f4", "down", "down", "down", "down")  # history, newest first: test 1 is last
        await pilot.press("enter")
        await wait_until(pilot, lambda: getattr(app.screen, "loaded", False), what="detail loaded")
        await pilot.pause()

    assert snap_compare(fixed_app(seeded), terminal_size=(80, 24), run_before=detail)


def test_editor_errors_80x24(seeded, snap_compare):
    """Validation messages next to their fields, the first bad one shown."""

    async def invalid(pilot) -> None:
        app = pilot.app
        await _main_ready(pilot)
        app.query_one("#agent-code").load_text("def run(query):\n    return (\n")
        await pilot.pause()  # let the edit's Changed event pass before validating
        await pilot.press("ctrl+j")
        await pilot.pause()

    assert snap_compare(fixed_app(seeded), terminal_size=(80, 24), run_before=invalid)


def test_edit_and_retry_asks_before_replacing_unsaved_text_80x24(seeded, snap_compare):
    async def asked(pilot) -> None:
        from agenttui.tui.screens.confirm import ConfirmScreen

        app = pilot.app
        await _main_ready(pilot)
        app.query_one("#agent-code").load_text("# work in progress\n")
        await pilot.press("f4", "down", "down", "down", "down")  # test 1 (alice's)
        await pilot.press("e")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the question")
        await pilot.pause()

    assert snap_compare(fixed_app(seeded), terminal_size=(80, 24), run_before=asked)


def test_queue_focused_80x24(seeded, snap_compare):
    """The focused pane stands out (heavy border, reversed title); the footer keeps the pane keys."""

    async def queue(pilot) -> None:
        await _main_ready(pilot)
        await pilot.press("f3")
        await pilot.pause()

    assert snap_compare(fixed_app(seeded), terminal_size=(80, 24), run_before=queue)


def test_failure_reason_80x24(noop_settings, snap_compare):
    """A failure's reason, wrapped whole in the log pane under the history."""
    from .seed import LONG_FAILURE

    asyncio.run(seed_store(noop_settings, [LONG_FAILURE]))

    async def failed(pilot) -> None:
        app = pilot.app
        await wait_until(pilot, app.data_loaded.is_set, what="first queue/history snapshot")
        await pilot.press("f4")
        await wait_until(pilot, lambda: app.log_view.ended, what="the log read to its end")
        app.log_view.flush()
        await pilot.pause()

    assert snap_compare(fixed_app(noop_settings), terminal_size=(80, 24), run_before=failed)
