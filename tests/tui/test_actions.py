"""Pilot tests of the actions: submit, cancel a running test, retry a failed one, edit-and-retry,
filter the history, clear old entries, open the detail screen, download a package.

The noop backend stands in for Docker here (the real-Docker flow is test_docker_flow.py); the
app, client, orchestrator and store are the real ones.
"""

from __future__ import annotations

import asyncio
import time
import dataclasses
import zipfile

from textual.widgets import Input, TextArea

from agenttui.client.local import LocalClient
from agenttui.core.config import load_settings
from agenttui.core.domain import Status
from agenttui.engine.store import Owner, Store
from agenttui.tui.screens.confirm import ConfirmScreen
from agenttui.tui.screens.detail import DetailScreen

from .conftest import make_app, screen_text, status_of, type_text, wait_until
from .seed import FINISHED, seed_store


def RECENT() -> float:  # noqa: N802 - two hours ago: recent enough not to be auto-archived
    return time.time() - 2 * 3600


def mine(seeds):
    me = Owner.current()
    return [dataclasses.replace(s, owner=me) for s in seeds]


async def stored(settings, test_id: int):
    store = await Store.open(settings.resolved_db_url)
    try:
        return await store.get(test_id)
    finally:
        await store.close()


async def test_submit_runs_and_shows_the_response(noop_settings):
    app = make_app(noop_settings)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, app.data_loaded.is_set, what="first snapshot")
        app.query_one("#query", Input).focus()
        await type_text(pilot, "hello there")
        await pilot.press("enter")  # enter in the query field submits
        await wait_until(pilot, lambda: status_of(app, 1) == "COMPLETED", what="test 1 COMPLETED")
        await wait_until(pilot, lambda: app.log_view.ended, what="log complete")
        await pilot.pause(0.1)
        text = screen_text(app)
        assert "noop: hello there" in text  # the response, in the log pane and the history
        assert "COMPLETED" in text


async def test_cancel_a_running_test():
    settings = load_settings(backend="noop", noop_run_s=60)
    app = make_app(settings)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, app.data_loaded.is_set)
        app.query_one("#query", Input).value = "run for a minute"
        await pilot.press("ctrl+j")
        await wait_until(pilot, lambda: status_of(app, 1) == "RUNNING", what="test 1 RUNNING")
        await pilot.press("f3")
        assert app.selected_id == 1
        await pilot.press("c")
        await wait_until(pilot, lambda: status_of(app, 1) == "CANCELLED", timeout=10, what="CANCELLED")
        record = await stored(settings, 1)
        assert record.status == Status.CANCELLED.value
        await wait_until(pilot, lambda: app.log_view.ended)
        assert any("CANCELLED" in line for line in app.log_view.lines)


async def test_cancel_a_queued_test_dequeues_it(noop_settings):
    seeded = await seed_store(noop_settings, [])
    assert seeded == []
    settings = load_settings(backend="noop", noop_run_s=60, max_concurrent=1)
    app = make_app(settings)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, app.data_loaded.is_set)
        for query in ("first", "second"):
            app.query_one("#query", Input).value = query
            await pilot.press("ctrl+j")
            await pilot.pause(0.1)
        await wait_until(pilot, lambda: status_of(app, 2) == "QUEUED" and status_of(app, 1) == "RUNNING")
        await pilot.press("f3", "down")
        assert app.selected_id == 2
        await pilot.press("c")
        await wait_until(pilot, lambda: status_of(app, 2) == "CANCELLED", what="queued test dequeued")
        assert status_of(app, 1) == "RUNNING"
        await pilot.press("up", "c")
        await wait_until(pilot, lambda: status_of(app, 1) == "CANCELLED", timeout=10)


async def test_retry_a_failed_test(noop_settings):
    await seed_store(noop_settings, mine(FINISHED), t0=RECENT())  # test 2 is FAILED
    app = make_app(noop_settings)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, app.data_loaded.is_set)
        await pilot.press("f4")
        await wait_until(pilot, lambda: 2 in app.history_table.views)
        app.history_table.select_test(2)
        await pilot.pause()
        assert app.selected_id == 2 and status_of(app, 2) == "FAILED"
        await pilot.press("r")
        await wait_until(pilot, lambda: status_of(app, 6) == "COMPLETED", what="retry (test 6) COMPLETED")
        retry = app.views[6]
        assert retry.parent_id == 2 and retry.query == "divide by zero please"
        assert (await stored(noop_settings, 2)).status == Status.FAILED.value  # the original is untouched


async def test_edit_and_retry(noop_settings):
    await seed_store(noop_settings, mine(FINISHED), t0=RECENT())
    app = make_app(noop_settings)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, app.data_loaded.is_set)
        await pilot.press("f4")
        app.history_table.select_test(2)
        await pilot.pause()
        await pilot.press("e")
        await wait_until(pilot, lambda: app.editor.retry_of == 2, what="test 2 loaded into the editor")
        code = app.query_one("#agent-code", TextArea)
        assert 'print("thinking about", query)' in code.text
        assert app.query_one("#query", Input).value == "divide by zero please"
        assert "editing a retry of test 2" in screen_text(app)
        # Edit the code and the query, then submit.
        code.focus()
        await pilot.press("ctrl+home")
        await type_text(pilot, "# edited\n")
        query = app.query_one("#query", Input)
        query.focus()
        query.value = ""
        await type_text(pilot, "divide carefully")
        await pilot.press("ctrl+j")
        await wait_until(pilot, lambda: status_of(app, 6) == "COMPLETED", what="edited retry COMPLETED")
        retry = app.views[6]
        assert retry.parent_id == 2
        assert retry.query == "divide carefully"
        assert retry.response == "noop: divide carefully"
        request = await app.client.request(6)
        assert request.agent_code.startswith("# edited\n")
        assert app.editor.retry_of is None  # the link is used once


