"""What clients see of a test and of the queue: plain data, JSON-ready (same over a socket).

Dataclasses rather than pydantic models: the headless client builds them from the server's
JSON, and importing pydantic would cost it ~100 ms of start-up. The server is their only source.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agenttui.core.lifecycle import Priority, Status

if TYPE_CHECKING:  # the socket client uses these models without loading the store
    from agenttui.engine.store import QueueStatus, TestRecord


def _known_fields(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """The fields of `cls` in `data` (a newer server may send more)."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {key: value for key, value in data.items() if key in names}


@dataclass
class TestView:
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
    packages: list[dict[str, Any]] = field(default_factory=list)  # deployment packages: path, size, created_at
    position: int | None = None  # 1-based place in the queue when QUEUED
    eta_s: float | None = None  # estimated wait before it starts

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TestView:
        values = _known_fields(cls, data)
        values["status"] = Status(values["status"])
        return cls(**values)

    def to_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "status": self.status.value}

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


@dataclass
class LogEntry:
    """One stored log line, as clients see it."""

    test_id: int
    seq: int
    ts: float
    stream: str  # stdout | stderr | system | build
    text: str

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LogEntry:
        return cls(**_known_fields(cls, data))


@dataclass
class QueueView:
    running: int
    queued: int
    cap: int
    utilization: float
    tests: list[TestView]  # active first, then queued in claim order

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> QueueView:
        values = _known_fields(cls, data)
        values["tests"] = [TestView.from_json(t) for t in values["tests"]]
        return cls(**values)

    def to_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "tests": [t.to_json() for t in self.tests]}

    @classmethod
    def build(cls, status: QueueStatus, tests: list[TestView]) -> QueueView:
        return cls(
            running=status.running, queued=status.queued, cap=status.cap, utilization=status.utilization, tests=tests
        )
