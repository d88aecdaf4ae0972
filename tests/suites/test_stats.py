"""The per-case statistics and the verdict against the baseline, against values worked by hand."""

import pytest

from agenttui.suites.report import CaseReport, RepeatResult
from agenttui.suites.stats import (
    ALPHA,
    case_stats,
    fisher_higher,
    fisher_lower,
    pass_at_k,
    pass_hat_k,
    repeats_needed,
    verdict,
)


def case(passes: int, finished: int, pending: int = 0, case_id: str = "c") -> CaseReport:
    repeats = [
        RepeatResult(i + 1, i + 1, "COMPLETED" if i < passes else "FAILED", i < passes,
                     [] if i < passes else ["regex 'x' did not match 'y'"], "r")
        for i in range(finished)
    ]
    repeats += [RepeatResult(finished + i + 1, None, None, None, [], None) for i in range(pending)]
    return CaseReport(case_id, "q", repeats)


def test_fisher_one_sided_by_hand():
    # 1/5 after 5/5: 6 passes in all, the candidate draws 5 of 10. P(X <= 1) = P(X = 1)
    # = C(6,1) * C(4,4) / C(10,5) = 6/252 (X = 0 impossible: only 4 failures) = 0.0238.
    assert fisher_lower(5, 5, 1, 5) == pytest.approx(6 / 252)
    # 4/5 after 5/5: P(X <= 4) = P(X = 4) = C(9,4) * C(1,1) / 252 = 126/252 = 0.5.
    assert fisher_lower(5, 5, 4, 5) == pytest.approx(0.5)
    # 5/5 after 1/5: the mirror of the first.
    assert fisher_higher(1, 5, 5, 5) == pytest.approx(6 / 252)
    # 0/3 after 3/3: 1 / C(6,3) = 1/20 = 0.05 exactly (not below ALPHA); 0/4 after 4/4: 1/70.
    assert fisher_lower(3, 3, 0, 3) == pytest.approx(0.05)
    assert fisher_lower(4, 4, 0, 4) == pytest.approx(1 / 70)


def test_one_in_five_after_five_in_five_is_a_regression():
    v = verdict("c", case(5, 5), case(1, 5))
    assert v.kind == "regressed"
    assert (v.baseline, v.candidate) == ((5, 5), (1, 5))
    assert v.p_value == pytest.approx(6 / 252)
    assert v.detail == "1/5 after 5/5 (Fisher's exact, p=0.024 < 0.05)"


def test_four_in_five_after_five_in_five_is_unchanged():
    v = verdict("c", case(5, 5), case(4, 5))
    assert v.kind == "unchanged"
    assert v.p_value == pytest.approx(0.5)
    assert v.repeats_needed is None


def test_the_reverse_is_an_improvement():
    v = verdict("c", case(1, 5), case(5, 5))
    assert v.kind == "improved" and v.p_value == pytest.approx(6 / 252)


def test_too_few_repeats_is_inconclusive_with_the_repeats_that_would_decide():
    # 0/1 after 1/1: P = 1 / C(2,1) = 0.5; even that most extreme drop cannot be significant.
    v = verdict("c", case(1, 1), case(0, 1))
    assert v.kind == "inconclusive"
    # n/n against 0/n gives 1 / C(2n, n): n=3 -> 1/20 = 0.05 (not below), n=4 -> 1/70 < 0.05.
    assert v.repeats_needed == 4
    assert "4 repeats per side" in v.detail
    # 3 repeats a side: still short of deciding (exactly 0.05); 4 a side decides.
    assert verdict("c", case(3, 3), case(3, 3)).kind == "inconclusive"
    assert verdict("c", case(4, 4), case(4, 4)).kind == "unchanged"
    assert verdict("c", case(4, 4), case(0, 4)).kind == "regressed"


def test_repeats_needed_for_a_flaky_baseline():
    # Baseline rate 1/2, kept with n a side (n/2 passes, rounded half up). n=6: 3/6 then 0/6 gives
    # C(9,6)/C(12,6) = 84/924 = 0.091 and 6/6 gives the same by symmetry: no. n=7: 4/7 then 0/7
    # gives C(10,7)/C(14,7) = 120/3432 = 0.035 < 0.05: seven repeats a side decide.
    assert fisher_lower(3, 6, 0, 6) == pytest.approx(84 / 924)
    assert fisher_lower(4, 7, 0, 7) == pytest.approx(120 / 3432)
    assert repeats_needed(1, 2) == 7
    v = verdict("c", case(1, 2), case(1, 2))
    assert v.kind == "inconclusive" and v.repeats_needed == 7


def test_new_removed_and_not_finished():
    assert verdict("c", None, case(2, 3)).kind == "new"
    assert verdict("c", case(2, 3), None).kind == "removed"
    pending = verdict("c", case(5, 5), case(0, 0, pending=5))
    assert pending.kind == "inconclusive" and pending.detail.startswith("not finished")
    # Unfinished repeats do not count: 1/1 finished (4 pending) after 5/5 is judged on 1/1.
    partial = verdict("c", case(5, 5), case(1, 1, pending=4))
    assert partial.candidate == (1, 1)


def test_pass_at_k_and_pass_hat_k():
    # pass@k, unbiased: 1 - C(n-c, k) / C(n, k). n=5, c=1, k=2: 1 - C(4,2)/C(5,2) = 1 - 6/10 = 0.4.
    assert pass_at_k(5, 1, 2) == pytest.approx(0.4)
    # k = n (the run's own): 1 as soon as one try passed, 0 when none did.
    assert pass_at_k(5, 1, 5) == 1.0 and pass_at_k(5, 0, 5) == 0.0
    # pass^k = (c/n)^k: 4 of 5, k=5 -> 0.8^5 = 0.32768.
    assert pass_hat_k(5, 4, 5) == pytest.approx(0.32768)
    s = case_stats(case(4, 5, pending=1))
    assert (s.passes, s.finished, s.repeats) == (4, 5, 6)
    assert s.pass_at_k == 1.0 and s.pass_hat_k == pytest.approx(0.32768)
    assert s.stability == "flaky"
    assert case_stats(case(3, 3)).stability == "stable"
    assert case_stats(case(0, 3)).stability == "failing"
    assert case_stats(case(0, 0, pending=3)).stability == "pending"
    assert ALPHA == 0.05