async def test_edit_and_retry_asks_before_replacing_unsaved_text(noop_settings):
    await seed_store(noop_settings, mine(FINISHED), t0=RECENT())
    app = make_app(noop_settings)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, app.data_loaded.is_set)
        code = app.query_one("#agent-code", TextArea)
        code.focus()
        await pilot.press("ctrl+home")
        await type_text(pilot, "# my work in progress\n")
        mine_text = code.text
        await pilot.press("f4")
        app.history_table.select_test(2)
        await pilot.pause()
        await pilot.press("e")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the question")
        assert "never submitted" in screen_text(app)
        await pilot.press("escape")  # keep my text
        await wait_until(pilot, lambda: not isinstance(app.screen, ConfirmScreen), what="question gone")
        await pilot.pause(0.2)
        assert code.text == mine_text and app.editor.retry_of is None
        await pilot.press("e")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the question again")
        await pilot.click("#choice-0")  # Replace
        await wait_until(pilot, lambda: app.editor.retry_of == 2, what="test 2 loaded into the editor")
        assert "# my work in progress" not in code.text
        assert 'print("thinking about", query)' in code.text


async def test_filter_history(noop_settings):
    await seed_store(noop_settings, mine(FINISHED), t0=RECENT())
    app = make_app(noop_settings)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, app.data_loaded.is_set)
        await wait_until(pilot, lambda: len(app.history_table.views) == 5)
        await pilot.press("f4", "slash")  # `/` from the table jumps to the filter
        assert app.focused is app.query_one("#history-filter", Input)
        await type_text(pilot, "paris")
        await wait_until(pilot, lambda: list(app.history_table.views) == [1], what="only test 1 matches")
        assert "Paris." in screen_text(app)
        await pilot.press("enter")  # back to the table
        assert app.focused is app.history_table
        app.query_one("#history-filter", Input).value = "FAILED"
        await wait_until(pilot, lambda: list(app.history_table.views) == [2], what="status filter")
        app.query_one("#history-filter", Input).value = ""
        await wait_until(pilot, lambda: len(app.history_table.views) == 5, what="filter cleared")


async def test_clear_old_history_asks_first(noop_settings):
    await seed_store(noop_settings, mine(FINISHED), t0=RECENT())  # finished about 2 hours ago
    app = make_app(noop_settings)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: len(app.history_table.views) == 5)
        await pilot.press("f4", "x")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("escape")  # changed my mind: nothing happens
        assert not isinstance(app.screen, ConfirmScreen)
        await pilot.pause(0.3)
        assert len(app.history_table.views) == 5
        await pilot.press("x")
        app.screen.query_one("#choice-0").press()  # older than 1 hour
        await wait_until(pilot, lambda: not app.history_table.views, what="history cleared")
        assert (await stored(noop_settings, 1)).status == Status.ARCHIVED.value


async def select_in_history(pilot, test_id: int) -> None:
    """The five seeded finished tests listed, the history tab open, `test_id` selected."""
    app = pilot.app
    await wait_until(pilot, lambda: len(app.history_table.views) == 5)
    await pilot.press("f4")
    app.history_table.select_test(test_id)
    await pilot.pause()


async def test_detail_screen_shows_result_metrics_and_log(noop_settings):
    await seed_store(noop_settings, mine(FINISHED), t0=RECENT())
    app = make_app(noop_settings)
    async with app.run_test(size=(100, 32)) as pilot:
        await select_in_history(pilot, 2)
        await pilot.press("enter")
        assert isinstance(app.screen, DetailScreen)
        await wait_until(pilot, lambda: app.screen.loaded, what="detail loaded")
        text = screen_text(app)
        for expected in ("FAILED", "ZeroDivisionError: division by zero", "wall: 0.4s", "exit code: 1",
                         "peak memory: 42.0 MB", "OOM killed: no", "queue wait: 0.5s", "about to divide"):
            assert expected in text, expected
        await pilot.press("escape")
        assert not isinstance(app.screen, DetailScreen)


async def test_download_package(noop_settings, tmp_path):
    await seed_store(noop_settings, mine(FINISHED), t0=RECENT())
    app = make_app(noop_settings)
    async with app.run_test(size=(100, 30)) as pilot:
        await select_in_history(pilot, 1)
        await pilot.press("d")
        await wait_until(pilot, lambda: any("scp " in n.message for n in app._notifications), what="package path")
        note = next(n for n in app._notifications if "scp " in n.message)
        path = note.message.splitlines()[0]
        assert path.endswith(".zip")
        names = zipfile.ZipFile(path).namelist()
        assert any(name.endswith("/agent.py") for name in names)
        assert any(name.endswith("/Dockerfile") for name in names)


async def test_another_users_test_cannot_be_cancelled(noop_settings):
    """R-27 through the TUI: the refusal is shown, nothing changes."""
    from .seed import ACTIVE, BOB

    await seed_store(noop_settings, [dataclasses.replace(ACTIVE[0], owner=BOB)], t0=RECENT())
    me = Owner(4242, "carol")
    app = make_app(noop_settings, client=LocalClient(noop_settings, owner=me))
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: app.selected_id == 1, what="running test selected")
        await wait_until(pilot, lambda: app.log_view.ended, what="log refused")
        assert "belongs to bob" in app.log_view.lines[-1]
        await pilot.press("f3", "c")
        await wait_until(pilot, lambda: any("belongs to bob" in n.message for n in app._notifications))
        assert (await stored(noop_settings, 1)).cancel_requested is False
    await asyncio.sleep(0)
