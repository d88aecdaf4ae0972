"""The history pane's table: finished tests with time, status, duration, their model calls'
totals (calls, tokens in/out, cost or "unmeasured") and a response preview."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.binding import Binding

from agenttui.core.wire import HIDDEN_CONTENT, TestView
from agenttui.tui.call_text import totals_cells
from agenttui.tui.formatting import clock_time, duration, preview
from agenttui.tui.widgets.test_table import TEST_BINDINGS, TestTable


class HistoryTable(TestTable):
    COLUMNS = (
        ("id", "ID"),
        ("time", "Time"),
        ("status", "Status"),
        ("took", "Took"),
        ("calls", "Calls"),
        ("tokens", "Tokens"),
        ("cost", "Cost"),
        ("owner", "Owner"),
        ("response", "Response"),
    )
    BINDINGS = [
        *TEST_BINDINGS,
        # Rare, and asks first: in the help, not the footer (which keeps room for the pane keys).
        Binding("x", "app.clear_history", "Clear old", id="clear_history", show=False,
                tooltip="Archive old finished tests and purge their logs (asks first)"),
    ]

    def cells(self, view: TestView, now: float) -> tuple[Any, ...]:
        shown = view.response if view.response is not None else (view.error or "")
        calls, tokens, cost = totals_cells(view.model_calls)
        return (
            str(view.id),
            clock_time(view.created_at, self.localtime),
            self.status_text(view),
            duration(view.duration_s),
            Text(calls, justify="right"),
            Text(tokens, justify="right"),
            Text(cost, justify="right"),
            Text(view.owner_name),
            Text(HIDDEN_CONTENT if view.content_hidden else preview(shown, 50)),
        )
