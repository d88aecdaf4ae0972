"""The outcome classifier, branch by branch: how a run ended, from its exit, its result record
and what the orchestrator saw."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from agenttui.backends.base import ExitInfo
from agenttui.core.domain import FailureKind, Status
from agenttui.engine.orchestrator.outcome import Outcome, RunFacts, classify

MB = 1024 * 1024
LIMIT_MB = 512
AGENT = FailureKind.AGENT


def facts(**changes: Any) -> RunFacts:
    return RunFacts(**{"memory_mb": LIMIT_MB, "timeout_s": 30, **changes})


@dataclass(frozen=True)
class Case:
    name: str
    exit: ExitInfo
    result: dict[str, Any] | None
    run: RunFacts
    status: Status
    failure_kind: FailureKind | None = None
    error: str | None = None
    response: Any = None
    oom_killed: bool = False
    peak_memory: int | None = None
    cpu_s: float | None = None


SUCCESS = {"success": True, "response": "42"}
LIMIT = LIMIT_MB * MB
OOM = f"out of memory: the agent was killed at the {LIMIT_MB} MB limit (peak {LIMIT_MB} MB); raise --memory or use less"
CANCELLED = "cancelled by request"
TIMED_OUT = "timed out after 30 s; the container was stopped"
BUDGET = "budget used up: max-model-calls 1 reached (2nd call refused)"
TAIL = [f"line {n}" for n in range(30)]

# fmt: off
CASES = [
    Case("completed", ExitInfo(0), SUCCESS, facts(), Status.COMPLETED, response="42"),
    Case("completed, the container gone before its exit code was read",
         ExitInfo(None, reason="container gone before adoption"), SUCCESS, facts(), Status.COMPLETED, response="42"),
    Case("completed without a response", ExitInfo(0), {"success": True}, facts(), Status.COMPLETED),
    Case("the agent raised: the record's error and partial response", ExitInfo(1),
         {"success": False, "error": "ValueError: no", "response": "half"}, facts(), Status.FAILED, AGENT,
         error="ValueError: no", response="half"),
    Case("a successful record but a non-zero exit", ExitInfo(3), SUCCESS, facts(), Status.FAILED, AGENT,
         error="the agent exited with code 3"),
    Case("non-zero exit without a record", ExitInfo(2), None, facts(), Status.FAILED, AGENT,
         error="the agent exited with code 2"),
    Case("the agent failed after its model endpoint did not answer at the start", ExitInfo(1),
         {"success": False, "error": "URLError: refused"}, facts(endpoints_down=["http://127.0.0.1:11434"]),
         Status.FAILED, AGENT,
         error="URLError: refused (the model endpoint http://127.0.0.1:11434 did not answer when the test started)"),
    Case("completed although its model endpoint did not answer at the start", ExitInfo(0), SUCCESS,
         facts(endpoints_down=["http://127.0.0.1:11434"]), Status.COMPLETED, response="42"),
    Case("non-zero exit with the engine's reason", ExitInfo(139, reason="segfault"), None, facts(), Status.FAILED,
         AGENT, error="the agent exited with code 139 (segfault)"),
    Case("exit 0 without a record", ExitInfo(0), None, facts(), Status.FAILED, AGENT,
         error="the agent exited without reporting a result"),
    Case("exit 0 with a record that reports neither success nor error", ExitInfo(0), {"success": False}, facts(),
         Status.FAILED, AGENT, error="the agent exited without reporting a result"),
    Case("the container is lost and no record came", ExitInfo(None, reason="container gone"), None, facts(),
         Status.FAILED, AGENT, error="the agent exited with code None (container gone)"),
    Case("a custom image's command: its last 20 stdout lines are the answer", ExitInfo(0), None,
         facts(custom_image=True, stdout_tail=TAIL), Status.COMPLETED, response="\n".join(TAIL[10:])),
    Case("a custom image's command that fails", ExitInfo(1), None, facts(custom_image=True, stdout_tail=["oops"]),
         Status.FAILED, AGENT, error="the agent exited with code 1"),
    Case("killed by the kernel at the memory limit", ExitInfo(137, oom_killed=True), None,
         facts(peak_memory=100 * MB), Status.FAILED, AGENT, error=OOM, oom_killed=True, peak_memory=LIMIT),
    Case("an OOM kill wins over a successful record", ExitInfo(137, oom_killed=True), SUCCESS, facts(),
         Status.FAILED, AGENT, error=OOM, oom_killed=True, peak_memory=LIMIT),
    Case("SIGKILL near the limit is an OOM kill the engine did not flag", ExitInfo(137), None,
         facts(peak_memory=int(0.95 * LIMIT)), Status.FAILED, AGENT, error=OOM, oom_killed=True, peak_memory=LIMIT),
    Case("SIGKILL near the limit by the record's own peak", ExitInfo(137),
         {"success": False, "peak_memory_bytes": LIMIT}, facts(peak_memory=MB), Status.FAILED, AGENT, error=OOM,
         oom_killed=True, peak_memory=LIMIT),
    Case("SIGKILL far below the limit is no OOM kill", ExitInfo(137), None, facts(peak_memory=10 * MB),
         Status.FAILED, AGENT, error="the agent exited with code 137", peak_memory=10 * MB),
    Case("cancelled: wins over a successful record", ExitInfo(0), SUCCESS, facts(cancelled=True), Status.CANCELLED,
         error=CANCELLED),
    Case("cancelled: a SIGKILL near the limit is our stop, not an OOM kill", ExitInfo(137), None,
         facts(cancelled=True, peak_memory=LIMIT), Status.CANCELLED, error=CANCELLED, peak_memory=LIMIT),
    Case("cancelled: wins over an OOM kill", ExitInfo(137, oom_killed=True), None, facts(cancelled=True),
         Status.CANCELLED, error=CANCELLED, oom_killed=True, peak_memory=LIMIT),
    Case("timed out", ExitInfo(143), None, facts(timed_out=True), Status.TIMED_OUT, error=TIMED_OUT),
    Case("timed out: a SIGKILL near the limit is our stop, not an OOM kill", ExitInfo(137), None,
         facts(timed_out=True, peak_memory=LIMIT), Status.TIMED_OUT, error=TIMED_OUT, peak_memory=LIMIT),
    Case("a budget used up: its reason, whatever the agent made of the refused call", ExitInfo(1),
         {"success": False, "error": "RateLimitError: 429"}, facts(budget_used_up=BUDGET,
                                                                   model_call_errors=["openai: HTTP 429: refused"]),
         Status.FAILED, FailureKind.BUDGET, error=BUDGET),
    Case("a budget used up: wins over an agent that went on and completed", ExitInfo(0), SUCCESS,
         facts(budget_used_up=BUDGET), Status.FAILED, FailureKind.BUDGET, error=BUDGET, response="42"),
    Case("a budget used up: wins over the deadline the agent then hung to", ExitInfo(143), None,
         facts(budget_used_up=BUDGET, timed_out=True), Status.FAILED, FailureKind.BUDGET, error=BUDGET),
    Case("a budget used up: a cancel still wins", ExitInfo(143), None, facts(budget_used_up=BUDGET, cancelled=True),
         Status.CANCELLED, error=CANCELLED),
    Case("the record's peak and CPU time raise the sampled ones", ExitInfo(0),
         {**SUCCESS, "peak_memory_bytes": 20 * MB, "cpu_s": 2.5}, facts(peak_memory=10 * MB, cpu_s=1.0),
         Status.COMPLETED, response="42", peak_memory=20 * MB, cpu_s=2.5),
    Case("the sampled peak and CPU time stay when higher, or when the record's are not numbers", ExitInfo(0),
         {**SUCCESS, "peak_memory_bytes": MB, "cpu_s": "n/a"}, facts(peak_memory=10 * MB, cpu_s=1.0),
         Status.COMPLETED, response="42", peak_memory=10 * MB, cpu_s=1.0),
]
# fmt: on


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_classify(case: Case) -> None:
    outcome = classify(case.exit, case.result, case.run)
    assert (outcome.status, outcome.failure_kind, outcome.error, outcome.response) == (
        case.status,
        case.failure_kind,
        case.error,
        case.response,
    )
    assert outcome.exit_info.oom_killed is case.oom_killed
    assert outcome.exit_info.exit_code == case.exit.exit_code
    assert (outcome.peak_memory, outcome.cpu_s) == (case.peak_memory, case.cpu_s)


def test_the_columns_written_with_the_status() -> None:
    failed = Outcome(
        status=Status.FAILED,
        exit_info=ExitInfo(exit_code=1),
        peak_memory=None,
        cpu_s=None,
        failure_kind=AGENT,
        error="boom",
        response="half",
    )
    assert failed.fields() == {
        "exit_code": 1, "oom_killed": False, "failure_kind": "agent", "error": "boom", "response": "half",
    }
    completed = Outcome(status=Status.COMPLETED, exit_info=ExitInfo(exit_code=0), peak_memory=None, cpu_s=None)
    assert completed.fields() == {"exit_code": 0, "oom_killed": False}


def test_a_used_up_budget_exits_with_its_own_code() -> None:
    from agenttui.core import errors

    assert errors.outcome_of(Status.FAILED, FailureKind.BUDGET.value) is errors.BUDGET_EXHAUSTED
    assert errors.BUDGET_EXHAUSTED.exit == 7 and not errors.BUDGET_EXHAUSTED.reserved_for
