"""The client of an agenttui server, over its Unix socket.

In personal mode (no socket_path set) it starts the server detached when none answers, the
way tmux starts its server. A dropped connection is retried, and a log stream resumes from
the last line it delivered, so a reconnect neither repeats nor skips lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

# Only light modules here (no pydantic, no store): the headless commands import this.
from agenttui import __version__, build_id
from agenttui.client import unix_http
from agenttui.client.errors import AccessDenied, NotActionable, NotFound
from agenttui.client.models import LogEntry, QueueView, TestView
from agenttui.client.unix_http import ConnectionLost
from agenttui.core.errors import InfraError, SettingsError
from agenttui.core.lifecycle import InvalidRequest
from agenttui.core.paths import server_log_file

if TYPE_CHECKING:
    from agenttui.client.settings import ClientSettings
    from agenttui.core.config import Settings
    from agenttui.core.domain import TestRequest
    from agenttui.packaging import PackageResult

log = logging.getLogger(__name__)

SERVER_START_TIMEOUT_S = 20.0
RECONNECT_TRIES = 60  # about half a minute of retries before a follower gives up
RECONNECT_DELAY_S = 0.5
# The server sends ~256 KB lines; one record alone may be longer (a huge build-log line), so
# allow far more before giving up on the stream.
MAX_FOLLOW_LINE_BYTES = 256 * 1024 * 1024
EXIT_INVALID = 2  # `agenttui server`'s exit code for bad settings (agenttui.cli)


class ServerUnavailable(InfraError):
    pass


class SocketClient:
    def __init__(self, settings: Settings | ClientSettings):
        self.settings = settings
        self.socket_path = settings.resolved_socket_path
        self.personal = settings.socket_path is None

    async def __aenter__(self) -> SocketClient:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def open(self) -> None:
        await self._ensure_server()

    async def close(self) -> None:
        pass  # one connection per request: nothing stays open

    # ------------------------------------------------------------------ connection
    async def _health(self) -> dict[str, Any] | None:
        try:
            async with unix_http.request(str(self.socket_path), "GET", "/v1/health", timeout=5) as response:
                return await response.json() if response.status == 200 else None
        except (ConnectionLost, ValueError):
            return None

    async def _ensure_server(self) -> None:
        health = await self._health()
        if health is not None:
            if health.get("build") == build_id():
                return
            if not self.personal:
                log.warning(
                    "the agenttui server at %s runs version %s (build %s), this client %s (build %s)",
                    self.socket_path, health.get("version"), health.get("build"), __version__, build_id(),
                )
                return
            # Our own personal server runs older code (agenttui was upgraded): replace it. Its
            # running tests are adopted by the new one.
            await self._stop_personal_server(health.get("pid"))
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
            if server.poll() == EXIT_INVALID:
                # It refused its settings (the client reads only the few it needs itself).
                raise SettingsError(_server_said(log_start) or f"the agenttui server refused its settings; see {server_log_file()}")
        raise ServerUnavailable(
            f"started a personal agenttui server but it did not answer on {self.socket_path} within "
            f"{SERVER_START_TIMEOUT_S:.0f} s; see {server_log_file()}"
        )

    async def _stop_personal_server(self, pid: Any) -> None:
        if not isinstance(pid, int):  # a server too old to say: its lock file knows
            with contextlib.suppress(OSError, ValueError):
                pid = int(self.socket_path.with_name(self.socket_path.name + ".lock").read_text())
        if not isinstance(pid, int):
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while time.monotonic() < deadline and self.socket_path.exists():
            await asyncio.sleep(0.05)

    def _spawn_server(self) -> tuple[subprocess.Popen[bytes], int]:
        """Start `agenttui server` detached from this terminal: it outlives this client. Returns
        the process and where its output starts in the server log."""
        log = server_log_file()
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as out:
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

    async def _call(self, method: str, path: str, *, body: Any = None, params: dict[str, Any] | None = None) -> Any:
        for attempt in range(3):
            try:
                async with unix_http.request(
                    str(self.socket_path), method, f"/v1{path}", params=params, body=body
                ) as response:
                    payload = await response.json()
            except ConnectionLost as exc:
                if attempt == 2:
                    raise ServerUnavailable(f"lost the agenttui server at {self.socket_path}: {exc}") from None
                await self._ensure_server()
                continue
            if response.status >= 400:
                raise _error_from(payload, response.status)
            return payload

    # ------------------------------------------------------------------ the Client API
    async def check_backend(self) -> None:
        await self._call("POST", "/check")

    async def submit(
        self, request: TestRequest | dict[str, Any], *, parent_id: int | None = None, check_backend: bool = False
    ) -> TestView:
        """A dict is sent as it is: the server validates it, and no credentials are resolved
        here (the headless CLI resolves them itself when the provider needs any)."""
        if not isinstance(request, dict):
            from agenttui.engine.credentials import resolve_for_submit

            # Credentials are resolved here, in the user's own process, and sent over the socket;
            # the server seals them and stores names only (docs/providers.md).
            request = await resolve_for_submit(request, self.settings.aws_session_duration_s)
            request = request.model_dump(mode="json")
        body = {"request": request, "parent_id": parent_id, **({"check_backend": True} if check_backend else {})}
        data = await self._call("POST", "/tests", body=body)
        return TestView.from_json(data)

    async def show(self, test_id: int) -> TestView:
        return TestView.from_json(await self._call("GET", f"/tests/{test_id}"))

    async def queue(self) -> QueueView:
        return QueueView.from_json(await self._call("GET", "/queue"))

    async def history(self, *, search: str | None = None, limit: int = 50, mine: bool = False) -> list[TestView]:
        params: dict[str, Any] = {"limit": limit, "mine": "1" if mine else "0"}
        if search:
            params["search"] = search
        return [TestView.from_json(v) for v in await self._call("GET", "/history", params=params)]

    async def cancel(self, test_id: int) -> TestView:
        return TestView.from_json(await self._call("POST", f"/tests/{test_id}/cancel"))

    async def retry(self, test_id: int, *, query: str | None = None, agent_code: str | None = None) -> TestView:
        from agenttui.engine.credentials import resolve_for_retry

        secrets = await resolve_for_retry(await self.request(test_id), self.settings.aws_session_duration_s)
        body = {"query": query, "agent_code": agent_code, **({"secrets": secrets} if secrets else {})}
        data = await self._call("POST", f"/tests/{test_id}/retry", body=body)
        return TestView.from_json(data)

    async def request(self, test_id: int) -> TestRequest:
        from agenttui.core.domain import TestRequest

        return TestRequest.model_validate(await self._call("GET", f"/tests/{test_id}/request"))

    async def logs(self, test_id: int, *, after_seq: int = 0, limit: int | None = None) -> list[LogEntry]:
        params = {"after": after_seq, **({"limit": limit} if limit else {})}
        return [LogEntry.from_json(r) for r in await self._call("GET", f"/tests/{test_id}/logs", params=params)]

    async def follow_logs(self, test_id: int, *, after_seq: int = 0) -> AsyncIterator[list[LogEntry]]:
        """Stream new lines until the test ends; reconnect and resume after a dropped link."""
        position = after_seq
        failures = 0
        while True:
            try:
                async with unix_http.request(
                    str(self.socket_path), "GET", f"/v1/tests/{test_id}/logs",
                    params={"after": position, "follow": "1"},
                ) as response:
                    if response.status >= 400:
                        raise _error_from(await response.json(), response.status)
                    async for raw in response.lines(MAX_FOLLOW_LINE_BYTES):
                        item = json.loads(raw)
                        if isinstance(item, dict) and item.get("end"):
                            return
                        batch = [LogEntry.from_json(r) for r in item]
                        if batch:
                            position = batch[-1].seq
                            failures = 0
                            yield batch
                # The stream closed without its end marker: the server went away mid-stream.
                raise ConnectionLost("stream closed early")
            except (ConnectionLost, json.JSONDecodeError):
                failures += 1
                if failures > RECONNECT_TRIES:
                    raise ServerUnavailable(f"lost the agenttui server at {self.socket_path}") from None
                await asyncio.sleep(RECONNECT_DELAY_S)
                try:
                    await self._ensure_server()
                except ServerUnavailable:
                    continue

    async def wait(self, test_id: int) -> TestView:
        while True:
            view = await self.show(test_id)
            if view.status.is_terminal:
                return view
            await asyncio.sleep(self.settings.poll_s)

    async def clear_history(self, older_than_s: float) -> int:
        return int((await self._call("POST", "/history/clear", body={"older_than_s": older_than_s}))["archived"])

    async def package(self, test_id: int, *, out_dir: Path | None = None) -> PackageResult:
        from agenttui.packaging import PackageResult

        data = await self._call("POST", f"/tests/{test_id}/package", body={"out_dir": str(out_dir) if out_dir else None})
        return PackageResult(**{**data, "path": Path(data["path"])})


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


def _error_from(payload: Any, status: int) -> Exception:
    message = payload.get("error", f"server error {status}") if isinstance(payload, dict) else f"server error {status}"
    kind = payload.get("kind") if isinstance(payload, dict) else None
    if kind == "not_found":
        return NotFound(message)
    if kind == "access_denied":
        return AccessDenied(message)
    if kind == "not_actionable":
        return NotActionable(message)
    if kind == "invalid_request":
        return InvalidRequest(payload.get("fields") or {"request": message})
    if kind == "infra":
        return InfraError(message)
    return RuntimeError(message)
