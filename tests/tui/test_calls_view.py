"""The calls view (issue 18, point 5): a test's model calls listed and read whole, followed live
while the test runs, reached with `t` from the queue, the history and the detail screen; and
the totals in the history table (the TUI's and `agenttui history`'s)."""

from __future__ import annotations

import asyncio

import pytest

from agenttui import cli
from agenttui.core.wire import CallTotals
from agenttui.sandbox.recorder import ModelCall
from agenttui.tui.call_text import cost_short, messages_text, totals_cells
from agenttui.tui.screens.calls import CallsScreen
from agenttui.tui.screens.detail import DetailScreen
from agenttui.tui.widgets.call_detail import CallDetail
from agenttui.tui.widgets.call_table import CallTable

from .conftest import fixed_app, screen_text, wait_until
from .seed import ACTIVE, FINISHED, NOW, QUEUED, seed_store
from .seed_calls import CANARY_KEY, seeded_calls, write_calls

FIRST_TEST = 1  # alice's "What is the capital of France?", last in the history (newest first)
RUNNING_TEST = 6  # alice's, running (the fixed app's client works no queue)


@pytest.fixture
def with_calls(noop_settings):
    async def seed() -> None:
        await seed_store(noop_settings, FINISHED + ACTIVE + QUEUED)
        await write_calls(noop_settings, FIRST_TEST, seeded_calls())

    asyncio.run(seed())
    return noop_settings


async def _open_first_tests_calls(pilot, *downs: str) -> CallsScreen:
    app = pilot.app
    await wait_until(pilot, app.data_loaded.is_set, what="first queue/history snapshot")
    await pilot.press("f4", "down", "down", "down", "down")  # history, newest first: test 1 is last
    await wait_until(pilot, lambda: app.selected_id == FIRST_TEST, what="test 1 selected")
    await pilot.press("t")
    await wait_until(pilot, lambda: isinstance(app.screen, CallsScreen) and app.screen.ended, what="calls read")
    await pilot.press(*downs)
    await pilot.pause()
    return app.screen


def flat(text: str) -> str:
    """The screen's words, wrapping undone."""
    return " ".join(text.split())


def test_calls_view_80x24(with_calls, snap_compare):
    async def calls(pilot) -> None:
        await _open_first_tests_calls(pilot)

    assert snap_compare(fixed_app(with_calls), terminal_size=(80, 24), run_before=calls)


def test_calls_view_120x40(with_calls, snap_compare):
    async def calls(pilot) -> None:
        await _open_first_tests_calls(pilot, "down", "down")  # the refused call: its error first

    assert snap_compare(fixed_app(with_calls), terminal_size=(120, 40), run_before=calls)


async def test_the_list_and_the_selected_call_read_whole_and_escaped(with_calls):
    app = fixed_app(with_calls)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open_first_tests_calls(pilot)
        table = screen.query_one(CallTable)
        assert table.row_count == 4
        assert [table.get_row_at(i)[2].plain for i in range(4)] == ["200", "200", "401", "conn"]
        assert [table.get_row_at(i)[6].plain for i in range(4)] == ["$0.0002", "$0", "unmeasured", ""]
        text = flat(screen_text(app))
        assert "COMPLETED · 3 call(s), tokens 1230 in / 97 out, cost $0.000231 (+1 unmeasured)" in text
        assert "4 recorded · ended" in text
        assert "system: You answer in one word." in text
        screen.query_one(CallDetail).scroll_end(animate=False)
        await pilot.pause()
        assert 'get_weather({"city": "Paris"})' in screen_text(app)
        await pilot.press("down")  # the local model's call: its answer's escape sequence is shown, not run
        await pilot.pause()
        assert "Hi! \\x1b[31mred\\x1b[0m" in screen_text(app)
        await pilot.press("down")
        await pilot.pause()
        text = screen_text(app)
        assert "HTTP 401" in text and "Incorrect API key provided" in text and CANARY_KEY not in text
        await pilot.press("escape")
        assert app.screen is app.main_screen


