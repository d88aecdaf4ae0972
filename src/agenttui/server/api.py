"""The server's HTTP API over its Unix socket (curl-able: `curl --unix-socket PATH http://x/v1/queue`).

The caller's identity comes from the kernel (SO_PEERCRED) on every request, never from the
request itself or the client's environment (R-27). Errors are JSON {"error", "kind"} with a
fitting status; nothing a client sends can take the server down.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pwd
import socket
import struct
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import msgspec
from aiohttp import web
from pydantic import ValidationError

from agenttui import __version__, build_id
from agenttui.backends.base import Backend
from agenttui.core import wire
from agenttui.core.domain import InvalidRequest, TestRequest
from agenttui.core.errors import BAD_REQUEST, INTERNAL, OK, QUEUED, AccessDenied, BadRequest, Code, code_of
from agenttui.core.wire import (
    NDJSON, Archived, Caller, ClearHistoryBody, ErrorAnswer, FollowEnd, Health, LogEntry, PackageBody, RetryBody,
    SubmitBody,
)
from agenttui.engine.service import Service
from agenttui.engine.store import Owner

log = logging.getLogger(__name__)

BUILD_ID = build_id()
MAX_BODY_BYTES = 1024 * 1024  # a request holds at most ~115 KB of files; this leaves room
# A followed log is sent as NDJSON lines of at most about this many bytes (a line holds at
# least one record), so neither side ever holds one huge line of a flooding agent's batch.
FOLLOW_LINE_BYTES = 256 * 1024
API_PREFIX = "/v1"

T = TypeVar("T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def peer_owner(request: web.Request) -> Owner:
    """The calling process's user, as the kernel reports it for this connection."""
    sock: socket.socket | None = request.transport.get_extra_info("socket") if request.transport else None
    if sock is None or sock.family != socket.AF_UNIX:
        raise AccessDenied("the caller's identity is unknown (only Unix socket connections are served)")
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = str(uid)
    return Owner(uid, name)


def answer(value: Any, code: Code = OK) -> web.Response:
    """A JSON answer of the wire schema (agenttui.core.wire)."""
    return web.Response(body=wire.encode(value), status=code.status, content_type="application/json")


def error_response(code: Code, message: str, *, status: int | None = None, **extra: Any) -> web.Response:
    """An error's answer; `status` overrides the code's (aiohttp's own errors keep theirs)."""
    response = answer(ErrorAnswer(error=message, kind=code.kind, **extra), code)
    if status is not None:
        response.set_status(status)
    return response


