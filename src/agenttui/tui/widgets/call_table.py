"""The calls view's table: one row per recorded model call of a test, oldest first (model,
status, tokens in and out, latency, cost or "unmeasured"); moving onto a row shows the call."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable

from agenttui.core.wire import ModelCallView
from agenttui.tui.call_text import call_cells, call_failed


class CallTable(DataTable[str | Text]):
    COLUMNS = (
        ("seq", "#"),
        ("model", "Model"),
        ("status", "Status"),
        ("in", "In"),
        ("out", "Out"),
        ("latency", "Latency"),
        ("cost", "Cost"),
    )
    RIGHT = ("in", "out", "latency", "cost")
    COMPONENT_CLASSES = {"call-table--failed", "call-table--other"}
    BINDINGS = [
        Binding("enter", "read_call", "Read", id="calls.read",
                tooltip="Read the selected call (its pane scrolls with the arrows, Page Up/Down)"),
    ]

    class CallHighlighted(Message):
        """The cursor is on a call (moved there, or the first call arrived)."""

        def __init__(self, call: ModelCallView) -> None:
            super().__init__()
            self.call = call

    class ReadCall(Message):
        """The user asked to read the highlighted call (enter)."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.calls: dict[str, ModelCallView] = {}

    def on_mount(self) -> None:
        for key, label in self.COLUMNS:
            self.add_column(label, key=key)

    def add_calls(self, calls: Sequence[ModelCallView]) -> None:
        """Append newly stored calls; the cursor stays where the user left it."""
        first = not self.calls
        for call in calls:
            key = str(call.seq)
            if key in self.calls:
                continue
            self.calls[key] = call
            self.add_row(*self._cells(call), key=key)
        if first and self.calls:
            self.post_message(self.CallHighlighted(next(iter(self.calls.values()))))

    def _cells(self, call: ModelCallView) -> list[str | Text]:
        style = ""
        if call.kind != "call":
            style = self.get_component_rich_style("call-table--other", partial=True)
        elif call_failed(call):
            style = self.get_component_rich_style("call-table--failed", partial=True)
        cells = []
        for (key, _label), value in zip(self.COLUMNS, call_cells(call)):
            justify = "right" if key in self.RIGHT else "left"
            cells.append(Text(value, style=style, justify=justify))  # type: ignore[arg-type]
        return cells

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        call = self.calls.get(event.row_key.value or "")
        if call is not None:
            self.post_message(self.CallHighlighted(call))

    def action_read_call(self) -> None:
        self.post_message(self.ReadCall())
