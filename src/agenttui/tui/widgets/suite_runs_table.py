"""The Suites view's runs table: a row per suite run, newest first, with its progress and its
verdict against the suite's baseline (live while the run goes)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.text import Text
from textual.message import Message
from textual.widgets import DataTable
from textual.widgets.data_table import RowDoesNotExist

from agenttui.tui.formatting import LocalTime, clock_time
from agenttui.tui.suite_link import RunSummary

PROGRESS_CELLS = 10


def progress_bar(finished: int, total: int) -> str:
    filled = PROGRESS_CELLS * finished // max(total, 1)
    return "█" * filled + "░" * (PROGRESS_CELLS - filled)


class SuiteRunsTable(DataTable[Any]):
    COLUMNS = (("id", "Run"), ("name", "Suite"), ("when", "When"), ("owner", "Owner"),
               ("progress", "Progress"), ("passed", "Passed"), ("verdict", "Verdict"))
    COMPONENT_CLASSES = {"suite-runs--regressed", "suite-runs--ok", "suite-runs--baseline"}

    class RunHighlighted(Message):
        def __init__(self, run_id: int) -> None:
            super().__init__()
            self.run_id = run_id

    def __init__(self, localtime: LocalTime, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.localtime = localtime
        self.runs: dict[int, RunSummary] = {}
        self._order: list[int] = []

    def on_mount(self) -> None:
        for key, label in self.COLUMNS:
            self.add_column(label, key=key)

    def _verdict(self, row: RunSummary) -> Text:
        if row.run.baseline:
            style = "suite-runs--baseline"
        elif "regressed" in row.verdict or "failing" in row.verdict:
            style = "suite-runs--regressed"
        else:
            style = "suite-runs--ok"
        return Text(row.verdict, style=self.get_component_rich_style(style, partial=True))

    def cells(self, row: RunSummary) -> tuple[Any, ...]:
        progress = f"{progress_bar(row.finished, row.total)} {row.finished}/{row.total}"
        if row.running:
            progress += f" ({row.running} to go)"
        return (str(row.run.id), Text(row.run.name), clock_time(row.run.created_at, self.localtime, "%m-%d %H:%M"),
                Text(row.run.owner_name), progress, f"{row.passed}/{row.finished}", self._verdict(row))

    def set_runs(self, rows: Sequence[RunSummary], selected: int | None = None) -> None:
        """Show `rows` in order, the cursor on `selected` (else on the same run as before)."""
        self.runs = {r.run.id: r for r in rows}
        order = [r.run.id for r in rows]
        if order == self._order:
            for row in rows:
                for (key, _label), value in zip(self.COLUMNS, self.cells(row)):
                    self.update_cell(str(row.run.id), key, value, update_width=True)
            return
        current = selected if selected is not None else self.selected_run_id
        self.clear()
        for row in rows:
            self.add_row(*self.cells(row), key=str(row.run.id))
        self._order = order
        if current is not None and current in self.runs:
            self.select_run(current)

    @property
    def selected_run_id(self) -> int | None:
        if not self.row_count:
            return None
        try:
            key, _ = self.coordinate_to_cell_key(self.cursor_coordinate)
        except RowDoesNotExist:
            return None
        return int(key.value) if key.value is not None else None

    def select_run(self, run_id: int) -> bool:
        try:
            row = self.get_row_index(str(run_id))
        except RowDoesNotExist:
            return False
        self.move_cursor(row=row, animate=False)
        return True

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        if event.row_key.value is not None:
            self.post_message(self.RunHighlighted(int(event.row_key.value)))
