"""The queue pane: running and queued tests with position, estimated wait and elapsed time."""

from __future__ import annotations

from typing import Any

from rich.text import Text

from agenttui.core.wire import HIDDEN_CONTENT, TestView
from agenttui.tui.formatting import duration, preview
from agenttui.tui.widgets.test_table import TestTable


class QueueTable(TestTable):
    COLUMNS = (
        ("id", "ID"),
        ("status", "Status"),
        ("pos", "Pos"),
        ("wait", "Wait"),
        ("elapsed", "Elapsed"),
        ("prio", "Prio"),
        ("owner", "Owner"),
        ("query", "Query"),
    )
    TIME_COLUMNS = ("elapsed",)

    def cells(self, view: TestView, now: float) -> tuple[Any, ...]:
        if view.status.value == "QUEUED":
            started = view.created_at
        else:
            started = view.running_at or view.claimed_at or view.created_at
        return (
            str(view.id),
            self.status_text(view),
            f"#{view.position}" if view.position else "",
            f"~{duration(view.eta_s)}" if view.eta_s is not None else "",
            duration(now - started),
            view.priority,
            Text(view.owner_name),
            Text(HIDDEN_CONTENT if view.content_hidden else preview(view.query, 40)),
        )