async def test_a_call_arriving_while_the_view_is_open_appears_without_a_key(noop_settings):
    await seed_store(noop_settings, FINISHED + ACTIVE + QUEUED)
    app = fixed_app(noop_settings)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, app.data_loaded.is_set, what="first snapshot")
        await pilot.press("f3")  # the queue: the running test is selected
        await wait_until(pilot, lambda: app.selected_id == RUNNING_TEST, what="the running test")
        await pilot.press("t")
        await wait_until(pilot, lambda: "0 recorded · following" in screen_text(app), what="an empty, followed list")
        screen = app.screen
        assert isinstance(screen, CallsScreen) and "No model call yet" in screen_text(app)
        table = screen.query_one(CallTable)

        await write_calls(noop_settings, RUNNING_TEST, seeded_calls(NOW - 5)[:1])
        await wait_until(pilot, lambda: table.row_count == 1, what="the stored call listed")
        await pilot.pause()
        text = flat(screen_text(app))
        assert "RUNNING · 1 call(s), tokens 1200 in / 85 out" in text and "1 recorded · following" in text
        assert screen.query_one(CallDetail).call is not None and "system: You answer in one word." in text

        await write_calls(noop_settings, RUNNING_TEST, seeded_calls(NOW - 3)[1:2])
        await wait_until(pilot, lambda: table.row_count == 2, what="the second call listed")
        assert table.cursor_row == 0  # the user's place is kept


async def test_t_opens_the_calls_of_the_detail_screens_test_and_esc_goes_back(with_calls):
    app = fixed_app(with_calls)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, app.data_loaded.is_set)
        await pilot.press("f4", "down", "down", "down", "down", "enter")
        await wait_until(pilot, lambda: isinstance(app.screen, DetailScreen))
        assert "t Calls" in screen_text(app)  # in the detail screen's footer
        await pilot.press("t")
        await wait_until(pilot, lambda: isinstance(app.screen, CallsScreen) and app.screen.ended)
        assert app.screen.test_id == FIRST_TEST
        await pilot.press("escape")
        assert isinstance(app.screen, DetailScreen)


async def test_t_is_text_in_the_editor_and_a_key_on_the_tables(with_calls):
    app = fixed_app(with_calls)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, app.data_loaded.is_set)
        await pilot.press("f2", "t")
        assert app.screen is app.main_screen
        assert app.query_one("#agent-code").text.startswith("t")
        await pilot.press("f3")
        assert "t Calls" in screen_text(app)  # the tables' footer offers it


async def test_another_users_calls_are_theirs(with_calls):
    app = fixed_app(with_calls)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, app.data_loaded.is_set)
        await pilot.press("f4")  # newest first: test 5 is bob's
        await wait_until(pilot, lambda: app.selected_id == 5)
        await pilot.press("t")
        await wait_until(pilot, lambda: isinstance(app.screen, CallsScreen) and app.screen.ended)
        assert "you cannot read the model calls of it" in screen_text(app)


async def test_a_long_answer_scrolls(noop_settings):
    await seed_store(noop_settings, FINISHED)
    long = "\n".join(f"line {i} of a long answer" for i in range(200))
    await write_calls(noop_settings, FIRST_TEST, [ModelCall("ollama", "call", NOW - 9, ended_at=NOW - 8, status=200,
                                                            model="llama3.2", request="a prompt", response=long)])
    app = fixed_app(noop_settings)
    async with app.run_test(size=(80, 24)) as pilot:
        await _open_first_tests_calls(pilot)
        detail = app.screen.query_one(CallDetail)
        assert detail.max_scroll_y > 100 and detail.scroll_y == 0
        await pilot.press("enter", "pagedown", "pagedown")  # enter: read the call (focus its pane)
        await pilot.pause()
        assert detail.has_focus and detail.scroll_y > 10
        assert "line 0 of" not in screen_text(app)
        await pilot.press("tab")  # back to the list
        assert app.screen.query_one(CallTable).has_focus


