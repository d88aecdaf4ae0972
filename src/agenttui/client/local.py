"""The in-process client: the store and an orchestrator in this very process.

Used by the headless commands before a server exists, and by the client test suite. The
orchestrator only claims (and adopts) the tests this client submitted or was asked to act on,
so a short-lived command never walks away holding someone else's test.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import statistics
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

from agenttui.backends import make_backend
from agenttui.backends.base import Backend
from agenttui.client.models import QueueView, TestView
from agenttui.config import Settings, data_dir
from agenttui.domain import ACTIVE, TERMINAL, Status, TestRequest
from agenttui.orchestrator import Orchestrator
from agenttui.store import LogRecord, Owner, Store, TestRecord

if TYPE_CHECKING:
    from agenttui.packaging import PackageResult

DEFAULT_ETA_S = 30.0  # assumed duration of a test before any has finished


class NotFound(LookupError):
    def __init__(self, test_id: int):
        super().__init__(f"no test with id {test_id}; `agenttui history` lists them")


class AccessDenied(PermissionError):
    pass


class NotActionable(ValueError):
    """The request makes no sense in the test's state (cancel a finished test, ...)."""


class LocalClient:
    def __init__(
        self,
        settings: Settings,
        *,
        owner: Owner | None = None,
        backend: Backend | None = None,
        work_whole_queue: bool = False,
    ):
        self.settings = settings
        # True for long-lived clients (the TUI before a server exists): work every queued test.
        self.work_whole_queue = work_whole_queue
        self.owner = owner or Owner.current()
        self._backend = backend
        self.store: Store | None = None
        self.orchestrator: Orchestrator | None = None
        self._loop_task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> LocalClient:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def open(self) -> None:
        self.store = await Store.open(self.settings.resolved_db_url, log_max_bytes=self.settings.log_max_bytes)
        self.backend = self._backend or make_backend(self.settings)
        self.orchestrator = Orchestrator(
            self.store, self.backend, self.settings, only_ids=None if self.work_whole_queue else set()
        )
        if self.work_whole_queue:
            self._loop_task = asyncio.create_task(self.orchestrator.run(), name="orchestrator")

    async def close(self) -> None:
        if self.orchestrator is not None:
            self.orchestrator.stop()
        if self._loop_task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        if self.store is not None:
            await self.store.close()
        with contextlib.suppress(Exception):
            await self.backend.close()

    async def check_backend(self) -> None:
        await self.backend.check()

    def _take_charge(self, test_id: int) -> None:
        """Let this process's orchestrator claim/adopt the test, and keep it running."""
        assert self.orchestrator is not None
        if self.orchestrator.only_ids is not None:
            self.orchestrator.only_ids.add(test_id)
        if self._loop_task is None or self._loop_task.done():
            self._loop_task = asyncio.create_task(self.orchestrator.run(), name="orchestrator")
        self.orchestrator.wake()

    # ------------------------------------------------------------------ commands
    async def submit(self, request: TestRequest, *, parent_id: int | None = None) -> TestView:
        assert self.store is not None
        test = await self.store.submit(request, self.owner, parent_id=parent_id, backend=self.settings.backend)
        assert test.id is not None
        self._take_charge(test.id)
        return await self.show(test.id)

    async def show(self, test_id: int) -> TestView:
        test = await self._get(test_id)
        if test.state is Status.QUEUED:
            queued = await self.store.queued_in_order()  # type: ignore[union-attr]
            position = next((i for i, t in enumerate(queued, 1) if t.id == test_id), None)
            return TestView.from_record(test, position=position, eta_s=await self._eta(position))
        return TestView.from_record(test)

    async def queue(self) -> QueueView:
        assert self.store is not None
        status = await self.store.queue_status(self.settings.max_concurrent)
        active = await self.store.list_tests(statuses=ACTIVE, newest_first=False)
        queued = await self.store.queued_in_order()
        views = [TestView.from_record(t) for t in active]
        typical = await self._typical_duration()
        for position, test in enumerate(queued, 1):
            views.append(TestView.from_record(test, position=position, eta_s=self._eta_from(position, typical)))
        return QueueView.build(status, views)

    async def history(self, *, search: str | None = None, limit: int = 50, mine: bool = False) -> list[TestView]:
        assert self.store is not None
        tests = await self.store.list_tests(
            statuses=TERMINAL, search=search, limit=limit, owner_uid=self.owner.uid if mine else None
        )
        return [TestView.from_record(t) for t in tests]

    async def cancel(self, test_id: int) -> TestView:
        test = await self._get(test_id)
        self._check_owner(test, "cancel")
        if test.state.is_terminal or test.state is Status.ARCHIVED:
            raise NotActionable(f"test {test_id} already ended {test.status}; nothing to cancel")
        updated = await self.store.request_cancel(test_id)  # type: ignore[union-attr]
        if updated.state in ACTIVE and (updated.lease_expires_at or 0) < time.time():
            # Nobody is looking after it: adopt it here so the container is really stopped.
            self._take_charge(test_id)
        return TestView.from_record(updated)

    async def retry(
        self, test_id: int, *, query: str | None = None, agent_code: str | None = None
    ) -> TestView:
        """A new test linked to the original (R-11); the original's result is untouched."""
        test = await self._get(test_id)
        self._check_owner(test, "retry")
        changes = {k: v for k, v in (("query", query), ("agent_code", agent_code)) if v is not None}
        request = test.request.replace(**changes) if changes else test.request
        return await self.submit(request, parent_id=test_id)

    async def logs(self, test_id: int, *, after_seq: int = 0, limit: int | None = None) -> list[LogRecord]:
        test = await self._get(test_id)
        self._check_owner(test, "read the logs of")
        return await self.store.logs(test_id, after_seq=after_seq, limit=limit)  # type: ignore[union-attr]

    async def follow_logs(self, test_id: int, *, after_seq: int = 0) -> AsyncIterator[list[LogRecord]]:
        """Batches of new lines as they are stored, until the test has ended and all are read."""
        assert self.store is not None
        position = after_seq
        while True:
            test = await self._get(test_id)
            self._check_owner(test, "read the logs of")
            batch = await self.store.logs(test_id, after_seq=position, limit=5000)
            if batch:
                position = batch[-1].seq
                yield batch
                continue
            if test.state.is_terminal or test.state is Status.ARCHIVED:
                if position >= test.log_seq:
                    return
                continue
            await asyncio.sleep(min(self.settings.poll_s, 0.05))

    async def wait(self, test_id: int) -> TestView:
        while True:
            test = await self._get(test_id)
            if test.state.is_terminal:
                return TestView.from_record(test)
            await asyncio.sleep(self.settings.poll_s)

    async def request(self, test_id: int) -> TestRequest:
        """The full request of a test (edit-and-retry loads it into the editor)."""
        test = await self._get(test_id)
        self._check_owner(test, "read the request of")
        return test.request

    async def clear_history(self, older_than_s: float) -> int:
        """Archive finished tests older than `older_than_s` and purge their logs (R-20).
        Returns how many were archived."""
        assert self.store is not None
        return await self.store.archive_older_than(older_than_s)

    async def package(self, test_id: int, *, out_dir: Path | None = None) -> PackageResult:
        """Write the test's deployment package (R-21, R-23) and describe it."""
        from agenttui.packaging import build_package

        test = await self._get(test_id)
        self._check_owner(test, "package")
        # Settings has no package folder yet: default to the data dir.
        target = out_dir or getattr(self.settings, "package_dir", None) or data_dir() / "packages"
        return await asyncio.to_thread(build_package, test, Path(target), base_image=self.settings.base_image)

    # ------------------------------------------------------------------ helpers
    async def _get(self, test_id: int) -> TestRecord:
        assert self.store is not None
        test = await self.store.get(test_id)
        if test is None:
            raise NotFound(test_id)
        return test

    def _check_owner(self, test: TestRecord, action: str) -> None:
        if test.owner_uid != self.owner.uid and self.owner.uid != 0:
            raise AccessDenied(f"test {test.id} belongs to {test.owner_name}; you cannot {action} it")

    async def _typical_duration(self) -> float:
        assert self.store is not None
        recent = await self.store.list_tests(statuses=[Status.COMPLETED, Status.FAILED], limit=20)
        walls = [t.finished_at - t.claimed_at for t in recent if t.finished_at and t.claimed_at]
        return statistics.median(walls) if walls else DEFAULT_ETA_S

    async def _eta(self, position: int | None) -> float | None:
        if position is None:
            return None
        return self._eta_from(position, await self._typical_duration())

    def _eta_from(self, position: int, typical_s: float) -> float:
        # Tests ahead start in waves of `cap`; each wave takes about one typical test.
        return round(math.ceil(position / self.settings.max_concurrent) * typical_s, 1)
