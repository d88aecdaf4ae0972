"""The main screen: status bar, editor, queue / history tabs and the log pane."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from textual import events, on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer, Input, Static, TabbedContent, TabPane, TextArea

from agenttui.tui.formatting import LocalTime
from agenttui.tui.widgets.editor import EditorDefaults, EditorPane
from agenttui.tui.widgets.options_form import OptionsForm
from agenttui.tui.widgets.history_table import HistoryTable
from agenttui.tui.widgets.log_view import LogView
from agenttui.tui.widgets.queue_table import QueueTable
from agenttui.tui.widgets.status_bar import StatusBar
from agenttui.tui.widgets.test_table import TestTable

if TYPE_CHECKING:
    from agenttui.client.settings import ClientSettings
    from agenttui.core.config import Settings


class MainScreen(Screen[None]):
    """The four panes. (A named screen so modal screens and the detail screen stack on it.)"""

    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (110, "-wide")]
    AUTO_FOCUS = "#agent-code"  # focused once: each focus change restyles the editor (:focus-within)

    class Mounted(Message):
        """The main screen's widgets exist: the app sets them up and shows the engine's data."""

        def __init__(self, screen: MainScreen) -> None:
            super().__init__()
            self.screen = screen

    def __init__(
        self,
        settings: Settings | ClientSettings,
        *,
        agent_path: Path | None = None,
        clock: Callable[[], float] = time.time,
        localtime: LocalTime = time.localtime,
        cursor_blink: bool = True,
    ) -> None:
        super().__init__(id="main-screen")
        self.agent_path = agent_path
        self.clock = clock
        self.localtime = localtime
        self.cursor_blink = cursor_blink
        self.backend = settings.backend
        self.defaults = EditorDefaults(
            timeout_s=settings.default_timeout_s,
            cpus=settings.default_cpus,
            memory_mb=settings.default_memory_mb,
            pids=settings.default_pids,
            egress=settings.default_egress,
        )

    def compose(self) -> ComposeResult:
        # The breakpoint class the first Resize would set, set before the widgets are styled:
        # set after, it restyles every one of them.
        width = self.app.size.width
        current = max((b for b in self.HORIZONTAL_BREAKPOINTS if width >= b[0]), default=(0, ""))[1]
        for _, name in self.HORIZONTAL_BREAKPOINTS:
            self.set_class(name == current, name, update=False)
        yield StatusBar(self.backend, id="status-bar")
        with Horizontal(id="panes"):
            editor = EditorPane(self.defaults, id="editor")
            editor.border_title = "editor · F2"
            yield editor
            with Vertical(id="right"):
                with TabbedContent(id="tests-tabs", initial="tab-queue"):
                    with TabPane("Queue · F3", id="tab-queue"):
                        yield QueueTable(id="queue-table")
                        yield Static("No running or queued tests. Write an agent and press ctrl+j.",
                                     id="queue-empty", classes="empty")
                    with TabPane("History · F4", id="tab-history"):
                        yield Input(placeholder="/ filter: query, response, error, owner, status",
                                    compact=True, id="history-filter")
                        yield HistoryTable(id="history-table")
                        yield Static("No finished tests.", id="history-empty", classes="empty")
                log = LogView(id="log-view")
                log.border_title = "log · F5"
                yield log
        # No "^p palette" entry: at 80 columns it would push the pane keys off (the help lists ctrl+p).
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self._set_cursor_blink(self)
        for table in self.query(TestTable):
            table.clock = self.clock
            table.localtime = self.localtime
        editor = self.query_one(EditorPane)
        if self.agent_path is not None:
            try:
                editor.load_file(self.agent_path)
            except (OSError, UnicodeDecodeError) as exc:
                self.notify(f"cannot load {self.agent_path}: {exc}", severity="error", markup=False)
        self.query_one("#log-view", LogView).reset(None, "Select a test in the queue or history to see its log.")
        editor.query_one("#agent-code", TextArea).focus()
        # Posted to the app itself rather than bubbled through this screen's queue: the app
        # handles it first thing once started, before anything the engine posts.
        self.app.post_message(self.Mounted(self))

    def focus_pane(self, pane: str) -> None:
        """Focus the editor's code, the queue, the history, the log or the Options' Network field."""
        tests = self.query_one("#tests-tabs", TabbedContent)
        if pane == "editor":
            self.query_one("#agent-code", TextArea).focus()
        elif pane in ("queue", "history"):
            tests.active = f"tab-{pane}"
            table = self.query_one(f"#{pane}-table", TestTable)
            # An empty (hidden) table cannot take the focus: the pane's tab row or filter does.
            fallback = tests.query_one("ContentTabs") if pane == "queue" else self.query_one("#history-filter")
            (table if table.display else fallback).focus()
        elif pane == "log":
            self.query_one("#log-view", LogView).focus()
        elif pane == "options":
            self.query_one(EditorPane).show_field("tab-options", "egress")

    @on(events.DescendantFocus)
    @on(events.DescendantBlur)
    def _focus_moved(self) -> None:
        self.call_later(self._mark_tests_pane)  # once `focused` is the new widget

    def _mark_tests_pane(self) -> None:
        tests = self.query_one("#tests-tabs", TabbedContent)
        inside = self.focused is not None and tests in self.focused.ancestors
        tests.query_one("ContentTabs").set_class(inside, "-pane-focused")

    def on_key(self, event: events.Key) -> None:
        """A printable key typed where no text goes (a table, the log, a tab row, the Submit
        button) that is no key of that place would be lost: it goes to the Query field, and
        the focus with it (docs/tui.md, the help's "typing" row)."""
        # Text fields stop the printable keys they take: one that reaches the screen was taken
        # by nothing (also when typed on a pane faster than the focus moved, as tmux relays it).
        if not event.is_printable or event.character is None:
            return
        if event.key in self.active_bindings:
            return  # the pane's own key (c, r, e, ?, / ...)
        event.stop()
        event.prevent_default()
        query = self.query_one("#query", Input)
        self.set_focus(query)  # at once (focus() defers it), so its Focus event is queued first
        # After the field's Focus (which selects its text): the key is added, never a replacement.
        query.call_later(self._append_to, query, event.character)

    @staticmethod
    def _append_to(field: Input, text: str) -> None:
        field.cursor_position = len(field.value)
        field.insert_text_at_cursor(text)

    def _set_cursor_blink(self, root: Widget) -> None:
        if not self.cursor_blink:
            for widget in root.query("Input, TextArea"):
                widget.cursor_blink = False  # type: ignore[attr-defined]

    @on(OptionsForm.Mounted)
    def _options_mounted(self, message: OptionsForm.Mounted) -> None:
        self._set_cursor_blink(message.control)
