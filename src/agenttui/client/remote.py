"""The client of an agenttui server for asyncio code (the TUI, the tests): each call is the
blocking client's (agenttui.client.blocking) on a worker thread, so the event loop never waits
on the socket. The headless commands use the blocking client itself.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from agenttui.client.blocking import BlockingClient, LogReader
from agenttui.core.wire import Health, LogEntry, PackageAnswer, PackageBody, QueueView, ServerStatus, TestView
from agenttui.core.wire import TraceView
from agenttui.core.suite_wire import SuiteResumeBody, SuiteRunBody, SuiteRunView

if TYPE_CHECKING:
    from agenttui.client.settings import ClientSettings
    from agenttui.core.config import Settings
    from agenttui.core.domain import TestRequest
    from agenttui.packaging import PackageResult

T = TypeVar("T")


class SocketClient:
    def __init__(self, settings: Settings | ClientSettings):
        self.settings = settings
        self.blocking = BlockingClient(settings)
        self.socket_path = self.blocking.socket_path
        self.personal = self.blocking.personal

    @property
    def health(self) -> Health | None:
        """The server's last answer to /health."""
        return self.blocking.health

    async def __aenter__(self) -> SocketClient:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _run(self, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """A blocking call on a worker thread."""
        return await asyncio.to_thread(partial(call, *args, **kwargs))

    async def open(self) -> None:
        await self._run(self.blocking.ensure_server)

    async def close(self) -> None:
        self.blocking.close()

    async def _call(self, method: str, path: str, kind: Any = Any, **options: Any) -> Any:
        return await self._run(self.blocking.call, method, path, kind, **options)

    # ------------------------------------------------------------------ the server's life
    async def running_server(self) -> Health | None:
        return await self._run(self.blocking.running_server)

    async def server_status(self) -> ServerStatus:
        return await self._run(self.blocking.server_status)

    async def stop_server(self) -> None:
        await self._run(self.blocking.stop_server)

    def settings_notice(self) -> str | None:
        return self.blocking.settings_notice()

    # ------------------------------------------------------------------ the Client API
    async def check_backend(self) -> None:
        await self._run(self.blocking.check_backend)

    async def submit(
        self, request: TestRequest | dict[str, Any], *, parent_id: int | None = None, check_backend: bool = False,
        follow: bool = False,
    ) -> TestView:
        """A dict is sent as it is: the server validates it, and no credentials are resolved
        here (the headless CLI resolves them itself when the provider needs any). With `follow`,
        the answer goes on as the test's log: follow_logs() reads it without a call of its own."""
        if not isinstance(request, dict):
            from agenttui.engine.credentials import resolve_for_submit

            # Credentials are resolved here, in the user's own process, and sent over the socket;
            # the server seals them and stores names only (docs/providers.md).
            request = await resolve_for_submit(request, self.settings.aws_session_duration_s)
            request = request.model_dump(mode="json")
        return await self._run(self.blocking.submit, request, parent_id=parent_id, check_backend=check_backend,
                               follow=follow)

    async def submit_many(self, common: TestRequest | dict[str, Any], tests: list[dict[str, Any]]) -> list[int]:
        """Queue a test per entry of `tests` (its fields over `common`'s) in one call: all or none."""
        if not isinstance(common, dict):
            from agenttui.engine.credentials import resolve_for_submit

            common = (await resolve_for_submit(common, self.settings.aws_session_duration_s)).model_dump(mode="json")
        return await self._run(self.blocking.submit_many, common, tests)

    async def show(self, test_id: int) -> TestView:
        return await self._run(self.blocking.show, test_id)

    async def queue(self) -> QueueView:
        return await self._run(self.blocking.queue)

    async def history(self, *, search: str | None = None, limit: int = 50, mine: bool = False) -> list[TestView]:
        return await self._run(self.blocking.history, search=search, limit=limit, mine=mine)

    async def cancel(self, test_id: int) -> TestView:
        return await self._run(self.blocking.cancel, test_id)

    async def retry(self, test_id: int, *, query: str | None = None, agent_code: str | None = None,
                    budget: dict[str, float | int] | None = None) -> TestView:
        return await self._run(self.blocking.retry, test_id, query=query, agent_code=agent_code, budget=budget)

    async def create_suite_run(self, body: SuiteRunBody) -> SuiteRunView:
        return await self._call("POST", "/suite-runs", SuiteRunView, body=body)

    async def resume_suite_run(self, run_id: int, body: SuiteResumeBody) -> SuiteRunView:
        return await self._call("POST", f"/suite-runs/{run_id}/resume", SuiteRunView, body=body)

    async def suite_run(self, run_id: int) -> SuiteRunView:
        return await self._call("GET", f"/suite-runs/{run_id}", SuiteRunView)

    async def suite_runs(self, *, name: str | None = None, baseline: bool = False, limit: int = 50) -> list[SuiteRunView]:
        params: dict[str, Any] = {"limit": limit, "baseline": "1" if baseline else "0"}
        if name:
            params["name"] = name
        return await self._call("GET", "/suite-runs", list[SuiteRunView], params=params)

    async def bless_suite_run(self, run_id: int) -> SuiteRunView:
        return await self._call("POST", f"/suite-runs/{run_id}/bless", SuiteRunView)

    async def trace(self, test_id: int, *, after_seq: int = 0) -> TraceView:
        return await self._run(self.blocking.trace, test_id, after_seq=after_seq)

    async def request(self, test_id: int) -> TestRequest:
        from agenttui.core.domain import TestRequest

        return TestRequest.model_validate(await self._run(self.blocking.request_fields, test_id))

    async def logs(self, test_id: int, *, after_seq: int = 0, limit: int | None = None) -> list[LogEntry]:
        if not limit:  # the whole log: streamed (no single answer holds one), gathered here
            return [record async for batch in self.read_logs(test_id, after_seq=after_seq) for record in batch]
        return await self._run(self.blocking.log_page, test_id, after_seq=after_seq, limit=limit)

    async def read_logs(self, test_id: int, *, after_seq: int = 0) -> AsyncIterator[list[LogEntry]]:
        """The log after line `after_seq` up to its end so far, a batch at a time."""
        async with contextlib.aclosing(_batches(self.blocking.log_reader(test_id, after_seq=after_seq))) as batches:
            async for batch in batches:
                yield batch

    async def follow_logs(self, test_id: int, *, after_seq: int = 0) -> AsyncIterator[list[LogEntry]]:
        """Stream new lines until the test ends; reconnect and resume after a dropped link."""
        reader = self.blocking.log_reader(test_id, after_seq=after_seq, follow=True)
        async with contextlib.aclosing(_batches(reader)) as batches:
            async for batch in batches:
                yield batch

    async def wait(self, test_id: int) -> TestView:
        """The test's final view: the one its follow stream ended with, else the one the server
        ends a follow with as soon as the test ends."""
        return await self._run(self.blocking.wait, test_id)

    async def clear_history(self, older_than_s: float) -> int:
        return await self._run(self.blocking.clear_history, older_than_s)

    async def package(self, test_id: int, *, out_dir: Path | None = None) -> PackageResult:
        """Write the test's deployment package into `out_dir` (default: setting package_dir),
        with this user's rights: the server sends the zip and writes no file for it."""
        from agenttui.core.paths import data_dir
        from agenttui.packaging import PackageResult
        from agenttui.packaging.build import prepare_folder, save_package

        folder = Path(out_dir or self.settings.package_dir or data_dir() / "packages")
        folder = await asyncio.to_thread(prepare_folder, folder)  # a folder we cannot write: said before asking
        body = PackageBody(out_dir=str(folder.absolute()))
        answer = await self._call("POST", f"/tests/{test_id}/package", PackageAnswer[PackageResult], body=body)
        return await asyncio.to_thread(save_package, answer.result, answer.zip, folder)


async def _batches(reader: LogReader) -> AsyncIterator[list[LogEntry]]:
    """The reader's batches, each read on a worker thread; closing the reader wakes a read
    still blocked there when we stop early (or are cancelled)."""
    try:
        while (batch := await asyncio.to_thread(reader.next_batch)) is not None:
            yield batch
    finally:
        reader.close()
