"""The in-process client: the store and an orchestrator in this very process.

Used by the headless commands when no server is wanted, and by the client test suite. Unless
asked to work the whole queue, its orchestrator only claims (and adopts) the tests this client
submitted or was asked to act on, so a short-lived command never walks away holding someone
else's test.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agenttui.backends import make_backend
from agenttui.backends.base import Backend
from agenttui.client.models import QueueView, TestView
from agenttui.engine.service import AccessDenied, NotActionable, NotFound, Service
from agenttui.core.config import Settings
from agenttui.core.domain import TestRequest
from agenttui.engine.orchestrator import Orchestrator
from agenttui.engine.store import LogRecord, Owner, Store

if TYPE_CHECKING:
    from agenttui.packaging import PackageResult

__all__ = ["LocalClient", "NotFound", "AccessDenied", "NotActionable"]


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
        # True for long-lived clients (the TUI without a server): work every queued test.
        self.work_whole_queue = work_whole_queue
        self.owner = owner or Owner.current()
        self._backend = backend
        self.store: Store | None = None
        self.orchestrator: Orchestrator | None = None
        self.service: Service | None = None
        self._loop_task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> LocalClient:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def open(self) -> None:
        self.store = await Store.open(self.settings.resolved_db_url, log_max_bytes=self.settings.log_max_bytes)
        # A one-shot command has no next test to start ahead of time (the warm pool).
        settings = self.settings if self.work_whole_queue else self.settings.model_copy(update={"warm_pool": 0})
        self.backend = self._backend or make_backend(settings)
        self.orchestrator = Orchestrator(
            self.store, self.backend, self.settings, only_ids=None if self.work_whole_queue else set()
        )
        self.service = Service(self.store, self.settings, on_submit=self._take_charge, on_orphan=self._take_charge)
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

    @property
    def _svc(self) -> Service:
        assert self.service is not None, "call open() first"
        return self.service

    # ------------------------------------------------------------------ the Client API
    async def submit(
        self, request: TestRequest | dict[str, Any], *, parent_id: int | None = None, check_backend: bool = False,
        follow: bool = False,  # in-process, following costs no round trip: nothing to prepare
    ) -> TestView:
        from agenttui.engine.credentials import resolve_for_submit

        if isinstance(request, dict):
            request = TestRequest.parse(**request)
        # Credentials are resolved here, in the user's own process (docs/providers.md).
        request = await resolve_for_submit(request, self.settings.aws_session_duration_s)
        if check_backend:
            await self.check_backend()
        return await self._svc.submit(self.owner, request, parent_id=parent_id)

    async def show(self, test_id: int) -> TestView:
        return await self._svc.show(test_id)

    async def queue(self) -> QueueView:
        return await self._svc.queue()

    async def history(self, *, search: str | None = None, limit: int = 50, mine: bool = False) -> list[TestView]:
        return await self._svc.history(self.owner, search=search, limit=limit, mine=mine)

    async def cancel(self, test_id: int) -> TestView:
        return await self._svc.cancel(self.owner, test_id)

    async def retry(self, test_id: int, *, query: str | None = None, agent_code: str | None = None) -> TestView:
        from agenttui.engine.credentials import resolve_for_retry

        secrets = await resolve_for_retry(await self.request(test_id), self.settings.aws_session_duration_s)
        return await self._svc.retry(self.owner, test_id, query=query, agent_code=agent_code, secrets=secrets)

    async def logs(self, test_id: int, *, after_seq: int = 0, limit: int | None = None) -> list[LogRecord]:
        return await self._svc.logs(self.owner, test_id, after_seq=after_seq, limit=limit)

    def follow_logs(self, test_id: int, *, after_seq: int = 0) -> AsyncIterator[list[LogRecord]]:
        return self._svc.follow_logs(self.owner, test_id, after_seq=after_seq)

    async def wait(self, test_id: int) -> TestView:
        return await self._svc.wait(test_id)

    async def request(self, test_id: int) -> TestRequest:
        """The full request of a test (edit-and-retry loads it into the editor)."""
        return await self._svc.request(self.owner, test_id)

    async def clear_history(self, older_than_s: float) -> int:
        """Archive finished tests older than `older_than_s` and purge their logs (R-20)."""
        return await self._svc.clear_history(self.owner, older_than_s)

    async def package(self, test_id: int, *, out_dir: Path | None = None) -> PackageResult:
        """Write the test's deployment package (R-21, R-23) and describe it."""
        return await self._svc.package(self.owner, test_id, out_dir=out_dir)
