"""The detail screen of one test: full response, error, metrics (R-16) and the full log.

Once mounted it asks the app (by message) to load its test: the app's engine link reads it in a
worker of this screen and the results arrive as messages. A test that is still running keeps
streaming into the log here, and the summary is refreshed when it ends.
"""

from __future__ import annotations

import time
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Label, Static

from agenttui.core.wire import TestView
from agenttui.core.display import printable
from agenttui.tui.formatting import LocalTime, clock_time, duration, log_lines, printable_text, size
from agenttui.tui.messages import DetailLoaded, LogEnded, LogLines, LogUnavailable
from agenttui.tui.widgets.log_view import LogView


def metric_rows(view: TestView) -> list[tuple[str, str]]:
    m: dict[str, Any] = view.metrics or {}
    cpu = m.get("cpu_s")
    wall = m.get("wall_s")
    cpu_text = "unknown"
    if cpu is not None:
        cpu_text = f"{cpu:.2f} s" + (f" ({100 * cpu / wall:.0f}%)" if wall else "")
    exit_code = view.exit_code if view.exit_code is not None else m.get("exit_code")
    return [
        ("wall", duration(view.duration_s)),
        ("build", duration(m.get("build_s")) + (" (built)" if m.get("image_built") else " (reused)" if "image_built" in m else "")),
        ("queue wait", duration(m.get("queue_wait_s"))),
        ("CPU", cpu_text),
        ("peak memory", size(m.get("peak_memory_bytes"))),
        ("exit code", "-" if exit_code is None else str(exit_code)),
        ("OOM killed", "yes" if view.oom_killed or m.get("oom_killed") else "no"),
        ("model traffic", view.traffic_note()),  # live, recorded or replayed (docs/replay.md)
    ]


class DetailScreen(Screen[None]):
    BINDINGS = [
        Binding("escape,q", "app.pop_screen", "Back", id="detail.back", tooltip="Back to the main screen"),
        Binding("c", "app.cancel_test", "Cancel", id="detail.cancel", tooltip="Cancel this test"),
        Binding("r", "app.retry_test", "Retry", id="detail.retry", tooltip="Run this test again (linked)"),
        Binding("e", "app.edit_retry", "Edit", id="detail.edit_retry",
                tooltip="Load this test into the editor for an edited retry"),
        Binding("d", "app.download_package", "Package", id="detail.package",
                tooltip="Write this test's deployment package"),
        Binding("t", "show_calls", "Calls", id="detail.calls",
                tooltip="This test's model calls: tokens, latency, cost; each call's messages and answer"),
    ]

    class Mounted(Message):
        """The screen is up: the app loads its test into it (DetailLoaded, then the log)."""

        def __init__(self, screen: DetailScreen) -> None:
            super().__init__()
            self.screen = screen

    def __init__(self, test_id: int, *, localtime: LocalTime = time.localtime, package: list[str] | None = None) -> None:
        super().__init__()
        self.test_id = test_id
        self.package = package  # where its deployment package was written (`d`), when it was
        self.localtime = localtime
        self.view: TestView | None = None
        self.loaded = False  # summary shown and every log line delivered

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="detail-summary") as summary:
            summary.border_title = f"test {self.test_id}"
            yield Static("loading…", id="detail-header", markup=False)
            # The reason it failed first: whole, before anything that could push it off screen.
            yield Label("Error", classes="detail-section", id="detail-error-label")
            yield Static("", id="detail-error", markup=False, classes="detail-text")
            yield Label("Package", classes="detail-section", id="detail-package-label")
            yield Static("", id="detail-package", markup=False, classes="detail-text")
            yield Horizontal(id="detail-metrics")
            yield Label("Response", classes="detail-section")
            yield Static("", id="detail-response", markup=False, classes="detail-text")
            yield Label("Query", classes="detail-section")
            yield Static("", id="detail-query", markup=False, classes="detail-text")
        log = LogView(id="detail-log")
        log.border_title = "log"
        yield log
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(LogView).reset(self.test_id)
        self.show_package(self.package)
        self.post_message(self.Mounted(self))

    def show_package(self, lines: list[str] | None) -> None:
        self.package = lines
        text = "\n".join(lines or [])
        self.query_one("#detail-package", Static).update(text)
        self.query_one("#detail-package", Static).display = bool(lines)
        self.query_one("#detail-package-label").display = bool(lines)

    def action_show_calls(self) -> None:
        from agenttui.tui.screens.calls import CallsScreen  # loads when first opened

        self.app.push_screen(CallsScreen(self.test_id, localtime=self.localtime))

    @on(DetailLoaded)
    def _loaded(self, message: DetailLoaded) -> None:
        message.stop()
        self._show(message.view)

    def _show(self, view: TestView) -> None:
        self.view = view
        lt = self.localtime
        header = (
            f"{view.status.value} · owner {view.owner_name} · priority {view.priority} · "
            f"{view.provider}/{printable(view.model_id)} · created {clock_time(view.created_at, lt, '%Y-%m-%d %H:%M:%S')}"
        )
        if view.finished_at:
            header += f" · ended {clock_time(view.finished_at, lt, '%H:%M:%S')}"
        if view.parent_id:
            header += f" · retry of test {view.parent_id}"
        if view.attempt > 1:
            header += f" · attempt {view.attempt}"
        self.query_one("#detail-header", Static).update(header)
        self.query_one("#detail-query", Static).update(printable(view.query))
        if view.response is not None:
            response = printable_text(view.response)
        else:
            response = "(none yet)" if not view.status.is_terminal else "(no response)"
        self.query_one("#detail-response", Static).update(response)
        error = self.query_one("#detail-error", Static)
        error.update(printable_text(view.error) if view.error else "")
        has_error = bool(view.error)
        error.display = has_error
        self.query_one("#detail-error-label").display = has_error
        metrics = self.query_one("#detail-metrics", Horizontal)
        metrics.remove_children()
        metrics.mount_all(
            Static(f"{name}: {value}", classes="metric", markup=False) for name, value in metric_rows(view)
        )
        log = self.query_one(LogView)
        log.border_title = f"log · {view.log_lines:,} lines" + (" · truncated at the cap" if view.log_truncated else "")

    @on(LogLines)
    def _lines(self, message: LogLines) -> None:
        message.stop()
        self.query_one(LogView).feed(log_lines(message.records))

    @on(LogEnded)
    def _ended(self, message: LogEnded) -> None:
        message.stop()
        if message.view is not None:  # the test's final state
            self._show(message.view)
        self.query_one(LogView).mark_ended()
        self.loaded = True

    @on(LogUnavailable)
    def _unavailable(self, message: LogUnavailable) -> None:
        message.stop()
        log = self.query_one(LogView)
        log.feed([f"[agenttui] {message.reason}"])
        log.mark_ended()
        self.loaded = True
