"""What the orchestrator knows about one test it is executing."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from agenttui.backends.base import ExitInfo
from agenttui.core.redact import Redactor
from agenttui.engine.orchestrator.outcome import RunFacts
from agenttui.engine.store import Fence, TestRecord

STDOUT_TAIL_LINES = 50  # kept of the agent's stdout (a custom image's answer is its end)


class LeaseLost(Exception):
    """Another process holds the test now: stop working on it without touching it."""


@dataclass
class Run:
    """One attempt of a test this orchestrator is executing."""

    test: TestRecord
    fence: Fence
    cancel: asyncio.Event = field(default_factory=asyncio.Event)
    handle: str | None = None
    timed_out: bool = False
    result: dict[str, Any] | None = None
    peak_memory: int | None = None
    cpu_s: float | None = None
    build_s: float = 0.0
    image_built: bool = False
    installed: dict[str, str] = field(default_factory=dict)  # versions the image's build installed
    stdout_tail: list[str] = field(default_factory=list)
    endpoints_down: list[str] = field(default_factory=list)  # model endpoints silent at the start
    model_call_errors: list[str] = field(default_factory=list)  # its model calls' failures (the recorder's)
    budget_used_up: str | None = None  # why a budget refused a model call (set by its gate, sandbox/budget.py)
    redact: Redactor = field(default_factory=Redactor)
    cassette: Any = None  # its --record / --replay (agenttui.engine.orchestrator.recording.CassetteUse)
    task: asyncio.Task[None] | None = None

    def facts(self) -> RunFacts:
        """What the outcome classifier needs of this run."""
        request = self.test.request
        return RunFacts(
            memory_mb=request.limits.memory_mb,
            timeout_s=request.timeout_s,
            custom_image=bool(request.dockerfile.strip()),
            cancelled=self.cancel.is_set(),
            timed_out=self.timed_out,
            peak_memory=self.peak_memory,
            cpu_s=self.cpu_s,
            stdout_tail=self.stdout_tail,
            endpoints_down=self.endpoints_down,
            model_call_errors=self.model_call_errors,
            budget_used_up=self.budget_used_up,
        )

    def metrics(self, exit_info: ExitInfo, result: dict[str, Any] | None) -> dict[str, Any]:
        test = self.test
        started = exit_info.started_at or test.running_at
        ended = exit_info.finished_at or time.time()
        metrics: dict[str, Any] = {
            "wall_s": round(ended - started, 3) if started else None,
            "build_s": round(self.build_s, 3),
            "image_built": self.image_built,
            "queue_wait_s": round((test.claimed_at or 0) - (test.queued_at or 0), 3) if test.claimed_at else None,
            "cpu_s": round(self.cpu_s, 3) if self.cpu_s is not None else None,
            "peak_memory_bytes": self.peak_memory,
            "exit_code": exit_info.exit_code,
            "oom_killed": exit_info.oom_killed,
        }
        if self.installed:
            metrics["installed"] = self.installed  # shown as its own field (TestView.installed)
        if result is not None:
            metrics["agent_load_s"] = result.get("load_s")
            metrics["agent_run_s"] = result.get("run_s")
            if result.get("scores") is not None:  # a suite's scorers' verdicts (the harness's second record)
                metrics["scores"] = result["scores"]
        if self.cassette is not None:
            metrics.update(self.cassette.metrics())
        return metrics
