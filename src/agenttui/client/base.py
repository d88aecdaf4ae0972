"""The client API: the only thing views (TUI, headless CLI) use to reach the engine.

Implemented in-process (client.local.LocalClient) and, once the server exists, over its socket.
Errors: NotFound (unknown id), AccessDenied (another user's test), NotActionable (e.g. cancel
a finished test), domain.InvalidRequest (bad request), InfraError (engine down): the table in
agenttui.core.errors says how each is told over the socket and as an exit code.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from agenttui.core.suite_wire import SuiteResumeBody, SuiteRunBody, SuiteRunView
from agenttui.core.wire import LogEntry, QueueView, TestView, TraceView

if TYPE_CHECKING:
    from agenttui.core.domain import TestRequest
    from agenttui.packaging import PackageResult


class Client(Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def check_backend(self) -> None: ...

    async def submit(
        self, request: TestRequest | dict[str, Any], *, parent_id: int | None = None, check_backend: bool = False,
        follow: bool = False,
    ) -> TestView:
        """Queue a test. A dict holds a request's fields, validated by the engine (InvalidRequest
        names each bad field). check_backend: first make sure the backend answers (InfraError),
        after the request is found valid, so nothing is queued for an engine that is down.
        follow: the caller follows the test's log next (follow_logs), which may then start from
        this call's own answer."""
        ...

    async def submit_many(self, common: TestRequest | dict[str, Any], tests: list[dict[str, Any]]) -> list[int]: ...

    async def show(self, test_id: int) -> TestView: ...

    async def queue(self) -> QueueView: ...

    async def history(self, *, search: str | None = None, limit: int = 50, mine: bool = False) -> list[TestView]: ...

    async def cancel(self, test_id: int) -> TestView: ...

    async def retry(self, test_id: int, *, query: str | None = None, agent_code: str | None = None,
                    budget: dict[str, float | int] | None = None) -> TestView: ...

    async def logs(self, test_id: int, *, after_seq: int = 0, limit: int | None = None) -> list[LogEntry]: ...

    def read_logs(self, test_id: int, *, after_seq: int = 0) -> AsyncIterator[list[LogEntry]]: ...

    def follow_logs(self, test_id: int, *, after_seq: int = 0) -> AsyncIterator[list[LogEntry]]: ...

    async def wait(self, test_id: int) -> TestView: ...

    async def request(self, test_id: int) -> TestRequest: ...

    async def trace(self, test_id: int, *, after_seq: int = 0) -> TraceView: ...

    # Suite runs (docs/suites.md). `tests[i]` holds the request fields of `slots[i]`.
    async def create_suite_run(self, body: SuiteRunBody) -> SuiteRunView: ...

    async def resume_suite_run(self, run_id: int, body: SuiteResumeBody) -> SuiteRunView: ...

    async def suite_run(self, run_id: int) -> SuiteRunView: ...

    async def suite_runs(self, *, name: str | None = None, baseline: bool = False, limit: int = 50) -> list[SuiteRunView]: ...

    async def bless_suite_run(self, run_id: int) -> SuiteRunView: ...

    async def clear_history(self, older_than_s: float) -> int: ...

    async def package(self, test_id: int, *, out_dir: Path | None = None) -> PackageResult: ...
