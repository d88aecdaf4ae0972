"""The history pane's table: finished tests with time, status, duration, a response preview and
their model calls' totals (calls, tokens in/out, cost or "unmeasured")."""

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
        ("owner", "Owner"),
        # The response first: in a narrow pane it is what a user reads; the totals are also in
        # the calls view (t) and `agenttui history`.
        ("response", "Response"),
        ("calls", "Calls"),
        ("tokens", "Tokens"),
        ("cost", "Cost"),
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
            Text(view.owner_name),
            Text(HIDDEN_CONTENT if view.content_hidden else preview(shown, 50)),
            Text(calls, justify="right"),
            Text(tokens, justify="right"),
            Text(cost, justify="right"),
        )
