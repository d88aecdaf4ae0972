"""App-level behaviour: bindings (ids, tooltips, keymap), command palette, reopening with a
running test (R-26), NO_COLOR, both terminal sizes, and the `agenttui path/to/agent.py` hook."""

from __future__ import annotations

import pytest
from textual.binding import Binding

from agenttui import cli
from agenttui.tui.app import AgentTUI, load_keymap
from agenttui.tui.screens.detail import DetailScreen
from agenttui.tui.screens.help import HelpScreen
from agenttui.tui.widgets.history_table import HistoryTable
from agenttui.tui.widgets.log_view import LogView
from agenttui.tui.widgets.queue_table import QueueTable

from .conftest import fixed_app, make_app, screen_text, wait_until
from .seed import ACTIVE, FINISHED, QUEUED, seed_store

ALL_BINDINGS = [
    *AgentTUI.BINDINGS, *QueueTable.BINDINGS, *HistoryTable.BINDINGS, *LogView.BINDINGS, *DetailScreen.BINDINGS,
    *HelpScreen.BINDINGS,
]


@pytest.mark.parametrize("binding", ALL_BINDINGS, ids=lambda b: b.id or b.key)
def test_every_binding_has_an_id_and_a_tooltip(binding: Binding):
    assert binding.id, binding
    assert binding.tooltip, binding


def test_the_issue_keys_are_bound():
    keys = {b.id: b.key for b in ALL_BINDINGS}
    assert keys["submit"] == "ctrl+j,alt+enter"
    assert keys["cancel"] == "c" and keys["retry"] == "r" and keys["edit_retry"] == "e"
    assert keys["package"] == "d" and keys["filter"] == "slash" and keys["help"] == "question_mark"
    assert keys["quit"] == "ctrl+q"
    # Single letters only on the tables/screens that own them, never app-wide.
    assert all(len(b.key) > 1 for b in AgentTUI.BINDINGS if b.key not in ("slash", "question_mark"))


def test_keymap_from_config(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text('[keymap]\nsubmit = "ctrl+s"\ncancel = "k"\n')
    assert load_keymap(config) == {"submit": "ctrl+s", "cancel": "k"}
    assert load_keymap(tmp_path / "missing.toml") == {}


async def test_keymap_remaps_a_binding(noop_settings):
    app = make_app(noop_settings, keymap={"help": "f1"})
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, app.data_loaded.is_set)
        await pilot.press("f3", "f1")
        assert isinstance(app.screen, HelpScreen)
        assert "f1" in screen_text(app)


async def test_command_palette_has_every_action(noop_settings):
    app = make_app(noop_settings)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, app.data_loaded.is_set)
        titles = {c.title for c in app.get_system_commands(app.screen)}
        for title in ("Submit test", "Cancel selected test", "Retry selected test", "Edit and retry selected test",
                      "Download package of selected test", "Filter history", "Clear old history",
                      "Show test details", "Keys", "Quit"):
            assert any(t.startswith(title) for t in titles), title
        await pilot.press("ctrl+p")
        await pilot.pause()
        assert app.screen.__class__.__name__ == "CommandPalette"


async def test_reopening_shows_the_running_test_and_its_log(noop_settings):
    """R-26: a test that kept running while no TUI was open is shown with what it printed."""
    await seed_store(noop_settings, FINISHED + ACTIVE + QUEUED)
    app = fixed_app(noop_settings)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: app.log_view.lines_received >= len(ACTIVE[0].logs))
        assert app.selected_id == 6 and app.views[6].status.value == "RUNNING"
        await pilot.pause(0.1)
        text = screen_text(app)
        assert "log · test 6 · RUNNING" in text
        assert "fetching headlines…" in text
        # Agent output is escaped, never interpreted by the terminal.
        assert "\\x1b[31mred text" in "\n".join(app.log_view.lines)
        assert "running 1/10" in text and "queued 2" in text


