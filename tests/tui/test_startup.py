"""Start-up: the first snapshot fetched while Textual loads (tui/launch.py), the lazily mounted
Options form, and the light modules of the default (socket client) path."""

from __future__ import annotations

import os
import subprocess
import sys

from textual.app import App, ComposeResult
from textual.screen import Screen
from textual.widgets import Input

from agenttui.client.remote import SocketClient
from agenttui.client.settings import load_client_settings
from agenttui.core.domain import KNOWN_PROVIDERS
from agenttui.tui.launch import prefetch_snapshot
from agenttui.tui.widgets.editor import PROVIDERS, EditorDefaults, EditorPane
from agenttui.tui.widgets.options_form import OptionsForm

from .conftest import make_app, screen_text, wait_until


class CountingClient(SocketClient):
    """The real socket client, noting which calls the app makes."""

    def __init__(self, settings) -> None:
        super().__init__(settings)
        self.calls: list[str] = []

    async def open(self) -> None:
        self.calls.append("open")
        await super().open()

    async def queue(self):
        self.calls.append("queue")
        return await super().queue()

    async def history(self, **kwargs):
        self.calls.append("history")
        return await super().history(**kwargs)


async def test_the_first_snapshot_is_in_the_first_frame(monkeypatch):
    """The snapshot read in a thread (starting the personal server) is on screen as soon as the
    main screen is, without a round trip of the app's own; the watcher then polls as usual."""
    monkeypatch.setenv("AGENTTUI_BACKEND", "noop")
    settings = load_client_settings()
    first = prefetch_snapshot(settings)
    assert first is not None
    queue, history = first.result(timeout=60)
    assert (queue.running, queue.tests, history) == (0, [], [])
    client = CountingClient(settings)
    app = make_app(settings, client=client, first_snapshot=first, watch_interval_s=30)
    async with app.run_test(size=(120, 40)) as pilot:
        assert app.data_loaded.is_set()
        assert client.calls == []  # no open, no queue, no history: all came with the snapshot
        await pilot.pause()
        assert f"running 0/{queue.cap}" in screen_text(app)
        app.wake_watcher(history=True)  # as an action does: polled at once, not in 30 s
        await wait_until(pilot, lambda: client.calls == ["queue", "history"], what="the watcher polled")


async def test_a_failed_first_snapshot_is_reported_and_retried(tmp_path):
    """A shared server that is down: the app reports it (and keeps trying) as without one."""
    settings = load_client_settings(socket_path=tmp_path / "nobody-listens.sock")
    first = prefetch_snapshot(settings)
    assert first is not None and first.exception(timeout=30) is not None
    client = CountingClient(settings)
    app = make_app(settings, client=client, first_snapshot=first)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: app.status_bar.problem is not None, timeout=30, what="problem shown")
        assert "cannot reach the engine" in app.status_bar.problem
        assert client.calls[0] == "open"
        assert not app.data_loaded.is_set()


def test_no_first_snapshot_in_process():
    assert prefetch_snapshot(load_client_settings(in_process=True)) is None


class EditorScreen(Screen[None]):
    def compose(self) -> ComposeResult:
        yield EditorPane(EditorDefaults(timeout_s=120, cpus=0.5, memory_mb=512, pids=64, egress="none"))

    def on_mount(self) -> None:
        # Before the first frame: the Options form is not mounted yet.
        self.query_one("#query", Input).value = "what is 2+2?"
        self.app.early = (list(self.query(OptionsForm)), self.query_one(EditorPane).collect())  # type: ignore[attr-defined]


class EditorApp(App[None]):
    def get_default_screen(self) -> Screen[None]:
        return EditorScreen()


async def test_a_submit_before_the_options_form_is_mounted_uses_the_defaults():
    app = EditorApp()
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        forms, early = app.early  # type: ignore[attr-defined]
        assert forms == []
        later = app.query_one(EditorPane).collect()  # now read from the form's widgets
        assert app.query(OptionsForm)
    assert early == later
    assert (early.timeout_s, early.limits.cpus, early.limits.memory_mb, early.limits.pids) == (120, 0.5, 512, 64)
    assert (early.provider.name, early.provider.model_id, early.priority.name, early.egress) == (
        "ollama", "llama3.2", "NORMAL", None)


async def test_the_lazy_options_form_gets_the_apps_cursor_settings(noop_settings):
    app = make_app(noop_settings)  # cursor_blink=False, as in every test
    async with app.run_test(size=(120, 40)) as pilot:
        await app.data_loaded.wait()
        await pilot.pause()
        inputs = app.query_one(OptionsForm).query("Input")
        assert inputs and not any(widget.cursor_blink for widget in inputs)


def test_the_providers_are_the_domains():
    assert PROVIDERS == KNOWN_PROVIDERS


def test_the_default_tui_path_loads_no_pydantic_nor_sqlalchemy(tmp_path):
    """Their imports were ~100-200 ms of the TUI's first paint: the socket client's path (the
    default) stays without them, up to the app showing that the server does not answer."""
    probe = (
        "import asyncio, sys\n"
        "from agenttui.client.settings import load_client_settings\n"
        "from agenttui.tui.launch import prefetch_snapshot\n"
        "settings = load_client_settings()\n"
        "first = prefetch_snapshot(settings)\n"
        "from agenttui.tui.app import AgentTUI\n"
        "async def main():\n"
        "    app = AgentTUI(settings, first_snapshot=first, keymap={})\n"
        "    async with app.run_test() as pilot:\n"
        "        while app.status_bar.problem is None:\n"
        "            await pilot.pause(0.05)\n"
        "asyncio.run(main())\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'pydantic', 'pydantic_settings', 'sqlalchemy', "
        "'sqlmodel', 'aiohttp', 'aiodocker'}))\n"
    )
    env = {**os.environ, "AGENTTUI_SOCKET_PATH": str(tmp_path / "nobody.sock"), "TEXTUAL_ANIMATIONS": "none"}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
