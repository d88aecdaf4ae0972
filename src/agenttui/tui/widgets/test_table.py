"""Shared base of the queue and history tables: one row per test, keyed by test id.

Single-letter keys live here (and not on the app) so typing in the editor is never hijacked.
They call app actions, which act on the selected test; the command palette calls the same ones.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable
from textual.widgets.data_table import RowDoesNotExist

from agenttui.core.wire import TestView
from agenttui.tui.formatting import LocalTime

TEST_BINDINGS = [
    Binding("enter", "app.show_detail", "Open", id="detail",
            tooltip="Open the test: full response, error, metrics and the full log"),
    Binding("c", "app.cancel_test", "Cancel", id="cancel",
            tooltip="Cancel the selected test (a queued one is dequeued; a running one is stopped)"),
    Binding("r", "app.retry_test", "Retry", id="retry",
            tooltip="Run the selected test again as a new test linked to it"),
    Binding("e", "app.edit_retry", "Edit", id="edit_retry",
            tooltip="Load the selected test into the editor; submitting it creates a linked retry"),
    Binding("d", "app.download_package", "Package", id="package",
            tooltip="Write a deployment package (zip) of the selected test and show its path"),
    Binding("t", "show_calls", "Calls", id="calls",
            tooltip="The selected test's model calls: tokens, latency, cost; each call's messages and answer"),
]


class TestTable(DataTable[Any]):
    """A table of tests. Subclasses define COLUMNS and `cells()`."""

    __test__ = False

    COLUMNS: Sequence[tuple[str, str]] = ()  # (key, label)
    COMPONENT_CLASSES = {
        "test-table--queued",
        "test-table--active",
        "test-table--completed",
        "test-table--failed",
        "test-table--cancelled",
    }
    BINDINGS = TEST_BINDINGS

    class TestHighlighted(Message):
        """The user moved onto a test (cursor move, or focus came to the table)."""

        __test__ = False

        def __init__(self, table: TestTable, test_id: int) -> None:
            super().__init__()
            self.table = table
            self.test_id = test_id

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes, cursor_type="row", zebra_stripes=True)
        self.views: dict[int, TestView] = {}
        self._order: list[int] = []
        self.clock: Callable[[], float] = time.time
        self.localtime: LocalTime = time.localtime

    def on_mount(self) -> None:
        for key, label in self.COLUMNS:
            self.add_column(label, key=key)

    # ------------------------------------------------------------------ data
    def cells(self, view: TestView, now: float) -> tuple[Any, ...]:  # pragma: no cover - abstract
        raise NotImplementedError

    def status_text(self, view: TestView) -> Text:
        status = view.status.value
        if view.status.value in ("BUILDING", "RUNNING"):
            style, label = "test-table--active", status + (" ✗" if view.cancel_requested else "")
        elif status == "QUEUED":
            style, label = "test-table--queued", status
        elif status == "COMPLETED":
            style, label = "test-table--completed", status
        elif status == "CANCELLED":
            style, label = "test-table--cancelled", status
        else:
            style, label = "test-table--failed", status
        return Text(label, style=self.get_component_rich_style(style, partial=True))

    def set_tests(self, views: Sequence[TestView]) -> None:
        """Show `views` in order, keeping the cursor on the same test when it is still there."""
        now = self.clock()
        self.views = {v.id: v for v in views}
        order = [v.id for v in views]
        if order == self._order:
            for view in views:
                for (key, _label), value in zip(self.COLUMNS, self.cells(view, now)):
                    # A cell may outgrow its column (QUEUED -> RUNNING): widen it, never cut it.
                    self.update_cell(str(view.id), key, value, update_width=True)
            return
        current = self.selected_test_id
        self.clear()
        for view in views:
            self.add_row(*self.cells(view, now), key=str(view.id))
        self._order = order
        if current is not None and current in self.views:
            self.move_cursor(row=order.index(current), animate=False)

    TIME_COLUMNS: Sequence[str] = ()  # keys of the columns that change with the clock

    def refresh_times(self) -> None:
        """Re-render only the time-dependent cells (elapsed) from the cached views."""
        if not self.TIME_COLUMNS:
            return
        now = self.clock()
        keys = [key for key, _label in self.COLUMNS]
        for view in self.views.values():
            cells = self.cells(view, now)
            for key in self.TIME_COLUMNS:
                self.update_cell(str(view.id), key, cells[keys.index(key)])

    @property
    def selected_test_id(self) -> int | None:
        if not self.row_count:
            return None
        try:
            key, _ = self.coordinate_to_cell_key(self.cursor_coordinate)
        except (RowDoesNotExist, Exception):
            return None
        return int(key.value) if key.value is not None else None

    def select_test(self, test_id: int) -> bool:
        """Move the cursor onto `test_id` if it is shown."""
        try:
            row = self.get_row_index(str(test_id))
        except RowDoesNotExist:
            return False
        self.move_cursor(row=row, animate=False)
        return True

    def action_show_calls(self) -> None:
        """The calls view of the selected test (issue 18)."""
        from agenttui.tui.screens.calls import CallsScreen  # loads when first opened

        test_id = self.selected_test_id
        if test_id is not None:
            self.app.push_screen(CallsScreen(test_id, localtime=self.localtime))

    # ------------------------------------------------------------------ events
    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if self.has_focus and event.row_key.value is not None:
            self.post_message(self.TestHighlighted(self, int(event.row_key.value)))

    def on_focus(self) -> None:
        test_id = self.selected_test_id
        if test_id is not None:
            self.post_message(self.TestHighlighted(self, test_id))
