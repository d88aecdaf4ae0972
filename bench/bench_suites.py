"""Figure 12: the suite reports (JUnit XML and the HTML file, compared with a baseline run) for
1,000 results (200 cases x 5 repeats), against the same results written as plain JSON.

    .venv/bin/python bench/bench_suites.py     # prints the figures as one JSON line
"""

from __future__ import annotations

import json
import time

from agenttui.suites.compare import compare
from agenttui.suites.report import CaseReport, RepeatResult, SuiteReport, to_html, to_json, to_junit

CASES, REPEATS = 200, 5
RESPONSE = "The agent's answer, one line of a few words.\n" * 20


def _run(run_id: int, passes: int) -> SuiteReport:
    cases = [
        CaseReport(f"case-{i:03d}", f"query number {i}", [
            RepeatResult(r + 1, run_id * 10_000 + i * REPEATS + r, "COMPLETED", r < passes,
                         [] if r < passes else ["regex 'ab+c' did not match 'xyz'"], RESPONSE,
                         tokens_in=120, tokens_out=80, cost_usd=0.0012, duration_s=1.5)
            for r in range(REPEATS)
        ])
        for i in range(CASES)
    ]
    return SuiteReport(run_id, "bench", "a" * 64, "b" * 64, time.time(), "bench", cases, baseline_run_id=1)


def measure(runs: int) -> dict[str, float]:
    """Best of `runs`: the comparison + JUnit + HTML, and json.dumps of the same results."""
    baseline, candidate = _run(1, REPEATS), _run(2, REPEATS - 2)
    reports, plain = [], []
    for _ in range(runs):
        began = time.perf_counter()
        comparison = compare(baseline, candidate)
        to_junit(candidate, comparison)
        to_html(candidate, comparison)
        reports.append(time.perf_counter() - began)
        began = time.perf_counter()
        json.dumps(to_json(candidate))
        plain.append(time.perf_counter() - began)
    return {"reports": min(reports), "json": min(plain), "results": CASES * REPEATS}


if __name__ == "__main__":
    print(json.dumps(measure(runs=5)))
