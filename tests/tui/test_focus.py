"""Typed input is never lost and the focus is always visible (issue 15, point 10): esc and tab do
what the help says, a key typed where no text goes reaches the Query field, each pane and the
options have a function key shown in the footer, and the focused pane's border and title change."""

from __future__ import annotations

import asyncio

import pytest
from textual.widgets import Input

from agenttui.tui.screens.help import EDITOR_KEYS

from .conftest import fixed_app, make_app, screen_text, type_text, wait_until
from .seed import ACTIVE, FINISHED, QUEUED, seed_store


@pytest.fixture
def seeded(noop_settings):
    asyncio.run(seed_store(noop_settings, FINISHED + ACTIVE + QUEUED))
    return noop_settings


async def test_esc_then_tab_as_the_help_says_and_the_typed_query_is_still_submitted(noop_settings):
    help_rows = dict(EDITOR_KEYS)
    assert "Query field" in help_rows["esc"]  # where esc goes, said as it is
    app = make_app(noop_settings)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, app.data_loaded.is_set)
        assert app.focused is not None and app.focused.id == "agent-code"
        await pilot.press("escape")
        assert app.focused is not None and app.focused.id == "query"
        await pilot.press("tab")  # what the old help said to do next: onto the Submit button
        assert app.focused is not None and app.focused.id == "submit"
        await type_text(pilot, "hello there")  # no text goes on a button: the Query field takes it
        assert app.query_one("#query", Input).value == "hello there"
        await pilot.press("ctrl+j")
        await wait_until(pilot, lambda: 1 in app.views, what="the test queued")
        assert (await app.client.request(1)).query == "hello there"


async def test_a_key_typed_on_the_log_or_a_table_goes_to_the_query_field_unless_it_is_their_own(seeded):
    app = fixed_app(seeded)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, app.data_loaded.is_set)
        app.query_one("#query", Input).value = "ab"
        await pilot.press("f5", "c")  # the log pane has no `c`
        assert app.focused is not None and app.focused.id == "query"
        assert app.query_one("#query", Input).value == "abc"  # added to, never replaced
        await pilot.press("f3", "question_mark")  # the queue's own key: the help
        assert type(app.screen).__name__ == "HelpScreen"


async def test_each_pane_and_the_network_option_have_a_function_key_shown_in_the_footer(seeded):
    app = fixed_app(seeded)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, app.data_loaded.is_set)
        await pilot.pause()
        for key, expected in (("f6", "egress"), ("f3", "queue-table"), ("f4", "history-table"),
                              ("f5", "log-view"), ("f2", "agent-code"), ("f6", "egress")):
            await pilot.press(key)
            await wait_until(pilot, lambda: app.focused is not None and app.focused.id == expected,
                             timeout=2, what=f"{key} to reach #{expected}")
            footer = screen_text(app).splitlines()[-1]
            assert "f2 f3 f4 f5 f6 panes" in footer, f"with #{expected} focused the footer says: {footer}"
        # Options -> Network: one key from the code editor, then enter opens the choices.
        await pilot.press("enter", "down", "enter")
        assert app.query_one("#egress").value == "none"


async def test_the_focused_panes_border_and_title_change(seeded):
    app = fixed_app(seeded)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, app.data_loaded.is_set)

        def looks() -> dict[str, tuple[str, str]]:
            """Each pane's border and title style (the queue / history pane's title: its tab row)."""
            active_tab = app.tabs.query_one("Tab.-active")
            return {
                "editor": (app.editor.styles.border_top[0], str(app.editor.styles.border_title_style)),
                "log": (app.log_view.styles.border_top[0], str(app.log_view.styles.border_title_style)),
                "tests": (str(app.tabs.query_one("ContentTabs").styles.background), str(active_tab.styles.text_style)),
            }

        looks_when = {}  # focused pane -> every pane's look
        for key, name in (("f2", "editor"), ("f3", "tests"), ("f5", "log")):
            await pilot.press(key)
            await pilot.pause()
            looks_when[name] = looks()
        for name in looks_when:
            focused_look = looks_when[name][name]
            assert "reverse" in focused_look[1], (name, focused_look)
            for other in looks_when.keys() - {name}:
                unfocused_look = looks_when[other][name]
                assert focused_look[0] != unfocused_look[0] and "reverse" not in unfocused_look[1], (name, other)
        assert looks_when["editor"]["editor"][0] == looks_when["log"]["log"][0] == "heavy"
