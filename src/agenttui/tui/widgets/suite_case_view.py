"""The Suites view's case pane: one case's repeats in the selected run beside the same case in
the suite's baseline run (status, pass or the reasons it failed, the response), under the
case's verdict against the baseline."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Static

from agenttui.core.display import printable
from agenttui.suites.results import CaseReport, RepeatResult
from agenttui.tui.formatting import duration, printable_text
from agenttui.tui.suite_link import RunDetail
from agenttui.tui.widgets.suite_matrix import MARKS, cell_state

RESPONSE_CHARS = 2000  # of each response shown here (the detail screen of its test has it whole)


def repeat_lines(result: RepeatResult, live: dict[int, str], other: RepeatResult | None) -> list[str]:
    """One repeat as the pane tells it; `other`: the same repeat on the other side, to say
    whether the response changed."""
    state = cell_state(result, live)
    where = f"test {result.test_id}" if result.test_id is not None else "not submitted"
    if result.status is None:
        status = live.get(result.test_id, "QUEUED") if result.test_id is not None else "not submitted"
        return [f"#{result.repeat} {MARKS[state][0]} {status.lower()} ({where})"]
    if result.model_traffic not in (None, "live"):  # its model calls came from or went to a cassette
        where += f", {result.model_traffic}"
    head = f"#{result.repeat} {MARKS[state][0]} {result.status.lower()} in {duration(result.duration_s)} ({where})"
    lines = [head]
    lines += [f"  ✗ {printable(reason)}" for reason in result.reasons]
    response = result.response
    if response is None:
        lines.append("  (no response)")
    else:
        same = ""
        if other is not None and other.status is not None:
            same = " (same as the other side)" if other.response == response else " (changed)"
        cut = response if len(response) <= RESPONSE_CHARS else response[:RESPONSE_CHARS] + "…"
        lines.append(f"  response{same}:")
        lines += ["    " + line for line in printable_text(cut).split("\n")]
    return lines


def case_text(case: CaseReport | None, live: dict[int, str], other: CaseReport | None, missing: str) -> str:
    if case is None:
        return missing
    others = {r.repeat: r for r in other.repeats} if other is not None else {}
    lines = [f"query: {printable(case.query)}"]
    for result in case.repeats:
        lines += repeat_lines(result, live, others.get(result.repeat))
    return "\n".join(lines)


class SuiteCaseView(Vertical):
    def compose(self) -> ComposeResult:
        yield Static("", id="suite-case-verdict", markup=False)
        with Horizontal(id="suite-case-sides"):
            with VerticalScroll(id="suite-case-run") as run:
                run.border_title = "this run"
                yield Static("", id="suite-case-run-text", markup=False)
            with VerticalScroll(id="suite-case-baseline") as baseline:
                baseline.border_title = "baseline"
                yield Static("", id="suite-case-baseline-text", markup=False)

    def show_case(self, detail: RunDetail | None, case_id: str | None) -> None:
        run_side = self.query_one("#suite-case-run", VerticalScroll)
        base_side = self.query_one("#suite-case-baseline", VerticalScroll)
        verdict_line = self.query_one("#suite-case-verdict", Static)
        if detail is None or case_id is None:
            verdict_line.update("Select a run (↑ ↓) to see its cases.")
            self.query_one("#suite-case-run-text", Static).update("")
            self.query_one("#suite-case-baseline-text", Static).update("")
            return
        case = next((c for c in detail.report.cases if c.case_id == case_id), None)
        base = detail.baseline_case(case_id)
        verdict = detail.comparison.by_case().get(case_id) if detail.comparison is not None else None
        if verdict is not None:
            verdict_line.update(f"case {printable(case_id)}: {verdict.kind}: {verdict.detail}")
        elif detail.run.baseline:
            verdict_line.update(f"case {printable(case_id)}: this run is the suite's baseline")
        else:
            verdict_line.update(f"case {printable(case_id)}: no baseline yet (b blesses a run)")
        run_side.border_title = f"run {detail.run.id}"
        base_side.border_title = (f"baseline · run {detail.baseline.run_id}" if detail.baseline is not None
                                  else "baseline")
        self.query_one("#suite-case-run-text", Static).update(
            case_text(case, detail.live, base, "not in this run (removed)"))
        no_base = "no baseline: bless a run (b) to compare with it" if detail.baseline is None \
            else "not in the baseline (a new case)"
        self.query_one("#suite-case-baseline-text", Static).update(case_text(base, {}, case, no_base))
