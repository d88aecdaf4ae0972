"""The life cycle of a test (Status + allowed transitions), priorities and request errors.

Plain Python, no pydantic: the headless client imports this without the engine's models
(agenttui.core.domain re-exports everything here).
"""

from __future__ import annotations

import enum
from typing import Any


class Status(enum.StrEnum):
    """A StrEnum: formatted and stored as its value ("COMPLETED")."""

    CREATED = "CREATED"
    QUEUED = "QUEUED"
    BUILDING = "BUILDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    TIMED_OUT = "TIMED_OUT"
    CANCELLED = "CANCELLED"
    ARCHIVED = "ARCHIVED"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL

    @property
    def is_active(self) -> bool:
        return self in ACTIVE


TERMINAL = frozenset({Status.COMPLETED, Status.FAILED, Status.TIMED_OUT, Status.CANCELLED})
ACTIVE = frozenset({Status.BUILDING, Status.RUNNING})

# Every status change goes through this table. BUILDING/RUNNING -> QUEUED is the
# automatic retry of an infrastructure failure.
ALLOWED_TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.CREATED: frozenset({Status.QUEUED, Status.CANCELLED}),
    Status.QUEUED: frozenset({Status.BUILDING, Status.CANCELLED}),
    Status.BUILDING: frozenset(
        {Status.RUNNING, Status.QUEUED, Status.FAILED, Status.TIMED_OUT, Status.CANCELLED}
    ),
    Status.RUNNING: frozenset(
        {Status.COMPLETED, Status.FAILED, Status.TIMED_OUT, Status.CANCELLED, Status.QUEUED}
    ),
    Status.COMPLETED: frozenset({Status.ARCHIVED}),
    Status.FAILED: frozenset({Status.ARCHIVED}),
    Status.TIMED_OUT: frozenset({Status.ARCHIVED}),
    Status.CANCELLED: frozenset({Status.ARCHIVED}),
    Status.ARCHIVED: frozenset(),
}


class IllegalTransition(Exception):
    def __init__(self, test_id: int, current: Status, wanted: Status):
        super().__init__(f"test {test_id}: transition {current.value} -> {wanted.value} is not allowed")
        self.test_id, self.current, self.wanted = test_id, current, wanted


def check_transition(test_id: int, current: Status, wanted: Status) -> None:
    if wanted not in ALLOWED_TRANSITIONS[current]:
        raise IllegalTransition(test_id, current, wanted)


class FailureKind(str, enum.Enum):
    """Why a FAILED test failed: decides the headless exit code and whether to retry."""

    AGENT = "agent"  # the agent raised / exited non-zero / was OOM-killed: never retried
    INFRA = "infra"  # engine unreachable, build broken by the infrastructure: retried
    REPLAY_MISS = "replay_miss"  # a replay met a model call its cassette did not record: never retried
    BUDGET = "budget"  # a budget (--max-cost, --max-tokens, --max-model-calls) was used up: never retried


class Priority(enum.IntEnum):
    HIGH = 1
    NORMAL = 2
    LOW = 3

    @classmethod
    def parse(cls, value: Any) -> Priority:
        if isinstance(value, Priority):
            return value
        if isinstance(value, str):
            key = value.strip().upper()
            if key in cls.__members__:
                return cls[key]
            if key.isdigit():
                value = int(key)
        if isinstance(value, int) and not isinstance(value, bool) and value in (1, 2, 3):
            return cls(value)
        raise ValueError("must be high, normal or low (1, 2 or 3)")


class InvalidRequest(ValueError):
    """A request was rejected; `errors` maps each field to what is wrong with it."""

    def __init__(self, errors: dict[str, str]):
        self.errors = errors
        super().__init__("; ".join(f"{field}: {msg}" for field, msg in errors.items()))


class FieldErrors(ValueError):
    """Several field-level errors found by one validator; keys are relative to where it runs."""

    def __init__(self, errors: dict[str, str]):
        self.errors = errors
        super().__init__("; ".join(f"{field}: {msg}" for field, msg in errors.items()))
