"""The client of an agenttui server over its Unix socket, on blocking sockets.

The headless commands use it as it is: they start like a small tool (no asyncio, pydantic or
store). SocketClient (agenttui.client.remote) wraps these same calls for asyncio code (the TUI).

In personal mode (no socket_path set) it starts the server detached when none answers, the
way tmux starts its server. A dropped connection is retried, and a log stream resumes from
the last line it delivered, so a reconnect neither repeats nor skips lines.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec

# Only light modules here (no asyncio, no pydantic, no store): the headless commands import this.
from agenttui import __version__, build_id
from agenttui.client import transport
from agenttui.client.transport import ConnectionLost
from agenttui.client.trust import check_server
from agenttui.core import wire
from agenttui.core.errors import BAD_SETTING, NOT_FOUND, OK, SERVER_OUTDATED, InfraError, SettingsError, error_of
from agenttui.core.paths import PRIVATE_FILE, private_dir, server_log_file
from agenttui.core.wire_headers import HEALTH_HEADER
from agenttui.core.wire import (
    NDJSON, Archived, ClearHistoryBody, ErrorAnswer, FollowEnd, FollowRecord, Health, LogEntry, QueueView,
    RetryBody, ServerStatus, SubmitBody, SubmitManyBody, SubmittedMany, TestView, TraceView,
)

if TYPE_CHECKING:
    import subprocess

    from agenttui.client.settings import ClientSettings
    from agenttui.core.config import Settings

T = TypeVar("T")

SERVER_START_TIMEOUT_S = 20.0
# A stopping server first lets go of its running tests (they stay for the next one to adopt).
SERVER_STOP_TIMEOUT_S = 60.0
RECONNECT_TRIES = 60  # about half a minute of retries before a follower gives up
RECONNECT_DELAY_S = 0.5
# The server sends ~256 KB lines; one record alone may be longer (a huge build-log line), so
# allow far more before giving up on the stream.
MAX_FOLLOW_LINE_BYTES = 256 * 1024 * 1024
# A follow from past any line the test can have: no line, only the stream's end with the final view.
PAST_EVERY_LINE = 2**62


class ServerUnavailable(InfraError):
    pass


@dataclass
class FollowStream:
    """An open NDJSON answer, read a line at a time."""

    response: transport.Response
    lines: Iterator[bytes]

    def next_line(self) -> bytes | None:
        return next(self.lines, None)


class BlockingClient:
    def __init__(self, settings: Settings | ClientSettings, sent: transport.Sent | None = None):
        """`sent`: a followed submit already on its way (agenttui.client.early); the next
        submit(follow=True) reads its answer instead of sending one."""
        self.settings = settings
        self._sent = sent
        self.socket_path = settings.resolved_socket_path
        self.personal = settings.socket_path is None
        self.ended: dict[int, TestView] = {}  # final views that ended a follow stream, for wait()
        self.submitted: dict[int, FollowStream] = {}  # follow streams a submit opened, for follow_logs()
        self.health: Health | None = None  # the server's last answer to /health

    def __enter__(self) -> BlockingClient:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        if self._sent is None:  # a submit sent ahead found the server there
            self.ensure_server()

    def close(self) -> None:
        if self._sent is not None:
            self._sent.close()
            self._sent = None
        # One connection per request: only a submit's follow stream that nobody read stays open.
        while self.submitted:
            self.submitted.popitem()[1].response.close()

    # ------------------------------------------------------------------ connection
    def _request(
        self, method: str, path: str, *, params: dict[str, Any] | None = None, body: Any = None,
        timeout: float | None = None,
    ) -> transport.Response:
        """Send one request of the API; returns once the answer's head has arrived."""
        payload = wire.encode(body) if body is not None else None
        socket_path = str(self.socket_path)
        return transport.request(socket_path, method, f"/v1{path}", params=params, body=payload, timeout=timeout)

    def _exchange(self, method: str, path: str, **options: Any) -> tuple[int, bytes]:
        """One request and its whole answer."""
        with self._request(method, path, **options) as response:
            return response.status, response.read()

    def fetch_health(self) -> Health | None:
        try:
            status, data = self._exchange("GET", "/health", timeout=5)
            health = wire.decode(data, Health) if status == OK.http else None
        except (ConnectionLost, msgspec.DecodeError):
            return None
        self.health = health
        return health

    def ensure_server(self) -> None:
        # Before anything is sent: the folder and the server's uid (kernel credentials).
        check_server(self.socket_path, self.personal)
        health = self.fetch_health()
        if health is not None:
            if health.build == build_id():
                return
            if not self.personal:
                import logging  # only here: a submit's start does without it

                logging.getLogger(__name__).warning(
                    "the agenttui server at %s runs version %s (build %s), this client %s (build %s)",
                    self.socket_path, health.version, health.build, __version__, build_id(),
                )
                return
            # Our own personal server runs older code (agenttui was upgraded): replace it. Its
            # running tests are adopted by the new one.
            self._stop_personal_server()
        elif not self.personal:
            raise ServerUnavailable(
                f"the agenttui server at {self.socket_path} does not answer; ask the box's admin to start it "
                "(systemctl start agenttui), or unset AGENTTUI_SOCKET_PATH to use a personal server"
            )
        server, log_start = self._spawn_server()
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while time.monotonic() < deadline:
            time.sleep(0.1)
            if self.fetch_health() is not None:
                return
            if server.poll() == BAD_SETTING.exit:
                # It refused its settings (the client reads only the few it needs itself).
                raise SettingsError(_server_said(log_start) or f"the agenttui server refused its settings; see {server_log_file()}")
        raise ServerUnavailable(
            f"started a personal agenttui server but it did not answer on {self.socket_path} within "
            f"{SERVER_START_TIMEOUT_S:.0f} s; see {server_log_file()}"
        )

    def _stop_personal_server(self) -> None:
        """Ask our own personal server (its uid checked by check_server) to stop: a pid is never
        taken from a socket's answer, which another user's server could forge."""
        try:
            status, _ = self._exchange("POST", "/shutdown", timeout=5)
        except ConnectionLost:  # it went away while answering
            status = OK.http
        if status == NOT_FOUND.http:  # a server older than /v1/shutdown: its lock file, in our 0700 folder
            with contextlib.suppress(OSError, ValueError):
                os.kill(int(self._lock_path.read_text()), signal.SIGTERM)
        self._wait_until_stopped(SERVER_START_TIMEOUT_S)

    @property
    def _lock_path(self) -> Path:
        return self.socket_path.with_name(self.socket_path.name + ".lock")

    def _wait_until_stopped(self, timeout: float) -> bool:
        """Whether the server let go of its socket (and our own server of its lock, so that a
        new one may start at once) within `timeout`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.socket_path.exists() and (not self.personal or _lock_free(self._lock_path)):
                return True
            time.sleep(0.05)
        return False

    def _spawn_server(self) -> tuple[subprocess.Popen[bytes], int]:
        """Start `agenttui server` detached from this terminal: it outlives this client. Returns
        the process and where its output starts in the server log."""
        import subprocess  # only when a server is started: not on every command's path

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

    def _with_server(self, exchange: Callable[[], T]) -> T:
        """`exchange` with the server, tried on a new connection (starting the server again
        when needed) when the last one broke."""
        for attempt in range(3):
            try:
                return exchange()
            except ConnectionLost as exc:
                if attempt == 2:
                    raise ServerUnavailable(f"lost the agenttui server at {self.socket_path}: {exc}") from None
                self.ensure_server()
        raise AssertionError("unreachable")

    def call(
        self, method: str, path: str, kind: type[T] | Any = Any, *, body: Any = None,
        params: dict[str, Any] | None = None,
    ) -> T:
        """The server's answer decoded as `kind`; its error raised as the exception it names."""
        status, data = self._with_server(partial(self._exchange, method, path, params=params, body=body))
        if status >= 400:
            raise _error_from(data, status)
        return wire.decode(data, kind)

    def _open_stream(
        self, method: str, path: str, *, params: dict[str, Any] | None = None, body: Any = None
    ) -> FollowStream:
        """An answer that streams NDJSON; its error raised as the exception it names."""
        return _stream_of(self._request(method, path, params=params, body=body))

    def _submit_and_follow(self, body: SubmitBody) -> TestView:
        """Submit with an answer that goes on as the test's follow stream: its first line is the
        new test's view, the rest is left for follow_logs."""
        return self._followed_view(self._open_stream("POST", "/tests", params={"follow": "1"}, body=body))

    def _followed_view(self, stream: FollowStream) -> TestView:
        """The test's view, from the first line of a followed submit's answer."""
        try:
            first = stream.next_line()
            if first is None:
                raise ConnectionLost("the submit's answer ended before the test's view")
            view = wire.decode(first, TestView)
        except BaseException:
            stream.response.close()
            raise
        if stream.response.headers.get("content-type", "").startswith(NDJSON):
            self.submitted[view.id] = stream
        else:  # a server that predates followed submits answered with the view alone
            stream.response.close()
        return view

    def _receive_submit(self, sent: transport.Sent) -> TestView | None:
        """The test a submit sent ahead queued; None when nothing was queued and the submit
        must go again the usual way: the server went away, or it is our personal server
        running other code (replaced here first)."""
        try:
            response = sent.response()
        except ConnectionLost:
            return None
        if response.status == SERVER_OUTDATED.http:
            with response:
                data = response.read()
            try:
                outdated = wire.decode(data, ErrorAnswer).kind == SERVER_OUTDATED.kind
            except msgspec.DecodeError:
                outdated = False
            if not outdated:
                raise _error_from(data, response.status)
            self._stop_personal_server()  # started again by the usual way's ensure_server
            return None
        view = self._followed_view(_stream_of(response))
        health = response.headers.get(HEALTH_HEADER.lower())
        try:
            self.health = wire.decode(health, Health) if health else self.fetch_health()
        except msgspec.DecodeError:
            self.health = None
        return view

    # ------------------------------------------------------------------ the server's life
    def running_server(self) -> Health | None:
        """The server's health when one answers on the socket (checked first: check_server),
        None when none does; never starts one."""
        check_server(self.socket_path, self.personal)
        return self.fetch_health()

    def server_status(self) -> ServerStatus:
        """The running server's status (its own user and admins only); never starts one."""
        status, data = self._exchange("GET", "/server", timeout=10)
        if status >= 400:
            raise _error_from(data, status)
        return wire.decode(data, ServerStatus)

    def stop_server(self) -> None:
        """Ask the running server to stop, as SIGTERM does (its running tests are left for the
        next server to adopt), and wait until it is gone. Asked over the socket, where the
        server checks the caller's kernel credentials: no signal, no pid."""
        try:
            status, data = self._exchange("POST", "/shutdown", timeout=10)
        except ConnectionLost:  # it went away while answering
            status, data = OK.http, b""
        if status >= 400:
            raise _error_from(data, status)
        if not self._wait_until_stopped(SERVER_STOP_TIMEOUT_S):
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

    # ------------------------------------------------------------------ the API (requests as dicts)
    def check_backend(self) -> None:
        self.call("POST", "/check")

    def submit(self, request: dict[str, Any], *, parent_id: int | None = None, check_backend: bool = False,
               follow: bool = False) -> TestView:
        """The request is sent as it is: the server validates it. With `follow`, the answer goes
        on as the test's log: follow_logs() reads it without a request of its own."""
        body = SubmitBody(request=request, parent_id=parent_id, check_backend=check_backend)
        if follow:
            sent, self._sent = self._sent, None
            view = self._receive_submit(sent) if sent is not None else None
            if view is not None:
                return view
            if sent is not None:
                self.ensure_server()
            return self._with_server(partial(self._submit_and_follow, body))
        return self.call("POST", "/tests", TestView, body=body)

    def submit_many(self, common: dict[str, Any], tests: list[dict[str, Any]]) -> list[int]:
        body = SubmitManyBody(tests=tests, common=common)
        return self.call("POST", "/tests/many", SubmittedMany, body=body).ids

    def show(self, test_id: int) -> TestView:
        return self.call("GET", f"/tests/{test_id}", TestView)

    def queue(self) -> QueueView:
        return self.call("GET", "/queue", QueueView)

    def history(self, *, search: str | None = None, limit: int = 50, mine: bool = False) -> list[TestView]:
        params: dict[str, Any] = {"limit": limit, "mine": "1" if mine else "0"}
        if search:
            params["search"] = search
        return self.call("GET", "/history", list[TestView], params=params)

    def cancel(self, test_id: int) -> TestView:
        return self.call("POST", f"/tests/{test_id}/cancel", TestView)

    def retry(self, test_id: int, *, query: str | None = None, agent_code: str | None = None,
              budget: dict[str, float | int] | None = None) -> TestView:
        stored = self.request_fields(test_id)
        secrets = None
        if (stored.get("provider") or {}).get("secrets"):  # only then: pydantic and the credential providers
            from agenttui.core.domain import TestRequest
            from agenttui.engine.credentials import retry_secrets

            # Resolved here, in the retrying user's own process, as a submit's are.
            secrets = retry_secrets(TestRequest.model_validate(stored), duration_s=self.settings.aws_session_duration_s)
        body = RetryBody(query=query, agent_code=agent_code, secrets=secrets or None, budget=budget or None)
        return self.call("POST", f"/tests/{test_id}/retry", TestView, body=body)

    def trace(self, test_id: int, *, after_seq: int = 0) -> TraceView:
        return self.call("GET", f"/tests/{test_id}/trace", TraceView, params={"after": after_seq})

    def request_fields(self, test_id: int) -> dict[str, Any]:
        return self.call("GET", f"/tests/{test_id}/request")

    def log_page(self, test_id: int, *, after_seq: int, limit: int) -> list[LogEntry]:
        params = {"after": after_seq, "limit": limit}
        return self.call("GET", f"/tests/{test_id}/logs", list[LogEntry], params=params)

    def log_reader(self, test_id: int, *, after_seq: int = 0, follow: bool = False) -> LogReader:
        """The log after line `after_seq`, a batch at a time: up to its end so far, or with
        `follow` until the test ends."""
        return LogReader(self, test_id, after_seq, follow)

    def read_logs(self, test_id: int, *, after_seq: int = 0) -> Iterator[list[LogEntry]]:
        with self.log_reader(test_id, after_seq=after_seq) as reader:
            yield from reader

    def follow_logs(self, test_id: int, *, after_seq: int = 0) -> Iterator[list[LogEntry]]:
        with self.log_reader(test_id, after_seq=after_seq, follow=True) as reader:
            yield from reader

    def wait(self, test_id: int) -> TestView:
        """The test's final view: the one its follow stream ended with, else a follow from past
        its last line, which the server ends with the final view as soon as the test ends."""
        ended = self.ended.pop(test_id, None)
        if ended is not None:
            return ended
        for _ in self.follow_logs(test_id, after_seq=PAST_EVERY_LINE):
            pass  # no line comes from there
        ended = self.ended.pop(test_id, None)
        return ended if ended is not None else self.show(test_id)

    def clear_history(self, older_than_s: float) -> int:
        return self.call("POST", "/history/clear", Archived, body=ClearHistoryBody(older_than_s)).archived


