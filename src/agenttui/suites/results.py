"""A suite run's results as the runner builds them from the store: a run, its cases, each case's
repeats. Re-exported by agenttui.suites.report; kept apart so that the statistics and the
comparison (which the report writers use) can import them without a cycle."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class RepeatResult:
    repeat: int  # 1-based
    test_id: int | None  # None: not submitted yet
    status: str | None  # agenttui Status value ("COMPLETED", ...); None while not finished
    passed: bool | None  # all assertions passed; None while not finished
    reasons: list[str]  # one line per failed assertion
    response: str | None
    tokens_in: int | None = None
    tokens_out: int | None = None
    cost_usd: float | None = None
    duration_s: float | None = None
    # live | recorded | replayed (docs/replay.md), as report.note_model_traffic fills it; None while not finished
    model_traffic: str | None = None


@dataclass
class CaseReport:
    case_id: str
    query: str
    repeats: list[RepeatResult]


@dataclass
class SuiteReport:
    run_id: int
    suite_name: str
    suite_digest: str
    agent_digest: str
    created_at: float  # epoch seconds
    owner: str
    cases: list[CaseReport]
    baseline_run_id: int | None = None
