"""Comparing two suite runs: the verdict on every case against the baseline (`suite run`,
`suite bless`), and the text of `agenttui suite diff RUN_A RUN_B`."""

from __future__ import annotations

from dataclasses import dataclass
from statistics import fmean

from agenttui.suites.results import CaseReport, RepeatResult, SuiteReport
from agenttui.suites.stats import CaseVerdict, counts, verdict

KINDS = ("regressed", "improved", "unchanged", "inconclusive", "new", "removed")
_CUT = 60  # characters of a changed response line shown in the diff


@dataclass
class Comparison:
    baseline_run_id: int
    candidate_run_id: int
    cases: list[CaseVerdict]

    @property
    def regressions(self) -> list[CaseVerdict]:
        return [v for v in self.cases if v.kind == "regressed"]

    def by_case(self) -> dict[str, CaseVerdict]:
        return {v.case_id: v for v in self.cases}

    def totals(self) -> dict[str, int]:
        """How many cases of each kind, every kind present (zero when none)."""
        found = dict.fromkeys(KINDS, 0)
        for v in self.cases:
            found[v.kind] += 1
        return found


def _paired(a: SuiteReport, b: SuiteReport) -> list[tuple[str, CaseReport | None, CaseReport | None]]:
    """Cases in b's order, then those only in a (in a's order)."""
    in_a = {c.case_id: c for c in a.cases}
    in_b = {c.case_id: c for c in b.cases}
    pairs = [(c.case_id, in_a.get(c.case_id), c) for c in b.cases]
    pairs += [(c.case_id, c, None) for c in a.cases if c.case_id not in in_b]
    return pairs


def compare(baseline: SuiteReport, candidate: SuiteReport) -> Comparison:
    return Comparison(
        baseline_run_id=baseline.run_id,
        candidate_run_id=candidate.run_id,
        cases=[verdict(case_id, old, new) for case_id, old, new in _paired(baseline, candidate)],
    )


def _finished(case: CaseReport) -> list[RepeatResult]:
    return [r for r in case.repeats if r.status is not None]


def mean_of(repeats: list[RepeatResult], field: str) -> float | None:
    """The mean of one measure (tokens_in + tokens_out for "tokens") over the repeats that have it."""
    if field == "tokens":
        values = [
            (r.tokens_in or 0) + (r.tokens_out or 0)
            for r in repeats
            if r.tokens_in is not None or r.tokens_out is not None
        ]
    else:
        values = [v for r in repeats if (v := getattr(r, field)) is not None]
    return fmean(values) if values else None


def _cut(text: str) -> str:
    return repr(text if len(text) <= _CUT else text[: _CUT - 1] + "…")


def _first_difference(old: str, new: str) -> str:
    """Where two responses first differ: the line number and both lines, cut."""
    old_lines, new_lines = old.splitlines() or [""], new.splitlines() or [""]
    for number, (x, y) in enumerate(zip(old_lines, new_lines), start=1):
        if x != y:
            return f"line {number}: {_cut(x)} → {_cut(y)}"
    number = min(len(old_lines), len(new_lines)) + 1
    if len(old_lines) > len(new_lines):
        return f"line {number}: {_cut(old_lines[number - 1])} removed"
    if len(new_lines) > len(old_lines):
        return f"line {number}: {_cut(new_lines[number - 1])} added"
    return "whitespace at the end"  # same lines, different trailing newline


def _response_change(old: CaseReport, new: CaseReport) -> str:
    """Repeat by repeat (same repeat number on both sides), how many responses changed."""
    old_by_repeat = {r.repeat: r.response for r in _finished(old)}
    changed = []
    compared = 0
    for r in _finished(new):
        if r.repeat not in old_by_repeat:
            continue
        compared += 1
        before, after = old_by_repeat[r.repeat] or "", r.response or ""
        if before != after:
            changed.append((r.repeat, before, after))
    if not compared:
        return "responses: no repeat finished on both sides"
    if not changed:
        return f"responses: the same in all {compared} repeats"
    repeat, before, after = changed[0]
    return (f"responses: changed in {len(changed)} of {compared} repeats; "
            f"repeat {repeat}, {_first_difference(before, after)}")


def _delta(label: str, old: float | None, new: float | None, shown) -> str | None:
    if old is None and new is None:
        return None
    if old is None or new is None:
        return f"{label} {shown(old) if old is not None else '—'} → {shown(new) if new is not None else '—'}"
    sign = "+" if new >= old else "-"
    return f"{label} {shown(old)} → {shown(new)} ({sign}{shown(abs(new - old))})"


def _measure_changes(old: CaseReport, new: CaseReport) -> str | None:
    a, b = _finished(old), _finished(new)
    parts = [
        _delta("tokens", mean_of(a, "tokens"), mean_of(b, "tokens"), lambda v: f"{v:.0f}"),
        _delta("cost", mean_of(a, "cost_usd"), mean_of(b, "cost_usd"), lambda v: f"${v:.4f}"),
        _delta("latency", mean_of(a, "duration_s"), mean_of(b, "duration_s"), lambda v: f"{v:.2f}s"),
    ]
    shown = [p for p in parts if p]
    return "means: " + ", ".join(shown) if shown else None


def diff_text(a: SuiteReport, b: SuiteReport) -> str:
    """`agenttui suite diff A B`: per case, the flip of its pass count with the verdict (A taken
    as the baseline), whether the responses changed, and the change in the means of tokens, cost
    and latency."""
    lines = [f"suite {a.suite_name!r}: run {a.run_id} → run {b.run_id}"]
    if a.suite_digest != b.suite_digest:
        lines.append(f"  suite file changed: {a.suite_digest[:12]} → {b.suite_digest[:12]}")
    if a.agent_digest != b.agent_digest:
        lines.append(f"  agent changed: {a.agent_digest[:12]} → {b.agent_digest[:12]}")
    comparison = compare(a, b)
    verdicts = comparison.by_case()
    for case_id, old, new in _paired(a, b):
        v = verdicts[case_id]
        before = "—" if old is None else "{}/{}".format(*counts(old))
        after = "—" if new is None else "{}/{}".format(*counts(new))
        lines.append(f"{case_id}: {before} → {after}  {v.kind}: {v.detail}")
        if old is not None and new is not None:
            lines.append("  " + _response_change(old, new))
            measures = _measure_changes(old, new)
            if measures:
                lines.append("  " + measures)
    totals = comparison.totals()
    lines.append(", ".join(f"{n} {kind}" for kind, n in totals.items() if n) or "no cases")
    return "\n".join(lines)
