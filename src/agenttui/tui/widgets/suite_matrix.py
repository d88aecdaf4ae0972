"""The Suites view's case × repeat matrix: a row per case, a cell per repeat (✓ passed, ✗ failed,
● running, · queued, ' ' not submitted), then the case's passes, stability and its verdict
against the baseline."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.message import Message
from textual.widgets import DataTable
from textual.widgets.data_table import RowDoesNotExist

from agenttui.core.display import printable
from agenttui.suites.results import RepeatResult
from agenttui.suites.stats import case_stats
from agenttui.tui.suite_link import RunDetail

# What a cell shows, and the component class that colours it.
MARKS = {"passed": ("✓", "suite-matrix--passed"), "failed": ("✗", "suite-matrix--failed"),
         "running": ("●", "suite-matrix--running"), "queued": ("·", "suite-matrix--queued"),
         "unsubmitted": (" ", "suite-matrix--queued")}


def cell_state(result: RepeatResult, live: dict[int, str]) -> str:
    if result.status is not None:
        return "passed" if result.passed else "failed"
    status = live.get(result.test_id) if result.test_id is not None else None
    if status in ("BUILDING", "RUNNING"):
        return "running"
    return "queued" if result.test_id is not None else "unsubmitted"


class SuiteMatrix(DataTable[Any]):
    COMPONENT_CLASSES = {f"suite-matrix--{name}" for name in ("passed", "failed", "running", "queued")}

    class CaseHighlighted(Message):
        def __init__(self, case_id: str) -> None:
            super().__init__()
            self.case_id = case_id

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.detail: RunDetail | None = None
        self._shape: tuple[int, int, tuple[str, ...]] | None = None  # run, repeats, case ids

    def _mark(self, state: str) -> Text:
        mark, style = MARKS[state]
        return Text(mark, style=self.get_component_rich_style(style, partial=True), justify="center")

    def rows_of(self, detail: RunDetail) -> list[tuple[str, list[Any]]]:
        verdicts = detail.comparison.by_case() if detail.comparison is not None else {}
        repeats = detail.run.repeat
        rows = []
        for case in detail.report.cases:
            stats = case_stats(case)
            marks = [self._mark(cell_state(r, detail.live)) for r in case.repeats]
            marks += [Text("")] * (repeats - len(marks))
            verdict = verdicts.get(case.case_id)
            rows.append((case.case_id, [printable(case.case_id), *marks[:repeats],
                                        f"{stats.passes}/{stats.finished}", stats.stability,
                                        verdict.kind if verdict is not None else "—"]))
        for verdict in (v for v in verdicts.values() if v.kind == "removed"):
            rows.append((verdict.case_id, [printable(verdict.case_id), *[Text("")] * repeats, "—", "—", "removed"]))
        return rows

    def show_run(self, detail: RunDetail | None) -> None:
        """Show the run's cases, the cursor staying on the same case when the run is the same."""
        self.detail = detail
        if detail is None:
            self.clear(columns=True)
            self._shape = None
            return
        rows = self.rows_of(detail)
        shape = (detail.run.id, detail.run.repeat, tuple(key for key, _ in rows))
        if shape == self._shape:
            for row_index, (_key, cells) in enumerate(rows):
                for column, value in enumerate(cells):
                    self.update_cell_at((row_index, column), value, update_width=True)
            return
        same_run = self._shape is not None and self._shape[0] == detail.run.id
        current = self.selected_case_id if same_run else None
        self.clear(columns=True)
        self.add_column("Case", key="case")
        for repeat in range(1, detail.run.repeat + 1):
            self.add_column(f"#{repeat}", key=f"r{repeat}")
        for key, label in (("passes", "Passes"), ("stability", "Stability"), ("verdict", "Verdict")):
            self.add_column(label, key=key)
        for key, cells in rows:
            self.add_row(*cells, key=key)
        self._shape = shape
        if current is not None:
            self.select_case(current)
        elif rows:
            self.post_message(self.CaseHighlighted(rows[0][0]))

    @property
    def selected_case_id(self) -> str | None:
        if not self.row_count:
            return None
        try:
            key, _ = self.coordinate_to_cell_key(self.cursor_coordinate)
        except RowDoesNotExist:
            return None
        return key.value

    def select_case(self, case_id: str) -> bool:
        try:
            row = self.get_row_index(case_id)
        except RowDoesNotExist:
            return False
        self.move_cursor(row=row, animate=False)
        return True

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        if event.row_key.value is not None:
            self.post_message(self.CaseHighlighted(event.row_key.value))
