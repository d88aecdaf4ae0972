"""How a test ended: its final status and the reason, decided from how its container exited,
the harness's result record and what the orchestrator saw of the run. Pure: no I/O."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from agenttui.backends.base import ExitInfo
from agenttui.core.domain import FailureKind, Status

SIGKILL_EXIT = 137
OOM_NEAR_LIMIT = 0.9  # a SIGKILL with the peak this close to the limit is taken for an OOM kill
CUSTOM_IMAGE_ANSWER_LINES = 20  # a custom image's answer: the last lines of its stdout


@dataclass(frozen=True)
class RunFacts:
    """What the orchestrator saw of the run, besides its exit and its result record."""

    memory_mb: int  # the request's memory limit
    timeout_s: float
    custom_image: bool = False  # the request brings its own Dockerfile (its command writes no record)
    cancelled: bool = False  # stopped because a cancel was requested
    timed_out: bool = False  # stopped at its deadline
    peak_memory: int | None = None  # the highest memory use sampled
    cpu_s: float | None = None
    stdout_tail: Sequence[str] = ()
    endpoints_down: Sequence[str] = ()  # model endpoints that did not answer when it started
    model_call_errors: Sequence[str] = ()  # what went wrong with its model calls (the recorder's)
    budget_used_up: str | None = None  # a budget's first refusal (agenttui.sandbox.budget): the reason


@dataclass(frozen=True)
class Outcome:
    status: Status
    exit_info: ExitInfo  # as reported, with the OOM flag set when the engine missed it
    peak_memory: int | None  # the sampled peak, raised by the record's and, for an OOM kill, the limit
    cpu_s: float | None  # the sampled CPU time, raised by the record's
    failure_kind: FailureKind | None = None
    error: str | None = None
    response: Any = None  # as the record gives it

    def fields(self) -> dict[str, Any]:
        """The columns written with the status."""
        fields: dict[str, Any] = dict(exit_code=self.exit_info.exit_code, oom_killed=self.exit_info.oom_killed)
        if self.failure_kind is not None:
            fields["failure_kind"] = self.failure_kind.value
        if self.error is not None:
            fields["error"] = self.error
        if self.response is not None:
            fields["response"] = self.response
        return fields


def classify(exit_info: ExitInfo, result: dict[str, Any] | None, run: RunFacts) -> Outcome:
    """The outcome of a run whose container has exited (or is gone). A stop we asked for
    (cancel, timeout) wins over how the container died; an OOM kill over what the agent said."""
    peak_memory, cpu_s = run.peak_memory, run.cpu_s
    if result is not None:
        peak_memory = _highest(peak_memory, result.get("peak_memory_bytes"))
        cpu_s = _highest(cpu_s, result.get("cpu_s"))
    limit_bytes = run.memory_mb * 1024 * 1024
    stopped_by_us = run.cancelled or run.timed_out
    if (
        not exit_info.oom_killed
        and exit_info.exit_code == SIGKILL_EXIT
        and not stopped_by_us
        and (peak_memory or 0) >= OOM_NEAR_LIMIT * limit_bytes
    ):
        # Docker can miss the OOM flag (a known race); SIGKILL at the memory limit is OOM.
        exit_info = dataclasses.replace(exit_info, oom_killed=True)
    if exit_info.oom_killed:
        # The kernel killed it at the limit: the limit is the truest peak we can report.
        peak_memory = max(peak_memory or 0, limit_bytes)
    ending = _ending(exit_info, result, run, peak_memory)
    if ending.get("failure_kind") is FailureKind.BUDGET:
        return Outcome(exit_info=exit_info, peak_memory=peak_memory, cpu_s=cpu_s, **ending)
    if run.endpoints_down and ending["status"] in (Status.FAILED, Status.TIMED_OUT):
        down = ", ".join(run.endpoints_down)
        ending["error"] += f" (the model endpoint {down} did not answer when the test started)"
    if run.model_call_errors and ending["status"] in (Status.FAILED, Status.TIMED_OUT):
        ending["error"] += "; its model calls failed: " + "; ".join(run.model_call_errors)
    return Outcome(exit_info=exit_info, peak_memory=peak_memory, cpu_s=cpu_s, **ending)


def _ending(exit_info: ExitInfo, result: dict[str, Any] | None, run: RunFacts, peak_memory: int | None) -> dict[str, Any]:
    """The status and its reason (or the answer)."""
    if run.cancelled:
        return dict(status=Status.CANCELLED, error="cancelled by request")
    if run.budget_used_up is not None:
        # The agent met a refused call: that, not how the agent took the 429 (or whether it went on
        # and completed, or hung to its deadline), is the outcome.
        response = result.get("response") if result is not None else None
        return dict(status=Status.FAILED, failure_kind=FailureKind.BUDGET, error=run.budget_used_up,
                    response=response)
    if run.timed_out:
        return dict(status=Status.TIMED_OUT, error=f"timed out after {run.timeout_s} s; the container was stopped")
    failed = dict(status=Status.FAILED, failure_kind=FailureKind.AGENT)
    if exit_info.oom_killed:
        error = (
            f"out of memory: the agent was killed at the {run.memory_mb} MB limit "
            f"(peak {mb(peak_memory)}); raise --memory or use less"
        )
        return dict(failed, error=error)
    if result is not None and result.get("success") and exit_info.exit_code in (0, None):
        return dict(status=Status.COMPLETED, response=result.get("response"))
    if result is None and run.custom_image and exit_info.exit_code == 0:
        # A custom image's own command has no harness record: its output is the answer.
        return dict(status=Status.COMPLETED, response="\n".join(run.stdout_tail[-CUSTOM_IMAGE_ANSWER_LINES:]))
    if result is not None and result.get("error"):
        return dict(failed, error=result["error"], response=result.get("response"))
    if exit_info.exit_code == 0:
        return dict(failed, error="the agent exited without reporting a result")
    reason = f" ({exit_info.reason})" if exit_info.reason else ""
    return dict(failed, error=f"the agent exited with code {exit_info.exit_code}{reason}")


def _highest(seen: Any, reported: Any) -> Any:
    """The larger of what was sampled and what the record reports (when it reports a number)."""
    return max(seen or 0, reported) if isinstance(reported, (int, float)) else seen


def mb(value: int | None) -> str:
    return f"{value / 1048576:.0f} MB" if value else "unknown"
