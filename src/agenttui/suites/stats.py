"""Per-case statistics of a suite run and the verdict on a case against its baseline.

Only finished repeats count (status not None): a repeat still queued or running is neither a pass
nor a failure. The verdict is a one-sided Fisher's exact test on the 2x2 table

                 passes   failures
    baseline       a        b - a
    candidate      c        d - c

computed exactly from the hypergeometric distribution with math.comb (no SciPy): given the
total passes a + c, the chance that the candidate would get c passes or fewer ("regressed") or c
or more ("improved") if both runs had the same pass rate. A case regresses when its pass rate
dropped and that chance is below ALPHA. docs/suites.md, "How a case is judged against the
baseline", explains the verdicts to users.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import comb
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agenttui.suites.results import CaseReport

ALPHA = 0.05
# Past this many repeats per side the search for "repeats needed" stops (a baseline rate strictly
# between 0 and 1 always decides well before: 0.5 needs 5 per side).
_MAX_REPEATS_NEEDED = 1000


@dataclass
class CaseStats:
    passes: int
    finished: int
    repeats: int
    pass_at_k: float  # chance at least one of k = finished tries passes (unbiased estimator)
    pass_hat_k: float  # chance all k = finished tries pass: (passes / finished) ** k
    stability: str  # "stable" | "flaky" | "failing" | "pending"


@dataclass
class CaseVerdict:
    case_id: str
    kind: str  # "regressed" | "improved" | "unchanged" | "inconclusive" | "new" | "removed"
    baseline: tuple[int, int] | None  # (passes, finished)
    candidate: tuple[int, int] | None
    p_value: float | None
    repeats_needed: int | None  # for "inconclusive": repeats per side that would let the test decide
    detail: str  # one line for people


def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased estimator of pass@k from n tries with c passes (Chen et al. 2021, the Codex
    paper): 1 - C(n-c, k) / C(n, k), the chance that k tries drawn from the n include a pass."""
    if n <= 0 or k <= 0:
        return 0.0
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


def pass_hat_k(n: int, c: int, k: int) -> float:
    """pass^k, the chance that k independent tries all pass, estimated from the pass rate c/n
    as (c/n)**k. Chosen over the unbiased C(c, k) / C(n, k) because the run's k is n, where that
    estimator can only say 0 or 1; (c/n)**k keeps "4 of 5" (0.33) apart from "1 of 5" (0.0003)."""
    if n <= 0 or k <= 0:
        return 0.0
    return (c / n) ** k


def counts(case: CaseReport) -> tuple[int, int]:
    """(passes, finished) over the case's finished repeats."""
    finished = [r for r in case.repeats if r.status is not None]
    return sum(1 for r in finished if r.passed), len(finished)


def case_stats(case: CaseReport) -> CaseStats:
    passes, finished = counts(case)
    if finished == 0:
        stability = "pending"
    elif passes == finished:
        stability = "stable"
    elif passes == 0:
        stability = "failing"
    else:
        stability = "flaky"
    return CaseStats(
        passes=passes,
        finished=finished,
        repeats=len(case.repeats),
        pass_at_k=pass_at_k(finished, passes, finished),
        pass_hat_k=pass_hat_k(finished, passes, finished),
        stability=stability,
    )


def _tail(base_pass: int, base_n: int, cand_pass: int, cand_n: int, lower: bool) -> float:
    """One-sided Fisher's exact p-value: with the margins fixed, the hypergeometric chance that
    the candidate gets `cand_pass` passes or fewer (lower) or that many or more (not lower)."""
    total = base_n + cand_n
    passes = base_pass + cand_pass
    low = max(0, cand_n - (total - passes))
    high = min(passes, cand_n)
    span = range(low, cand_pass + 1) if lower else range(cand_pass, high + 1)
    # Integer numerators summed before the one division: exact up to the final rounding.
    hits = sum(comb(passes, x) * comb(total - passes, cand_n - x) for x in span)
    return hits / comb(total, cand_n)


