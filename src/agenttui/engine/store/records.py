"""The plain records the store hands out besides its rows, and the rows made into records."""

from __future__ import annotations

import os
import pwd
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agenttui.core.lifecycle import Status
from agenttui.engine.store.tables import TESTS, TestRecord


@dataclass(frozen=True)
class Owner:
    """Who submitted a test. From the kernel's view of the caller, never from $USER."""

    uid: int
    name: str

    @classmethod
    def current(cls) -> Owner:
        uid = os.getuid()
        try:
            name = pwd.getpwuid(uid).pw_name
        except KeyError:
            name = str(uid)
        return cls(uid, name)


@dataclass(frozen=True)
class Fence:
    """A writer's claim on a test: writes only land while (lease_owner, attempt) still match."""

    owner: str
    attempt: int


@dataclass(frozen=True)
class QueueStatus:
    running: int  # BUILDING + RUNNING
    queued: int
    cap: int
    store_problem: str | None = None  # why the engine is stalled (the store's disk is full)

    @property
    def utilization(self) -> float:
        return round(100.0 * self.running / self.cap, 1) if self.cap else 0.0


_BOOL_COLUMNS = frozenset(c.name for c in TESTS.c if c.type.python_type is bool)


def row_to_test(row: Any) -> TestRecord:
    """A Core row of the tests table: typed by its columns (Boolean reads back as bool), so it
    needs no validation (model_validate would cost more than reading the row)."""
    values = dict(row._mapping)
    values["status"] = Status(values["status"])
    return TestRecord.model_construct(**values)


def driver_row_to_test(values: Mapping[str, Any]) -> TestRecord:
    """A row of the driver's own SELECT/RETURNING: SQLite hands back booleans as 0/1."""
    values = dict(values)
    for name in _BOOL_COLUMNS:
        if values[name] is not None:
            values[name] = bool(values[name])
    values["status"] = Status(values["status"])
    return TestRecord.model_construct(**values)