async def test_the_history_table_has_each_tests_totals(with_calls):
    app = fixed_app(with_calls)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: FIRST_TEST in app.history_table.views)
        table = app.history_table
        row = table.get_row(str(FIRST_TEST))
        keys = [key for key, _label in table.COLUMNS]
        cells = {key: getattr(value, "plain", value) for key, value in zip(keys, row)}
        assert (cells["calls"], cells["tokens"], cells["cost"]) == ("3", "1.2k/97", "≥$0.0002")
        assert [getattr(v, "plain", v) for v in table.get_row("2")[-3:]] == ["-", "-", "-"]


def test_agenttui_history_prints_the_totals(with_calls, capsys):
    assert cli.main(["--in-process", "history"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["id", "created", "owner", "status", "took", "calls", "tokens", "in/out", "cost",
                                "response"]
    first = next(line for line in lines if line.split()[0] == str(FIRST_TEST))
    assert first.split()[6:] == ["3", "1.2k/97", "≥$0.0002", "Paris."]
    second = next(line for line in lines if line.split()[0] == "2")
    assert second.split()[6:9] == ["-", "-", "-"]


def test_unknown_reads_unmeasured_never_zero():
    assert cost_short(None) == "unmeasured" and cost_short(0.0) == "$0" and cost_short(0.0123) == "$0.01"
    assert totals_cells(None) == ("-", "-", "-")
    assert totals_cells(CallTotals(calls=2, unmeasured=2)) == ("2", "unmeasured", "unmeasured")
    assert totals_cells(CallTotals(calls=0, connections=1)) == ("0", "-", "-")
    assert totals_cells(CallTotals(calls=5, tokens_in=2_500_000, tokens_out=999, cost_usd=1.5, truncated=True)) == (
        "5+", "2.5M/999", "$1.50")


def test_messages_read_as_a_chat_or_as_stored():
    chat = ('[{"role":"system","content":"be brief"},{"role":"user","content":[{"type":"text","text":"hi"},'
            '{"type":"image_url"}]},{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function",'
            '"function":{"name":"add","arguments":"{\\"a\\":1}"}}]},{"role":"tool","tool_call_id":"c1","content":"2"}]')
    assert messages_text(chat) == ('system: be brief\n\nuser: hi\n[image_url]\n\nassistant: → add({"a":1})'
                                   '\n\ntool (c1): 2')
    assert messages_text("just a prompt \x07") == "just a prompt \\x07"
    cut = '[{"role":"user","content":"long …[cut at 10 characters]'
    assert messages_text(cut) == cut  # not JSON any more: as stored
    assert messages_text('{"system":"s","prompt":"p"}') == "system: s\n\nprompt: p"


def test_the_calls_views_keys_have_ids_and_tooltips():
    for binding in [*CallsScreen.BINDINGS, *CallTable.BINDINGS]:
        assert binding.id and binding.tooltip, binding


async def test_the_palette_and_the_help_offer_the_calls_view(with_calls):
    app = fixed_app(with_calls)
    async with app.run_test(size=(100, 40)) as pilot:
        await wait_until(pilot, app.data_loaded.is_set)
        commands = {c.title: c.callback for c in app.get_system_commands(app.screen)}
        await pilot.press("f4", "down", "down", "down", "down")
        await wait_until(pilot, lambda: app.selected_id == FIRST_TEST)
        commands["Show model calls"]()
        await wait_until(pilot, lambda: isinstance(app.screen, CallsScreen) and app.screen.ended)
        assert app.screen.test_id == FIRST_TEST
        await pilot.press("question_mark")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "HelpScreen")
        body = app.screen.query_one("#help-body")
        body.scroll_to(y=body.max_scroll_y - 10, animate=False)  # where the calls view's keys are
        await pilot.pause()
        text = screen_text(app)
        assert "Calls view (t)" in text and "[calls.back]" in text and "[calls.read]" in text
