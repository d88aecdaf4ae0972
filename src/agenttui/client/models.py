"""What clients see of a test and of the queue: plain data, JSON-ready (same over a socket)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from agenttui.domain import Priority, Status
if TYPE_CHECKING:  # the socket client uses these models without loading the store
    from agenttui.store import QueueStatus, TestRecord


class TestView(BaseModel):
    __test__ = False

    id: int
    status: Status
    owner_name: str
    owner_uid: int
    priority: str
    query: str
    provider: str
    model_id: str
    attempt: int
    parent_id: int | None
    created_at: float
    claimed_at: float | None
    running_at: float | None
    finished_at: float | None
    exit_code: int | None
    oom_killed: bool
    failure_kind: str | None
    error: str | None
    response: str | None
    metrics: dict[str, Any]
    log_lines: int
    log_truncated: bool
    cancel_requested: bool
    packages: list[dict[str, Any]] = []  # deployment packages made from it: path, size, created_at
    position: int | None = None  # 1-based place in the queue when QUEUED
    eta_s: float | None = None  # estimated wait before it starts

    @property
    def duration_s(self) -> float | None:
        wall = self.metrics.get("wall_s")
        if wall is not None:
            return wall
        if self.running_at and self.finished_at:
            return round(self.finished_at - self.running_at, 3)
        return None

    @classmethod
    def from_record(cls, test: TestRecord, *, position: int | None = None, eta_s: float | None = None) -> TestView:
        request = json.loads(test.request_json)
        return cls(
            id=test.id or 0,
            status=Status(test.status),
            owner_name=test.owner_name,
            owner_uid=test.owner_uid,
            priority=Priority(test.priority).name.lower(),
            query=test.query,
            provider=request.get("provider", {}).get("name", ""),
            model_id=request.get("provider", {}).get("model_id", ""),
            attempt=test.attempt,
            parent_id=test.parent_id,
            created_at=test.created_at,
            claimed_at=test.claimed_at,
            running_at=test.running_at,
            finished_at=test.finished_at,
            exit_code=test.exit_code,
            oom_killed=test.oom_killed,
            failure_kind=test.failure_kind,
            error=test.error,
            response=test.response,
            metrics=test.metrics,
            log_lines=test.log_seq,
            log_truncated=test.log_truncated,
            cancel_requested=test.cancel_requested,
            position=position,
            eta_s=eta_s,
        )

    def summary(self) -> dict[str, Any]:
        """The headless `--json` record (R-25)."""
        return {
            "id": self.id,
            "status": self.status.value,
            "owner": self.owner_name,
            "query": self.query,
            "response": self.response,
            "error": self.error,
            "failure_kind": self.failure_kind,
            "exit_code": self.exit_code,
            "oom_killed": self.oom_killed,
            "duration_s": self.duration_s,
            "attempt": self.attempt,
            "parent_id": self.parent_id,
            "metrics": self.metrics,
            "log_truncated": self.log_truncated,
            "packages": self.packages,
        }


class LogEntry(BaseModel):
    """One stored log line, as clients see it."""

    test_id: int
    seq: int
    ts: float
    stream: str  # stdout | stderr | system | build
    text: str


class QueueView(BaseModel):
    running: int
    queued: int
    cap: int
    utilization: float
    tests: list[TestView]  # active first, then queued in claim order

    @classmethod
    def build(cls, status: QueueStatus, tests: list[TestView]) -> QueueView:
        return cls(
            running=status.running, queued=status.queued, cap=status.cap, utilization=status.utilization, tests=tests
        )