class LogReader:
    """A test's log, a non-empty batch at a time (None at its end). A follow reconnects after a
    dropped link and resumes after the last line delivered. close() may come from another
    thread: it wakes a read blocked on the socket, and the reader then ends."""

    def __init__(self, client: BlockingClient, test_id: int, after_seq: int, follow: bool):
        self.client = client
        self.test_id = test_id
        self.position = after_seq
        self.follow = follow
        self._stream: FollowStream | None = None
        self._closed = threading.Event()

    def __enter__(self) -> LogReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[list[LogEntry]]:
        while (batch := self.next_batch()) is not None:
            yield batch

    def close(self) -> None:
        self._closed.set()
        stream = self._stream
        if stream is not None:
            stream.response.close()

    def next_batch(self) -> list[LogEntry] | None:
        failures = 0
        while not self._closed.is_set():
            try:
                if self._stream is None:
                    self._stream = self._open()
                batch = self._read_batch(self._stream)
            except (ConnectionLost, msgspec.DecodeError):
                self._drop_stream()
                if self._closed.is_set():
                    return None
                if not self.follow:
                    raise
                failures += 1
                if failures > RECONNECT_TRIES:
                    raise ServerUnavailable(f"lost the agenttui server at {self.client.socket_path}") from None
                time.sleep(RECONNECT_DELAY_S)
                with contextlib.suppress(ServerUnavailable):
                    self.client.ensure_server()
                continue
            if batch is None:
                self.close()
                return None
            self.position = batch[-1].seq
            return batch
        return None

    def _open(self) -> FollowStream:
        """The submit's own stream when it opened one (it starts from the first line), else a new one."""
        stream = self.client.submitted.pop(self.test_id, None) if self.follow else None
        if stream is not None and self.position:
            stream.response.close()
            stream = None
        if stream is None:
            params = {"after": self.position, "follow" if self.follow else "stream": "1"}
            stream = self.client._open_stream("GET", f"/tests/{self.test_id}/logs", params=params)
        return stream

    def _drop_stream(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.response.close()

    def _read_batch(self, stream: FollowStream) -> list[LogEntry] | None:
        """The stream's next non-empty batch; None at its FollowEnd (whose final view, if any, is
        kept for wait()); ConnectionLost when it breaks off before that."""
        while (raw := stream.next_line()) is not None:
            record = wire.decode(raw, FollowRecord)
            if isinstance(record, FollowEnd):
                if record.test is not None:
                    self.client.ended[self.test_id] = record.test
                return None
            if record:
                return record
        # The stream closed without its end record: the server went away mid-stream.
        raise ConnectionLost("stream closed early")


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


def _stream_of(response: transport.Response) -> FollowStream:
    """An answer that streams NDJSON; its error raised as the exception it names."""
    if response.status >= 400:
        with response:
            raise _error_from(response.read(), response.status)
    return FollowStream(response, response.lines(MAX_FOLLOW_LINE_BYTES))


def _error_from(data: bytes, status: int) -> Exception:
    """The exception an error answer stands for (agenttui.core.errors)."""
    try:
        answer = wire.decode(data, ErrorAnswer)
    except msgspec.DecodeError:
        return RuntimeError(f"server error {status}")
    return error_of(answer.kind, answer.error or f"server error {status}", answer.fields)