def fisher_lower(base_pass: int, base_n: int, cand_pass: int, cand_n: int) -> float:
    """p-value of "the candidate passes less often than the baseline"."""
    return _tail(base_pass, base_n, cand_pass, cand_n, lower=True)


def fisher_higher(base_pass: int, base_n: int, cand_pass: int, cand_n: int) -> float:
    """p-value of "the candidate passes more often than the baseline"."""
    return _tail(base_pass, base_n, cand_pass, cand_n, lower=False)


def can_decide(base_pass: int, base_n: int, cand_n: int) -> bool:
    """Whether the most extreme candidate outcome (every repeat failing after a baseline with
    passes, or every one passing after a baseline with failures) would be significant."""
    drop = base_pass > 0 and fisher_lower(base_pass, base_n, 0, cand_n) < ALPHA
    rise = base_pass < base_n and fisher_higher(base_pass, base_n, cand_n, cand_n) < ALPHA
    return drop or rise


def repeats_needed(base_pass: int, base_n: int) -> int | None:
    """The smallest n such that, with n repeats on each side and the baseline's pass rate kept,
    the most extreme candidate outcome would be significant. For a baseline that always passes
    (or always fails) that is n/n against 0/n: 1 / C(2n, n) < 0.05, so n = 4 (n = 3 gives exactly
    1/20 = 0.05, not below)."""
    rate = base_pass / base_n if base_n else 1.0
    for n in range(1, _MAX_REPEATS_NEEDED + 1):
        if can_decide(int(rate * n + 0.5), n, n):
            return n
    return None


def _ratio(pair: tuple[int, int]) -> str:
    return f"{pair[0]}/{pair[1]}"


def _p(value: float) -> str:
    return f"{value:.2g}"


def verdict(case_id: str, baseline: CaseReport | None, candidate: CaseReport | None) -> CaseVerdict:
    """The candidate run's case against the same case of the baseline run (see the module doc)."""
    base = counts(baseline) if baseline is not None else None
    cand = counts(candidate) if candidate is not None else None

    def made(kind: str, detail: str, p_value: float | None = None, needed: int | None = None):
        return CaseVerdict(case_id, kind, base, cand, p_value, needed, detail)

    if base is None and cand is None:
        return made("inconclusive", "not finished: the case is in neither run")
    if base is None:
        assert cand is not None
        shown = _ratio(cand) if cand[1] else "not finished"
        return made("new", f"{shown}, nothing in the baseline to compare with")
    if cand is None:
        return made("removed", f"{_ratio(base)} in the baseline, not in this run")
    for side, pair, report in (("baseline", base, baseline), ("candidate", cand, candidate)):
        if pair[1] == 0:
            total = len(report.repeats) if report is not None else 0
            return made("inconclusive", f"not finished: {side} has 0 of {total} repeats done")

    (bp, bn), (cp, cn) = base, cand
    head = f"{cp}/{cn} after {bp}/{bn}"
    base_rate, cand_rate = bp / bn, cp / cn
    if cand_rate < base_rate:
        p_value = fisher_lower(bp, bn, cp, cn)
        if p_value < ALPHA:
            return made("regressed", f"{head} (Fisher's exact, p={_p(p_value)} < {ALPHA})", p_value)
    elif cand_rate > base_rate:
        p_value = fisher_higher(bp, bn, cp, cn)
        if p_value < ALPHA:
            return made("improved", f"{head} (Fisher's exact, p={_p(p_value)} < {ALPHA})", p_value)
    else:
        p_value = min(fisher_lower(bp, bn, cp, cn), fisher_higher(bp, bn, cp, cn))

    if can_decide(bp, bn, cn):
        return made("unchanged", f"{head} (Fisher's exact, p={_p(p_value)} ≥ {ALPHA})", p_value)
    needed = repeats_needed(bp, bn)
    wanted = f"{needed} repeats per side" if needed else "many more repeats"
    return made(
        "inconclusive",
        f"{head}: too few repeats for Fisher's exact to decide at {ALPHA}; {wanted} would",
        p_value,
        needed,
    )
