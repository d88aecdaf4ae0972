"""Notifications are short-lived and hide nothing being read (issue 15, point 11): top right,
over the queue, never over the log pane or the query; a package's path stays in the test's log
and detail screen once its notice is gone; a retry's notice reads right (point 9)."""

from __future__ import annotations

import re

import pytest
from textual.widgets import Static
from textual.widgets._toast import Toast

from agenttui.tui.screens.detail import DetailScreen

from .conftest import make_app, screen_text, type_text, wait_until
from .seed import FINISHED, seed_store
from .test_actions import RECENT, mine, select_in_history


def toasts(app) -> list[Toast]:
    return list(app.screen.query(Toast))


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
async def test_a_package_notice_goes_in_seconds_over_nothing_being_read_and_its_path_stays(noop_settings, size):
    await seed_store(noop_settings, mine(FINISHED), t0=RECENT())
    app = make_app(noop_settings)
    async with app.run_test(size=size, notifications=True) as pilot:
        await select_in_history(pilot, 1)
        await pilot.press("d")
        await wait_until(pilot, lambda: any("Package of test 1" in str(t.render()) for t in toasts(app)),
                         what="the package notice")
        await pilot.pause(0.2)
        read = {"log pane": app.log_view.region, "query": app.query_one("#query").region}
        for toast in toasts(app):
            for name, region in read.items():
                assert not toast.region.overlaps(region), f"a notice at {toast.region} hides the {name} ({region})"
        assert max(n.timeout for n in app._notifications) <= 3.0
        path = next(n for n in app._notifications if "scp " in n.message).message.splitlines()[0]

        await wait_until(pilot, lambda: not toasts(app), timeout=5, what="the notices to go")
        assert f"[agenttui] package: {path}"[: size[0] // 2 - 3] in screen_text(app)  # the log pane, cut at its width
        await pilot.press("enter")
        await wait_until(pilot, lambda: getattr(app.screen, "loaded", False), what="the detail screen")
        assert isinstance(app.screen, DetailScreen)
        shown = str(app.screen.query_one("#detail-package", Static).render())
        assert path in shown and "scp " in shown


async def test_an_error_stays_a_little_longer_than_a_notice(noop_settings):
    app = make_app(noop_settings)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await wait_until(pilot, app.data_loaded.is_set)
        await pilot.press("escape")  # to the (empty) Query field
        await pilot.press("ctrl+j")  # invalid: an error notice
        await wait_until(pilot, lambda: bool(app._notifications), what="the error")
        (error,) = app._notifications
        await type_text(pilot, "hello")
        await pilot.press("ctrl+j")  # valid: a notice that it was queued
        await wait_until(pilot, lambda: len(app._notifications) == 2, what="the notice")
        notice = list(app._notifications)[-1]
        assert error.severity == "error" and notice.severity == "information"
        assert notice.timeout <= 3.0 < error.timeout <= 8.0


async def test_a_retrys_notice_names_the_new_test_then_what_it_retries(noop_settings):
    await seed_store(noop_settings, mine(FINISHED), t0=RECENT())  # test 2 failed
    app = make_app(noop_settings)
    async with app.run_test(size=(100, 30), notifications=True) as pilot:
        await select_in_history(pilot, 2)
        await pilot.press("r")
        await wait_until(pilot, lambda: any(n.title == "Submitted" for n in app._notifications), what="the notice")
        (notice,) = [n for n in app._notifications if n.title == "Submitted"]
        assert re.fullmatch(r"test 6 queued: retry of test 2( \(queue position \d+\))?", notice.message), notice.message
