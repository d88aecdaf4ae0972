"""Helpers for the TUI tests: deterministic apps, waiting on conditions, reading the screen."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable

import pytest

# Before Textual reads it (if nothing imported Textual yet); apps also get animation_level="none".
os.environ.setdefault("TEXTUAL_ANIMATIONS", "none")

from agenttui.client.local import LocalClient  # noqa: E402
from agenttui.core.config import Settings, load_settings  # noqa: E402
from agenttui.tui.app import AgentTUI  # noqa: E402

from .seed import ALICE, NOW  # noqa: E402


@pytest.fixture(autouse=True)
def _tui_env(monkeypatch):
    monkeypatch.setenv("TEXTUAL_ANIMATIONS", "none")
    monkeypatch.delenv("NO_COLOR", raising=False)


@pytest.fixture
def noop_settings() -> Settings:
    return load_settings(backend="noop", noop_run_s=0.3)


def make_app(settings: Settings, **kwargs) -> AgentTUI:
    """An app with no cursor blink, no animations and no keymap from the (isolated) config.
    Unless told otherwise it hosts the engine in-process (work the whole queue), as
    `agenttui --in-process` does; tests of the server path pass a SocketClient."""
    kwargs.setdefault("client", LocalClient(settings, work_whole_queue=True))
    kwargs.setdefault("cursor_blink", False)
    kwargs.setdefault("keymap", {})
    kwargs.setdefault("watch_interval_s", 0.2)  # tests wait on queue changes: poll faster
    app = AgentTUI(settings, **kwargs)
    app.animation_level = "none"
    return app


def fixed_app(settings: Settings, **kwargs) -> AgentTUI:
    """Fixed clock, UTC times and an owner that does not depend on who runs the tests; its
    client works no queue (queued tests stay queued, for stable snapshots)."""
    return make_app(
        settings,
        client=LocalClient(settings, owner=ALICE),
        clock=lambda: NOW,
        localtime=time.gmtime,
        **kwargs,
    )


async def wait_until(pilot, predicate: Callable[[], object], timeout: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")
        await pilot.pause(0.05)


def screen_text(app) -> str:
    """The current screen as plain text (what a user reads)."""
    strips = app.screen._compositor.render_strips()
    return "\n".join("".join(segment.text for segment in strip) for strip in strips)


def run(coro):
    return asyncio.run(coro)


async def type_text(pilot, text: str) -> None:
    """Type like a user: every character is a key press (newline = enter)."""
    await pilot.press(*("enter" if ch == "\n" else ch for ch in text))


def status_of(app, test_id: int) -> str | None:
    view = app.views.get(test_id)
    return view.status.value if view is not None else None
