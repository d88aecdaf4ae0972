"""The client of an agenttui server, over its Unix socket.

In personal mode (no socket_path set) it starts the server detached when none answers, the
way tmux starts its server. A dropped connection is retried, and a log stream resumes from
the last line it delivered, so a reconnect neither repeats nor skips lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec

# Only light modules here (no pydantic, no store): the headless commands import this.
from agenttui import __version__, build_id
from agenttui.client import transport
from agenttui.client.transport import ConnectionLost
from agenttui.client.trust import check_server
from agenttui.core import wire
from agenttui.core.errors import BAD_SETTING, NOT_FOUND, OK, InfraError, SettingsError, error_of
from agenttui.core.paths import PRIVATE_FILE, private_dir, server_log_file
from agenttui.core.wire import (
    NDJSON, Archived, ClearHistoryBody, ErrorAnswer, FollowEnd, FollowRecord, Health, LogEntry, PackageAnswer,
    PackageBody, QueueView, RetryBody, ServerStatus, SubmitBody, SubmitManyBody, SubmittedMany, TestView,
)
from agenttui.core.wire import TraceView
from agenttui.core.suite_wire import SuiteResumeBody, SuiteRunBody, SuiteRunView

if TYPE_CHECKING:
    from agenttui.client.settings import ClientSettings
    from agenttui.core.config import Settings
    from agenttui.core.domain import TestRequest
    from agenttui.packaging import PackageResult

log = logging.getLogger(__name__)
T = TypeVar("T")

SERVER_START_TIMEOUT_S = 20.0
# A stopping server first lets go of its running tests (they stay for the next one to adopt).
SERVER_STOP_TIMEOUT_S = 60.0
RECONNECT_TRIES = 60  # about half a minute of retries before a follower gives up
RECONNECT_DELAY_S = 0.5
# The server sends ~256 KB lines; one record alone may be longer (a huge build-log line), so
# allow far more before giving up on the stream.
MAX_FOLLOW_LINE_BYTES = 256 * 1024 * 1024


class ServerUnavailable(InfraError):
    pass


@dataclass
class FollowStream:
    """An open follow stream: its NDJSON lines are read one at a time on a worker thread."""

    response: transport.Response
    lines: Iterator[bytes]

    def next_line(self) -> bytes | None:
        return next(self.lines, None)


class SocketClient:
    def __init__(self, settings: Settings | ClientSettings):
        self.settings = settings
        self.socket_path = settings.resolved_socket_path
        self.personal = settings.socket_path is None
        self._ended: dict[int, TestView] = {}  # final views that ended a follow stream, for wait()
        self._submitted: dict[int, FollowStream] = {}  # follow streams a submit opened, for follow_logs()
        self.health: Health | None = None  # the server's last answer to /health

    async def __aenter__(self) -> SocketClient:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def open(self) -> None:
        await self._ensure_server()

    async def close(self) -> None:
        # One connection per request: only a submit's follow stream that nobody read stays open.
        while self._submitted:
            self._submitted.popitem()[1].response.close()

    # ------------------------------------------------------------------ connection
    def _request(
        self, method: str, path: str, *, params: dict[str, Any] | None = None, body: Any = None,
        timeout: float | None = None,
    ) -> transport.Response:
        """Send one request of the API (blocking); returns once the answer's head has arrived."""
        payload = wire.encode(body) if body is not None else None
        socket_path = str(self.socket_path)
        return transport.request(socket_path, method, f"/v1{path}", params=params, body=payload, timeout=timeout)

    def _exchange(self, method: str, path: str, **options: Any) -> tuple[int, bytes]:
        """One request and its whole answer (blocking)."""
        with self._request(method, path, **options) as response:
            return response.status, response.read()

    async def _health(self) -> Health | None:
        try:
            status, data = await asyncio.to_thread(partial(self._exchange, "GET", "/health", timeout=5))
            health = wire.decode(data, Health) if status == OK.http else None
        except (ConnectionLost, msgspec.DecodeError):
            return None
        self.health = health
        return health

    async def _ensure_server(self) -> None:
        # Before anything is sent: the folder and the server's uid (kernel credentials).
        await asyncio.to_thread(check_server, self.socket_path, self.personal)
        health = await self._health()
        if health is not None:
            if health.build == build_id():
                return
            if not self.personal:
                log.warning(
                    "the agenttui server at %s runs version %s (build %s), this client %s (build %s)",
                    self.socket_path, health.version, health.build, __version__, build_id(),
                )
                return
            # Our own personal server runs older code (agenttui was upgraded): replace it. Its
            # running tests are adopted by the new one.
            await self._stop_personal_server()
        elif not self.personal:
            raise ServerUnavailable(
                f"the agenttui server at {self.socket_path} does not answer; ask the box's admin to start it "
                "(systemctl start agenttui), or unset AGENTTUI_SOCKET_PATH to use a personal server"
            )
        server, log_start = self._spawn_server()
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            if await self._health() is not None:
                return
            if server.poll() == BAD_SETTING.exit:
                # It refused its settings (the client reads only the few it needs itself).
                raise SettingsError(_server_said(log_start) or f"the agenttui server refused its settings; see {server_log_file()}")
        raise ServerUnavailable(
            f"started a personal agenttui server but it did not answer on {self.socket_path} within "
            f"{SERVER_START_TIMEOUT_S:.0f} s; see {server_log_file()}"
        )

    async def _stop_personal_server(self) -> None:
        """Ask our own personal server (its uid checked by check_server) to stop: a pid is never
        taken from a socket's answer, which another user's server could forge."""
        try:
            status, _ = await asyncio.to_thread(partial(self._exchange, "POST", "/shutdown", timeout=5))
        except ConnectionLost:  # it went away while answering
            status = OK.http
        if status == NOT_FOUND.http:  # a server older than /v1/shutdown: its lock file, in our 0700 folder
            with contextlib.suppress(OSError, ValueError):
                os.kill(int(self._lock_path.read_text()), signal.SIGTERM)
        await self._wait_until_stopped(SERVER_START_TIMEOUT_S)

    @property
    def _lock_path(self) -> Path:
        return self.socket_path.with_name(self.socket_path.name + ".lock")

    async def _wait_until_stopped(self, timeout: float) -> bool:
        """Whether the server let go of its socket (and our own server of its lock, so that a
        new one may start at once) within `timeout`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.socket_path.exists() and (not self.personal or _lock_free(self._lock_path)):
                return True
            await asyncio.sleep(0.05)
        return False

    # ------------------------------------------------------------------ the server's life
    async def running_server(self) -> Health | None:
        """The server's health when one answers on the socket (checked first: check_server),
        None when none does; never starts one."""
        await asyncio.to_thread(check_server, self.socket_path, self.personal)
        return await self._health()

    async def server_status(self) -> ServerStatus:
        """The running server's status (its own user and admins only); never starts one."""
        status, data = await asyncio.to_thread(partial(self._exchange, "GET", "/server", timeout=10))
        if status >= 400:
            raise _error_from(data, status)
        return wire.decode(data, ServerStatus)

    async def stop_server(self) -> None:
        """Ask the running server to stop, as SIGTERM does (its running tests are left for the
        next server to adopt), and wait until it is gone. Asked over the socket, where the
        server checks the caller's kernel credentials: no signal, no pid."""
        try:
            status, data = await asyncio.to_thread(partial(self._exchange, "POST", "/shutdown", timeout=10))
        except ConnectionLost:  # it went away while answering
            status, data = OK.http, b""
        if status >= 400:
            raise _error_from(data, status)
        if not await self._wait_until_stopped(SERVER_STOP_TIMEOUT_S):
            raise ServerUnavailable(
                f"the agenttui server at {self.socket_path} was asked to stop but still holds its socket after "
                f"{SERVER_STOP_TIMEOUT_S:.0f} s; see {server_log_file()}"
            )

    def settings_notice(self) -> str | None:
        """What to tell the user when their personal server runs with settings other than
        the ones a server started now would read, else None."""
        digests = self.health.settings if self.health is not None else None
        if not self.personal or not digests:
            return None
        from agenttui.client.settings import differing_settings

        differing = differing_settings(digests)
        if not differing:
            return None
        return (f"your agenttui server was started with other settings than yours now ({', '.join(differing)}): "
                "`agenttui server restart` applies them; its running tests carry on")

    def _spawn_server(self) -> tuple[subprocess.Popen[bytes], int]:
        """Start `agenttui server` detached from this terminal: it outlives this client. Returns
        the process and where its output starts in the server log."""
        log = server_log_file()
        private_dir(log.parent, ours=True)
        fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, PRIVATE_FILE)
        with open(fd, "ab") as out:
            out.seek(0, os.SEEK_END)
            start = out.tell()
            return subprocess.Popen(
                [sys.executable, "-m", "agenttui", "server"],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                start_new_session=True,
                close_fds=True,
                env=os.environ.copy(),
            ), start

    async def _with_server(self, exchange: Callable[[], T]) -> T:
        """A blocking `exchange` with the server on a worker thread, tried on a new connection
        (starting the server again when needed) when the last one broke."""
        for attempt in range(3):
            try:
                return await asyncio.to_thread(exchange)
            except ConnectionLost as exc:
                if attempt == 2:
                    raise ServerUnavailable(f"lost the agenttui server at {self.socket_path}: {exc}") from None
                await self._ensure_server()
        raise AssertionError("unreachable")

    async def _call(
        self, method: str, path: str, kind: type[T] | Any = Any, *, body: Any = None,
        params: dict[str, Any] | None = None,
    ) -> T:
        """The server's answer decoded as `kind`; its error raised as the exception it names."""
        status, data = await self._with_server(partial(self._exchange, method, path, params=params, body=body))
        if status >= 400:
            raise _error_from(data, status)
        return wire.decode(data, kind)

    def _open_stream(
        self, method: str, path: str, *, params: dict[str, Any] | None = None, body: Any = None
    ) -> FollowStream:
        """An answer that streams NDJSON (blocking); its error raised as the exception it names."""
        response = self._request(method, path, params=params, body=body)
        if response.status >= 400:
            with response:
                raise _error_from(response.read(), response.status)
        return FollowStream(response, response.lines(MAX_FOLLOW_LINE_BYTES))

    def _submit_and_follow(self, body: SubmitBody) -> TestView:
        """Submit (blocking) with an answer that goes on as the test's follow stream: its first
        line is the new test's view, the rest is left for follow_logs."""
        stream = self._open_stream("POST", "/tests", params={"follow": "1"}, body=body)
        try:
            first = stream.next_line()
            if first is None:
                raise ConnectionLost("the submit's answer ended before the test's view")
            view = wire.decode(first, TestView)
        except BaseException:
            stream.response.close()
            raise
        if stream.response.headers.get("content-type", "").startswith(NDJSON):
            self._submitted[view.id] = stream
        else:  # a server that predates followed submits answered with the view alone
            stream.response.close()
        return view

    # ------------------------------------------------------------------ the Client API
    async def check_backend(self) -> None:
        await self._call("POST", "/check")

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
        body = SubmitBody(request=request, parent_id=parent_id, check_backend=check_backend)
        if follow:
            return await self._with_server(partial(self._submit_and_follow, body))
        return await self._call("POST", "/tests", TestView, body=body)

    async def submit_many(self, common: TestRequest | dict[str, Any], tests: list[dict[str, Any]]) -> list[int]:
        """Queue a test per entry of `tests` (its fields over `common`'s) in one call: all or none."""
        if not isinstance(common, dict):
            from agenttui.engine.credentials import resolve_for_submit

            common = (await resolve_for_submit(common, self.settings.aws_session_duration_s)).model_dump(mode="json")
        body = SubmitManyBody(tests=tests, common=common)
        return (await self._call("POST", "/tests/many", SubmittedMany, body=body)).ids

    async def show(self, test_id: int) -> TestView:
        return await self._call("GET", f"/tests/{test_id}", TestView)

    async def queue(self) -> QueueView:
        return await self._call("GET", "/queue", QueueView)

    async def history(self, *, search: str | None = None, limit: int = 50, mine: bool = False) -> list[TestView]:
        params: dict[str, Any] = {"limit": limit, "mine": "1" if mine else "0"}
        if search:
            params["search"] = search
        return await self._call("GET", "/history", list[TestView], params=params)

    async def cancel(self, test_id: int) -> TestView:
        return await self._call("POST", f"/tests/{test_id}/cancel", TestView)

    async def retry(self, test_id: int, *, query: str | None = None, agent_code: str | None = None) -> TestView:
        from agenttui.engine.credentials import resolve_for_retry

        secrets = await resolve_for_retry(await self.request(test_id), self.settings.aws_session_duration_s)
        body = RetryBody(query=query, agent_code=agent_code, secrets=secrets or None)
        return await self._call("POST", f"/tests/{test_id}/retry", TestView, body=body)

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
        return await self._call("GET", f"/tests/{test_id}/trace", TraceView, params={"after": after_seq})

    async def request(self, test_id: int) -> TestRequest:
        from agenttui.core.domain import TestRequest

        return TestRequest.model_validate(await self._call("GET", f"/tests/{test_id}/request"))

    async def logs(self, test_id: int, *, after_seq: int = 0, limit: int | None = None) -> list[LogEntry]:
        if not limit:  # the whole log: streamed (no single answer holds one), gathered here
            return [record async for batch in self.read_logs(test_id, after_seq=after_seq) for record in batch]
        params = {"after": after_seq, "limit": limit}
        return await self._call("GET", f"/tests/{test_id}/logs", list[LogEntry], params=params)

    async def read_logs(self, test_id: int, *, after_seq: int = 0) -> AsyncIterator[list[LogEntry]]:
        """The log after line `after_seq` up to its end so far, a batch at a time."""
        params = {"after": after_seq, "stream": "1"}
        stream = await asyncio.to_thread(partial(self._open_stream, "GET", f"/tests/{test_id}/logs", params=params))
        async with contextlib.aclosing(self._batches(stream, test_id)) as batches:
            async for batch in batches:
                yield batch

    async def follow_logs(self, test_id: int, *, after_seq: int = 0) -> AsyncIterator[list[LogEntry]]:
        """Stream new lines until the test ends; reconnect and resume after a dropped link."""
        position = after_seq
        failures = 0
        while True:
            try:
                async with contextlib.aclosing(self._follow_once(test_id, position)) as batches:
                    async for batch in batches:
                        position = batch[-1].seq
                        failures = 0
                        yield batch
                return
            except (ConnectionLost, msgspec.DecodeError):
                failures += 1
                if failures > RECONNECT_TRIES:
                    raise ServerUnavailable(f"lost the agenttui server at {self.socket_path}") from None
                await asyncio.sleep(RECONNECT_DELAY_S)
                try:
                    await self._ensure_server()
                except ServerUnavailable:
                    continue

    async def _follow_once(self, test_id: int, after_seq: int) -> AsyncIterator[list[LogEntry]]:
        """One follow stream's non-empty batches (the submit's own stream when it opened one);
        ConnectionLost when it breaks off before its end."""
        stream = self._submitted.pop(test_id, None)
        if stream is not None and after_seq:  # the submit's stream starts from the first line
            stream.response.close()
            stream = None
        if stream is None:
            params = {"after": after_seq, "follow": "1"}
            stream = await asyncio.to_thread(partial(self._open_stream, "GET", f"/tests/{test_id}/logs", params=params))
        async with contextlib.aclosing(self._batches(stream, test_id)) as batches:
            async for batch in batches:
                yield batch

    async def _batches(self, stream: Any, test_id: int) -> AsyncIterator[list[LogEntry]]:
        """A log stream's non-empty batches up to its FollowEnd (whose final view, if any, is kept
        for wait()); ConnectionLost when it breaks off before that."""
        try:  # each read blocks a worker thread; closing the response wakes it when we stop early
            while (raw := await asyncio.to_thread(stream.next_line)) is not None:
                record = wire.decode(raw, FollowRecord)
                if isinstance(record, FollowEnd):
                    if record.test is not None:
                        self._ended[test_id] = record.test
                    return
                if record:
                    yield record
            # The stream closed without its end record: the server went away mid-stream.
            raise ConnectionLost("stream closed early")
        finally:
            stream.response.close()

    async def wait(self, test_id: int) -> TestView:
        """The test's final view: the one its follow stream ended with, else polled for."""
        ended = self._ended.pop(test_id, None)
        if ended is not None:
            return ended
        while True:
            view = await self.show(test_id)
            if view.status.is_terminal:
                return view
            await asyncio.sleep(self.settings.poll_s)

    async def clear_history(self, older_than_s: float) -> int:
        answer = await self._call("POST", "/history/clear", Archived, body=ClearHistoryBody(older_than_s))
        return answer.archived

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


def _lock_free(path: Path) -> bool:
    """Whether no server holds its single-instance lock file (agenttui.server.main)."""
    import fcntl

    try:
        with open(path, "rb") as lock:
            fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)  # let go of at once, as it closes
    except FileNotFoundError:
        return True
    except OSError:  # BlockingIOError: a server holds it
        return False
    return True


def _server_said(offset: int) -> str | None:
    """The server's own error message (`agenttui: ...`) written to its log after `offset`."""
    try:
        with open(server_log_file(), "rb") as log:
            log.seek(offset)
            text = log.read(64 * 1024).decode("utf-8", "replace")
    except OSError:
        return None
    said = [line.removeprefix("agenttui: ") for line in text.splitlines() if line.startswith("agenttui: ")]
    return said[-1] if said else None


def _error_from(data: bytes, status: int) -> Exception:
    """The exception an error answer stands for (agenttui.core.errors)."""
    try:
        answer = wire.decode(data, ErrorAnswer)
    except msgspec.DecodeError:
        return RuntimeError(f"server error {status}")
    return error_of(answer.kind, answer.error or f"server error {status}", answer.fields)
