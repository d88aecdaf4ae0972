"""compare() and the text of `suite diff` on hand-made reports."""

from agenttui.suites.compare import compare, diff_text
from agenttui.suites.report import CaseReport, RepeatResult, SuiteReport


def case(case_id: str, passes: int, n: int = 5, response: str = "Hello\nworld",
         tokens: int = 100, cost: float = 0.001, seconds: float = 1.0) -> CaseReport:
    return CaseReport(case_id, f"query {case_id}", [
        RepeatResult(i + 1, 100 + i, "COMPLETED", i < passes,
                     [] if i < passes else ["contains 'world' not found"], response,
                     tokens_in=tokens // 2, tokens_out=tokens - tokens // 2, cost_usd=cost,
                     duration_s=seconds)
        for i in range(n)
    ])


def report(run_id: int, cases: list[CaseReport]) -> SuiteReport:
    return SuiteReport(run_id, "greetings", "s" * 64, f"{run_id}" * 64, 1_700_000_000.0, "ana", cases)


def test_three_drops_to_one_in_five_are_the_only_regressions():
    baseline = report(1, [case(f"c{i}", 5) for i in range(6)])
    candidate = report(2, [case("c0", 1), case("c1", 1), case("c2", 1), case("c3", 4),
                           case("c4", 5), case("c5", 5)])
    comparison = compare(baseline, candidate)
    assert [v.case_id for v in comparison.regressions] == ["c0", "c1", "c2"]
    assert comparison.by_case()["c3"].kind == "unchanged"
    assert comparison.totals()["regressed"] == 3 and comparison.totals()["unchanged"] == 3
    assert (comparison.baseline_run_id, comparison.candidate_run_id) == (1, 2)


def test_a_candidate_equal_to_the_baseline_has_no_regression():
    cases = [case(f"c{i}", 5) for i in range(3)]
    comparison = compare(report(1, cases), report(2, cases))
    assert comparison.regressions == []
    assert {v.kind for v in comparison.cases} == {"unchanged"}


def test_new_and_removed_cases():
    comparison = compare(report(1, [case("old", 5), case("kept", 5)]),
                         report(2, [case("kept", 5), case("fresh", 2)]))
    assert [(v.case_id, v.kind) for v in comparison.cases] == [
        ("kept", "unchanged"), ("fresh", "new"), ("old", "removed")]


def test_diff_text_shows_flips_response_changes_and_measure_deltas():
    a = report(1, [case("greet", 5), case("same", 5)])
    b = report(2, [case("greet", 1, response="Hello\nplanet", tokens=300, cost=0.003, seconds=2.5),
                   case("same", 5)])
    text = diff_text(a, b)
    lines = text.splitlines()
    assert lines[0] == "suite 'greetings': run 1 → run 2"
    assert "greet: 5/5 → 1/5  regressed: 1/5 after 5/5 (Fisher's exact, p=0.024 < 0.05)" in lines
    assert ("  responses: changed in 5 of 5 repeats; repeat 1, line 2: 'world' → 'planet'"
            in lines)
    assert ("  means: tokens 100 → 300 (+200), cost $0.0010 → $0.0030 (+$0.0020), "
            "latency 1.00s → 2.50s (+1.50s)") in lines
    assert "  responses: the same in all 5 repeats" in lines
    assert "agent changed" in text
    assert lines[-1] == "1 regressed, 1 unchanged"


def test_diff_text_cuts_long_changed_lines():
    a = report(1, [case("long", 5, response="x" * 500)])
    b = report(2, [case("long", 5, response="y" * 500)])
    change = next(line for line in diff_text(a, b).splitlines() if "responses:" in line)
    assert "…" in change and len(change) < 250