@web.middleware
async def errors_as_json(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_response(BAD_REQUEST, exc.reason or "bad request", status=exc.status)
    except Exception as exc:
        code = code_of(exc)
        if code is not None and code.http is not None:
            extra = {"fields": exc.errors} if isinstance(exc, InvalidRequest) else {}
            return error_response(code, str(exc), **extra)
        log.exception("unexpected error serving %s %s", request.method, request.path)
        return error_response(INTERNAL, f"internal error: {type(exc).__name__}: {exc}")


async def _body(request: web.Request, kind: type[T]) -> T:
    """The call's body as `kind` (agenttui.core.wire); no body reads as an empty object."""
    data = await request.read() if request.can_read_body else b""
    try:
        return wire.decode(data or b"{}", kind)
    except msgspec.ValidationError as exc:
        raise BadRequest(f"the body does not fit the call: {exc}") from None
    except msgspec.DecodeError as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from None


def _test_id(request: web.Request) -> int:
    raw = request.match_info["test_id"]
    if not raw.isdigit() or len(raw) > 18:
        raise BadRequest(f"test id must be a number, got {raw[:40]!r}")
    return int(raw)


def _int_param(request: web.Request, name: str, default: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"query parameter {name!r} must be an integer") from None
    if value < 0:
        raise BadRequest(f"query parameter {name!r} must not be negative")
    return value


def _flag(request: web.Request, name: str) -> bool:
    return request.query.get(name) in ("1", "true")


def _ndjson_chunks(records: list[Any], budget: int = FOLLOW_LINE_BYTES) -> Iterator[bytes]:
    """Records as NDJSON lines (arrays of LogEntry) of about `budget` bytes each, one at a time."""
    parts: list[bytes] = []
    size = 0
    for record in records:
        part = wire.encode(LogEntry.from_record(record))
        if parts and size + len(part) > budget:
            yield b"[" + b", ".join(parts) + b"]\n"
            parts, size = [], 0
        parts.append(part)
        size += len(part) + 2
    if parts:
        yield b"[" + b", ".join(parts) + b"]\n"


class Api:
    def __init__(self, service: Service, backend: Backend):
        self.service = service
        self.backend = backend
        self.active_streams = 0  # open follow streams keep a personal server from idling out
        self.last_request = asyncio.get_event_loop().time()

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[self._touch, errors_as_json])
        p = API_PREFIX
        app.add_routes(
            [
                web.get(f"{p}/health", self.health),
                web.post(f"{p}/check", self.check),
                web.post(f"{p}/tests", self.submit),
                web.get(f"{p}/tests/{{test_id}}", self.show),
                web.get(f"{p}/tests/{{test_id}}/request", self.request_of),
                web.post(f"{p}/tests/{{test_id}}/cancel", self.cancel),
                web.post(f"{p}/tests/{{test_id}}/retry", self.retry),
                web.get(f"{p}/tests/{{test_id}}/logs", self.logs),
                web.post(f"{p}/tests/{{test_id}}/package", self.package),
                web.get(f"{p}/queue", self.queue),
                web.get(f"{p}/history", self.history),
                web.post(f"{p}/history/clear", self.clear_history),
            ]
        )
        return app

    @web.middleware
    async def _touch(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.last_request = asyncio.get_event_loop().time()
        return await handler(request)

    async def health(self, request: web.Request) -> web.Response:
        caller = peer_owner(request)
        you = Caller(uid=caller.uid, name=caller.name)
        return answer(Health(ok=True, you=you, version=__version__, build=BUILD_ID, pid=os.getpid()))

    async def check(self, request: web.Request) -> web.Response:
        await self.backend.check()
        return answer({"ok": True})

    async def submit(self, request: web.Request) -> web.StreamResponse:
        caller = peer_owner(request)
        body = await _body(request, SubmitBody)
        test_request = TestRequest.parse(**body.request)
        if body.check_backend:  # after validation: a bad request says so whatever the engine
            await self.backend.check()
        view = await self.service.submit(caller, test_request, parent_id=body.parent_id)
        if not _flag(request, "follow"):
            return answer(view, QUEUED)
        # The answer goes on as the new test's follow stream: its submitter follows without a call.
        return await self._follow(request, caller, view.id, 0, code=QUEUED, first=wire.encode(view) + b"\n")

    async def show(self, request: web.Request) -> web.Response:
        peer_owner(request)
        view = await self.service.show(_test_id(request))
        return answer(view)

    async def request_of(self, request: web.Request) -> web.Response:
        test_request = await self.service.request(peer_owner(request), _test_id(request))
        return answer(test_request.model_dump(mode="json"))

    async def cancel(self, request: web.Request) -> web.Response:
        view = await self.service.cancel(peer_owner(request), _test_id(request))
        return answer(view)

    async def retry(self, request: web.Request) -> web.Response:
        caller = peer_owner(request)
        body = await _body(request, RetryBody)
        view = await self.service.retry(
            caller, _test_id(request), query=body.query, agent_code=body.agent_code, secrets=body.secrets
        )
        return answer(view, QUEUED)

    async def logs(self, request: web.Request) -> web.StreamResponse:
        caller = peer_owner(request)
        test_id = _test_id(request)
        after = _int_param(request, "after", 0)
        if not _flag(request, "follow"):
            limit = _int_param(request, "limit", 0) or None
            records = await self.service.logs(caller, test_id, after_seq=after, limit=limit)
            return answer([LogEntry.from_record(r) for r in records])
        await self.service.logs(caller, test_id, limit=0)  # access check before streaming starts
        return await self._follow(request, caller, test_id, after)

    async def _follow(
        self, request: web.Request, caller: Owner, test_id: int, after: int, *, code: Code = OK, first: bytes = b""
    ) -> web.StreamResponse:
        """The test's log after line `after` as NDJSON batches until the test ends, then its
        final view (FollowEnd); `first` goes before them."""
        response = web.StreamResponse(status=code.status, headers={"Content-Type": NDJSON})
        await response.prepare(request)
        self.active_streams += 1
        try:
            if first:
                await response.write(first)
            async for batch in self.service.follow_logs(caller, test_id, after_seq=after):
                for line in _ndjson_chunks(batch):
                    await response.write(line)
            # The final view ends the stream: the follower needs no call of its own to learn it.
            final = await self.service.show(test_id)
            await response.write(wire.encode(FollowEnd(end=True, test=final)) + b"\n")
        except (ConnectionResetError, asyncio.CancelledError):
            pass  # the client went away; it resumes from its own position
        finally:
            self.active_streams -= 1
        return response

    async def package(self, request: web.Request) -> web.Response:
        caller = peer_owner(request)
        out_dir = (await _body(request, PackageBody)).out_dir
        result = await self.service.package(caller, _test_id(request), out_dir=Path(out_dir) if out_dir else None)
        return answer(result)

    async def queue(self, request: web.Request) -> web.Response:
        peer_owner(request)
        view = await self.service.queue()
        return answer(view)

    async def history(self, request: web.Request) -> web.Response:
        caller = peer_owner(request)
        views = await self.service.history(
            caller,
            search=request.query.get("search") or None,
            limit=min(_int_param(request, "limit", 50), 1000),
            mine=_flag(request, "mine"),
        )
        return answer(views)

    async def clear_history(self, request: web.Request) -> web.Response:
        caller = peer_owner(request)
        older = (await _body(request, ClearHistoryBody)).older_than_s
        if older < 0:
            raise BadRequest("'older_than_s' must be a non-negative number of seconds")
        return answer(Archived(archived=await self.service.clear_history(caller, older)))


__all__ = ["Api", "peer_owner", "ValidationError"]