async def test_a_capped_log_says_so(noop_settings):
    """R-19: past the per-test cap the store writes one notice; the pane shows it and says so."""
    from agenttui.core.domain import Status

    from .seed import Seed

    notice = "[agenttui] log truncated: the 10,000-byte cap per test was reached; later output is not stored"
    seed = Seed("flood", Status.COMPLETED, response="done", exit_code=0, truncated=True,
                logs=[("stdout", "line 1"), ("stdout", "line 2"), ("system", notice)])
    await seed_store(noop_settings, [seed])
    app = fixed_app(noop_settings)
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_until(pilot, lambda: app.log_view.ended, what="log of test 1")
        await pilot.pause(0.1)
        text = screen_text(app)
        assert "log truncated: the 10,000-byte cap" in text
        assert "log · test 1 · COMPLETED · alice · truncated" in text


async def test_works_at_80x24_and_200x60(noop_settings):
    await seed_store(noop_settings, FINISHED + ACTIVE + QUEUED)
    app = fixed_app(noop_settings)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, app.data_loaded.is_set)
        for size in ((80, 24), (200, 60), (80, 24)):
            await pilot.resize_terminal(*size)
            await pilot.pause(0.1)
            text = screen_text(app)
            assert len(text.splitlines()) == size[1]
            for landmark in ("agenttui", "editor", "Queue", "History", "log · test 6", "Submit", "^q Quit"):
                assert landmark in text, (size, landmark)
            for pane in ("#editor", "#tests-tabs", "#log-view"):
                region = app.query_one(pane).region
                assert region.width >= 30 and region.height >= 5, (size, pane, region)
                assert region.right <= size[0] and region.bottom <= size[1], (size, pane, region)


async def test_no_color(noop_settings, monkeypatch):
    """NO_COLOR: Textual renders every line through a colour-stripping filter; our status
    styles also carry bold/italic so they stay distinguishable without colour."""
    from textual.filter import Monochrome, NoColor

    monkeypatch.setenv("NO_COLOR", "1")
    app = make_app(noop_settings)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, app.data_loaded.is_set)
        assert app.no_color
        filters = app.get_line_filters()
        assert any(isinstance(f, (Monochrome, NoColor)) for f in filters)
        strips = app.screen._compositor.render_strips()
        for strip in strips:
            for f in filters:
                strip = strip.apply_filter(f, app.styles.background)
            for segment in strip:
                style = segment.style
                if style is None:
                    continue
                for colour in (style.color, style.bgcolor):
                    if colour is not None and colour.triplet is not None:
                        r, g, b = colour.triplet
                        assert r == g == b, (segment.text, colour)


def test_agent_file_argument_opens_the_tui(monkeypatch, tmp_path):
    agent = tmp_path / "agent.py"
    agent.write_text("def run(query):\n    return query\n")
    calls = []
    import agenttui.tui.launch as launch

    monkeypatch.setattr(launch, "run_tui", lambda settings, agent_path=None: calls.append(agent_path) or 0)
    assert cli.main([str(agent)]) == 0
    assert calls == [agent]
    assert cli.main([]) == 0
    assert calls == [agent, None]
    # Not a .py file, or a headless command: the argument parser decides as before.
    with pytest.raises(SystemExit):
        cli.main([str(tmp_path / "missing.py")])


async def test_an_unreachable_server_is_shown_not_fatal(noop_settings, tmp_path):
    """A shared server that is down: the status bar says so, actions say why they cannot run,
    and the app keeps working (and retrying)."""
    from agenttui.client.remote import SocketClient
    from agenttui.core.config import load_settings

    settings = load_settings(backend="noop", socket_path=tmp_path / "nobody-listens.sock")
    app = make_app(settings, client=SocketClient(settings))
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: app.status_bar.problem is not None, timeout=30, what="problem shown")
        assert "cannot reach the engine" in app.status_bar.problem
        assert "cannot reach the engine" in screen_text(app)
        app.query_one("#query").value = "anyone there?"
        await pilot.press("ctrl+j")
        await wait_until(pilot, lambda: any("cannot reach the engine" in n.message for n in app._notifications))
