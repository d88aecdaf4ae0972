"""The in-process client: the store and an orchestrator in this very process.

Used by the headless commands when no server is wanted, and by the client test suite. Unless
asked to work the whole queue, its orchestrator only claims (and adopts) the tests this client
submitted or was asked to act on, so a short-lived command never walks away holding someone
else's test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agenttui.backends.base import Backend
from agenttui.core.wire import LogEntry, QueueView, TestView, TraceView
from agenttui.engine.runtime import Engine
from agenttui.engine.service import AccessDenied, NotActionable, NotFound, Service
from agenttui.core.config import Settings
from agenttui.core.domain import TestRequest
from agenttui.engine.store import Owner

if TYPE_CHECKING:
    from agenttui.core.suite_wire import SuiteResumeBody, SuiteRunBody, SuiteRunView
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
        self.engine: Engine | None = None

    async def __aenter__(self) -> LocalClient:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def open(self) -> None:
        self.engine = await Engine.open(self.settings, whole_queue=self.work_whole_queue, backend=self._backend)
        self.engine.service.share_content = True  # this process reads the store itself: nothing is hidden
        if self.work_whole_queue:
            self.engine.start()

    async def close(self) -> None:
        if self.engine is not None:
            await self.engine.close()

    async def check_backend(self) -> None:
        assert self.engine is not None, "call open() first"
        await self.engine.backend.check()

    @property
    def _svc(self) -> Service:
        assert self.engine is not None, "call open() first"
        return self.engine.service

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

    async def submit_many(self, common: TestRequest | dict[str, Any], tests: list[dict[str, Any]]) -> list[int]:
        from agenttui.core.domain import parse_requests
        from agenttui.engine.credentials import resolve_for_submit

        if not isinstance(common, dict):
            common = (await resolve_for_submit(common, self.settings.aws_session_duration_s)).model_dump(mode="json")
        return await self._svc.submit_many(self.owner, parse_requests(common, tests))

    async def show(self, test_id: int) -> TestView:
        return await self._svc.show(self.owner, test_id)

    async def queue(self) -> QueueView:
        return await self._svc.queue(self.owner)

    async def history(self, *, search: str | None = None, limit: int = 50, mine: bool = False) -> list[TestView]:
        return await self._svc.history(self.owner, search=search, limit=limit, mine=mine)

    async def cancel(self, test_id: int) -> TestView:
        return await self._svc.cancel(self.owner, test_id)

    async def retry(self, test_id: int, *, query: str | None = None, agent_code: str | None = None,
                    budget: dict[str, float | int] | None = None) -> TestView:
        from agenttui.engine.credentials import resolve_for_retry

        secrets = await resolve_for_retry(await self.request(test_id), self.settings.aws_session_duration_s)
        return await self._svc.retry(self.owner, test_id, query=query, agent_code=agent_code, secrets=secrets,
                                     budget=budget)

    async def logs(self, test_id: int, *, after_seq: int = 0, limit: int | None = None) -> list[LogEntry]:
        return await self._svc.logs(self.owner, test_id, after_seq=after_seq, limit=limit)

    def read_logs(self, test_id: int, *, after_seq: int = 0) -> AsyncIterator[list[LogEntry]]:
        return self._svc.read_logs(self.owner, test_id, after_seq=after_seq)

    def follow_logs(self, test_id: int, *, after_seq: int = 0) -> AsyncIterator[list[LogEntry]]:
        return self._svc.follow_logs(self.owner, test_id, after_seq=after_seq)

    async def wait(self, test_id: int) -> TestView:
        return await self._svc.wait(test_id)

    async def create_suite_run(self, body: SuiteRunBody) -> SuiteRunView:
        from agenttui.core.domain import parse_requests

        return await self._svc.create_suite_run(self.owner, body, parse_requests(body.common, body.tests))

    async def resume_suite_run(self, run_id: int, body: SuiteResumeBody) -> SuiteRunView:
        from agenttui.core.domain import parse_requests

        requests = parse_requests(body.common, body.tests) if body.tests else []
        return await self._svc.resume_suite_run(self.owner, run_id, body, requests)

    async def suite_run(self, run_id: int) -> SuiteRunView:
        return await self._svc.suite_run(self.owner, run_id)

    async def suite_runs(self, *, name: str | None = None, baseline: bool = False, limit: int = 50) -> list[SuiteRunView]:
        return await self._svc.suite_runs(self.owner, name=name, baseline=baseline, limit=limit)

    async def bless_suite_run(self, run_id: int) -> SuiteRunView:
        return await self._svc.bless_suite_run(self.owner, run_id)

    async def trace(self, test_id: int, *, after_seq: int = 0) -> TraceView:
        return await self._svc.trace(self.owner, test_id, after_seq=after_seq)

    async def request(self, test_id: int) -> TestRequest:
        """The full request of a test (edit-and-retry loads it into the editor)."""
        return await self._svc.request(self.owner, test_id)

    async def clear_history(self, older_than_s: float) -> int:
        """Archive finished tests older than `older_than_s` and purge their logs (R-20)."""
        return await self._svc.clear_history(self.owner, older_than_s)

    async def package(self, test_id: int, *, out_dir: Path | None = None) -> PackageResult:
        """Write the test's deployment package (R-21, R-23) into `out_dir` (default: setting
        package_dir) and describe it. The engine hands over the zip; this client writes it."""
        import asyncio

        from agenttui.packaging.build import prepare_folder, save_package

        folder = await asyncio.to_thread(prepare_folder, Path(out_dir or self.settings.resolved_package_dir))
        answer = await self._svc.package(self.owner, test_id, out_dir=str(folder.absolute()))
        return await asyncio.to_thread(save_package, answer.result, answer.zip, folder)
