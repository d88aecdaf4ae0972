"""The shared poller: one DescribeTasks per 100 watched tasks each `ecs_poll_s`, for every test at once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from agenttui.backends.ecs.aws import ERROR_BUDGET_S, describe_error
from agenttui.backends.ecs.description import DESCRIBE_BATCH
from agenttui.core.config import Settings

log = logging.getLogger(__name__)

MISSING_GRACE_S = 30.0  # a task never seen yet may lag behind RunTask (eventual consistency)
MISSING_CONFIRM_POLLS = 2
MAINTENANCE_FIRST_S = 60.0
MAINTENANCE_INTERVAL_S = 600.0


class TaskSource(Protocol):
    """What the poller needs of the backend: its settings, DescribeTasks and the periodic maintenance."""

    settings: Settings

    async def describe_tasks(self, task_ids: list[str]) -> dict[str, dict[str, Any]]: ...

    async def maintain(self, now: float | None = None) -> dict[str, int]: ...


@dataclass
class TaskWatch:
    """What the poller last saw of one task, and how many log readers follow it."""

    task_id: str
    since: float = field(default_factory=time.monotonic)
    task: dict[str, Any] | None = None
    absent_polls: int = 0
    missing: bool = False
    error: str | None = None
    stop_requested_at: float | None = None
    readers: int = 0  # logs() generators following this task
    drained: asyncio.Event = field(default_factory=asyncio.Event)  # set when the last one ends

    @property
    def status(self) -> str | None:
        return self.task.get("lastStatus") if self.task else None

    @property
    def stopped(self) -> bool:
        return self.status == "STOPPED"

    @property
    def terminal(self) -> bool:
        return self.stopped or self.missing or self.error is not None


class TaskPoller:
    """Describes every watched task in batches of 100, once per interval, for all tests."""

    def __init__(self, backend: TaskSource):
        self.backend = backend
        self.watches: dict[str, TaskWatch] = {}
        self._task: asyncio.Task[None] | None = None
        self._round = asyncio.Event()
        self._kick = asyncio.Event()
        self._errors_since: float | None = None
        self.describe_calls = 0  # for tests and benchmarks

    def watch(self, task_id: str) -> TaskWatch:
        watch = self.watches.get(task_id)
        if watch is None:
            watch = self.watches[task_id] = TaskWatch(task_id)
            self.kick()
        self._ensure_running()
        return watch

    def forget(self, task_id: str) -> None:
        self.watches.pop(task_id, None)

    def kick(self) -> None:
        self._kick.set()

    async def next_round(self) -> None:
        """Return after the next describe round (or a few intervals, whatever comes first)."""
        self._ensure_running()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._round.wait(), self.backend.settings.ecs_poll_s * 5 + 1)

    def _ensure_running(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="ecs-task-poller")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
            self._task = None

    async def _run(self) -> None:
        next_maintenance = time.monotonic() + MAINTENANCE_FIRST_S
        while True:
            pending = [w for w in self.watches.values() if not w.terminal]
            if pending:
                await self._poll(pending)
            finished, self._round = self._round, asyncio.Event()
            finished.set()
            if time.monotonic() >= next_maintenance:
                next_maintenance = time.monotonic() + MAINTENANCE_INTERVAL_S
                with contextlib.suppress(Exception):
                    await self.backend.maintain()
            self._kick.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._kick.wait(), self.backend.settings.ecs_poll_s)

    async def _poll(self, pending: list[TaskWatch]) -> None:
        for start in range(0, len(pending), DESCRIBE_BATCH):
            batch = pending[start : start + DESCRIBE_BATCH]
            try:
                tasks = await self.backend.describe_tasks([w.task_id for w in batch])
            except Exception as exc:  # throttling beyond botocore's retries, network, ...
                now = time.monotonic()
                self._errors_since = self._errors_since or now
                log.warning("ECS DescribeTasks failed (%s); retrying", describe_error(exc))
                if now - self._errors_since > ERROR_BUDGET_S:
                    for watch in batch:
                        watch.error = (
                            f"cannot read the state of ECS task {watch.task_id} for "
                            f"{ERROR_BUDGET_S:.0f} s: {describe_error(exc)}"
                        )
                continue
            self._errors_since = None
            self.describe_calls += 1
            now = time.monotonic()
            for watch in batch:
                task = tasks.get(watch.task_id)
                if task is not None:
                    watch.task, watch.absent_polls = task, 0
                    continue
                watch.absent_polls += 1
                seen_before = watch.task is not None
                if watch.absent_polls >= MISSING_CONFIRM_POLLS and (
                    seen_before or now - watch.since > MISSING_GRACE_S
                ):
                    watch.missing = True
