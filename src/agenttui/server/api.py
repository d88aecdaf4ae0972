"""The server's HTTP API over its Unix socket (curl-able: `curl --unix-socket PATH http://x/v1/queue`).

The caller's identity comes from the kernel (SO_PEERCRED) on every request, never from the
request itself or the client's environment (R-27). Errors are JSON {"error", "kind"} with a
fitting status; nothing a client sends can take the server down.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import pwd
import socket
import struct
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec
from aiohttp import web
from pydantic import ValidationError

from agenttui import __version__, build_id
from agenttui.backends.base import Backend
from agenttui.core import wire
from agenttui.core.domain import InvalidRequest, TestRequest, parse_requests
from agenttui.core.errors import BAD_REQUEST, INTERNAL, OK, QUEUED, SERVER_OUTDATED, AccessDenied, BadRequest, Code, code_of
from agenttui.core.suite_wire import SuiteResumeBody, SuiteRunBody
from agenttui.core.wire_headers import BUILD_HEADER, HEALTH_HEADER
from agenttui.core.wire import (
    NDJSON, Archived, Caller, ClearHistoryBody, ErrorAnswer, FollowEnd, Health, PackageBody, RetryBody,
    ServerStatus, SubmitBody, SubmitManyBody, SubmittedMany, settings_digest,
)
from agenttui.engine.service import Service
from agenttui.engine.store import Owner
from agenttui.server.openapi import API_PREFIX, OPERATIONS, document

if TYPE_CHECKING:
    from agenttui.core.config import Settings

log = logging.getLogger(__name__)

BUILD_ID = build_id()
MAX_BODY_BYTES = 1024 * 1024  # a request holds at most ~115 KB of files; this leaves room
# A log read as one JSON answer holds at most this many lines (`?stream=1` streams a whole log).
LOG_ANSWER_MAX_LINES = 10_000
BODY_TIMEOUT_S = 10.0  # a body sent a byte at a time holds a connection no longer

T = TypeVar("T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def peer_owner(request: web.Request) -> Owner:
    """The calling process's user, as the kernel reports it for this connection."""
    sock: socket.socket | None = request.transport.get_extra_info("socket") if request.transport else None
    if sock is None or sock.family != socket.AF_UNIX:
        raise AccessDenied("the caller's identity is unknown (only Unix socket connections are served)")
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return Owner(uid, _user_name(uid))


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


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


# Constraints whose bare statement (a regular expression) says little, in words.
_HINTS = {"`$.out_dir`": "out_dir must be the absolute path of a folder, without NUL - at `$.out_dir`"}


async def _body(request: web.Request, kind: type[T]) -> T:
    """The call's body as `kind` (agenttui.core.wire); no body reads as an empty object."""
    try:
        data = await asyncio.wait_for(request.read(), BODY_TIMEOUT_S) if request.can_read_body else b""
    except asyncio.TimeoutError:
        raise BadRequest(f"the body did not arrive within {BODY_TIMEOUT_S:.0f} s") from None
    if wire.too_deep(data):
        raise BadRequest(f"the body nests deeper than {wire.MAX_JSON_DEPTH} levels of arrays and objects")
    try:
        return wire.decode(data or b"{}", kind)
    except msgspec.ValidationError as exc:
        message = next((hint for at, hint in _HINTS.items() if at in str(exc)), str(exc))
        raise BadRequest(f"the body does not fit the call: {message}") from None
    except msgspec.DecodeError as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from None


def _whole_number(raw: str, lowest: int) -> int | None:
    """`raw` as a number from `lowest` to wire.MAX_ID written in ASCII digits (int() would also
    read other scripts' digits: "٣" is not test 3), or None."""
    if not (raw.isascii() and raw.isdigit()) or len(raw) > len(str(wire.MAX_ID)):
        return None
    value = int(raw)
    return value if lowest <= value <= wire.MAX_ID else None


def _test_id(request: web.Request) -> int:
    raw = request.match_info["test_id"]
    value = _whole_number(raw, 1)
    if value is None:
        raise BadRequest(f"the test id in the path must be a whole number from 1 to {wire.MAX_ID}, got {raw[:40]!r}")
    return value


def _run_id(request: web.Request) -> int:
    raw = request.match_info["run_id"]
    value = _whole_number(raw, 1)
    if value is None:
        raise BadRequest(f"the suite run id in the path must be a whole number from 1 to {wire.MAX_ID}, got {raw[:40]!r}")
    return value


def _int_param(request: web.Request, name: str, default: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    value = _whole_number(raw, 0)
    if value is None:
        raise BadRequest(f"query parameter {name!r} must be a whole number from 0 to {wire.MAX_ID}, got {raw[:40]!r}")
    return value


def _text_param(request: web.Request, name: str) -> str | None:
    raw = request.query.get(name)
    if raw is not None and ("\0" in raw or len(raw) > 1000 or not _encodes(raw)):
        raise BadRequest(f"query parameter {name!r} must be at most 1000 characters of UTF-8 text, without NUL")
    return raw or None


def _encodes(text: str) -> bool:
    """Whether `text` is UTF-8 (a lone surrogate is not: no store can take it)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _flag(request: web.Request, name: str) -> bool:
    return request.query.get(name) in ("1", "true")


def settings_digests(settings: Settings) -> dict[str, str]:
    """Each setting's digest (agenttui.core.wire.settings_digest), as its JSON value."""
    values = msgspec.to_builtins(settings.model_dump(), enc_hook=str)
    return {name: settings_digest(value) for name, value in values.items()}


def store_address(url: str) -> str:
    """The store's URL without its password."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


class Api:
    def __init__(self, service: Service, backend: Backend, settings: Settings | None = None):
        self.service = service
        self.backend = backend
        self.settings = settings  # the server's own, for /v1/server and the health's digests
        self.started_at = time.time()
        self._digests = settings_digests(settings) if settings is not None else None
        self.active_streams = 0  # open follow streams keep a personal server from idling out
        self.last_request = asyncio.get_event_loop().time()
        self.stop: Callable[[], None] | None = None  # set by the server: what POST /v1/shutdown calls

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[self._touch, errors_as_json])
        # The routes are the OpenAPI document's operations: what is served is what is described.
        app.add_routes([web.route(op.method, API_PREFIX + op.path, getattr(self, op.handler)) for op in OPERATIONS])
        return app

    @web.middleware
    async def _touch(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.last_request = asyncio.get_event_loop().time()
        return await handler(request)

    async def openapi(self, request: web.Request) -> web.Response:
        return answer(document())

    async def health(self, request: web.Request) -> web.Response:
        return answer(self._health(peer_owner(request)))

    def _health(self, caller: Owner) -> Health:
        you = Caller(uid=caller.uid, name=caller.name)
        # Its own user's client compares them with its settings; nobody else learns even digests.
        digests = self._digests if caller.uid == os.getuid() else None
        return Health(ok=True, you=you, version=__version__, build=BUILD_ID, settings=digests)

    async def check(self, request: web.Request) -> web.Response:
        await self.backend.check()
        return answer({"ok": True})

    async def submit(self, request: web.Request) -> web.StreamResponse:
        caller = peer_owner(request)
        wanted = request.headers.get(BUILD_HEADER)
        if wanted is not None and wanted != BUILD_ID:  # before the body: nothing is queued
            return error_response(SERVER_OUTDATED, f"this server runs build {BUILD_ID}, not {wanted}")
        body = await _body(request, SubmitBody)
        test_request = TestRequest.parse(**body.request)
        if body.check_backend:  # after validation: a bad request says so whatever the engine
            await self.backend.check()
        view = await self.service.submit(caller, test_request, parent_id=body.parent_id)
        # The submitter learns the server's health from the answer, without a request of its own.
        headers = {HEALTH_HEADER: json.dumps(wire.to_builtins(self._health(caller)))}  # ASCII: a header's value
        if not _flag(request, "follow"):
            response = answer(view, QUEUED)
            response.headers.update(headers)
            return response
        # The answer goes on as the new test's follow stream: its submitter follows without a call.
        return await self._follow(request, caller, view.id, 0, code=QUEUED, first=wire.encode(view) + b"\n",
                                  headers=headers)

    async def submit_many(self, request: web.Request) -> web.Response:
        body = await _body(request, SubmitManyBody)
        ids = await self.service.submit_many(peer_owner(request), parse_requests(body.common, body.tests))
        return answer(SubmittedMany(ids=ids), QUEUED)

    # ------------------------------------------------------------------ suite runs (docs/suites.md)
    async def create_suite_run(self, request: web.Request) -> web.Response:
        body = await _body(request, SuiteRunBody)
        view = await self.service.create_suite_run(peer_owner(request), body, parse_requests(body.common, body.tests))
        return answer(view, QUEUED)

    async def suite_runs(self, request: web.Request) -> web.Response:
        runs = await self.service.suite_runs(peer_owner(request), name=_text_param(request, "name"),
                                             baseline=_flag(request, "baseline"),
                                             limit=min(_int_param(request, "limit", 50) or 50, 1000))
        return answer(runs)

    async def suite_run(self, request: web.Request) -> web.Response:
        return answer(await self.service.suite_run(peer_owner(request), _run_id(request)))

    async def resume_suite_run(self, request: web.Request) -> web.Response:
        body = await _body(request, SuiteResumeBody)
        requests = parse_requests(body.common, body.tests) if body.tests else []
        return answer(await self.service.resume_suite_run(peer_owner(request), _run_id(request), body, requests))

    async def bless_suite_run(self, request: web.Request) -> web.Response:
        return answer(await self.service.bless_suite_run(peer_owner(request), _run_id(request)))

    async def show(self, request: web.Request) -> web.Response:
        view = await self.service.show(peer_owner(request), _test_id(request))
        return answer(view)

    async def trace(self, request: web.Request) -> web.Response:
        view = await self.service.trace(peer_owner(request), _test_id(request), after_seq=_int_param(request, "after", 0))
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
            caller, _test_id(request), query=body.query, agent_code=body.agent_code, secrets=body.secrets,
            budget=body.budget,
        )
        return answer(view, QUEUED)

    async def logs(self, request: web.Request) -> web.StreamResponse:
        caller = peer_owner(request)
        test_id = _test_id(request)
        after = _int_param(request, "after", 0)
        streamed = _flag(request, "stream")  # the log so far, streamed like a follow: no answer holds a whole log
        if not (streamed or _flag(request, "follow")):
            limit = min(_int_param(request, "limit", 0) or LOG_ANSWER_MAX_LINES, LOG_ANSWER_MAX_LINES)
            records = await self.service.logs(caller, test_id, after_seq=after, limit=limit)
            return answer(records)
        await self.service.logs(caller, test_id, limit=0)  # access check before streaming starts
        return await self._follow(request, caller, test_id, after, to_now=streamed)

    async def _follow(
        self, request: web.Request, caller: Owner, test_id: int, after: int, *, code: Code = OK, first: bytes = b"",
        to_now: bool = False, headers: dict[str, str] | None = None,
    ) -> web.StreamResponse:
        """The test's log after line `after` as NDJSON batches until the test ends, then its
        final view (FollowEnd); `first` goes before them. `to_now`: until the log's end so far,
        then a FollowEnd without a view."""
        response = web.StreamResponse(status=code.status, headers={"Content-Type": NDJSON, **(headers or {})})
        await response.prepare(request)
        self.active_streams += 1
        try:
            if first:
                await response.write(first)
            # As stored: each chunk is one NDJSON line already.
            reading = self.service.read_log_json if to_now else self.service.follow_log_json
            async for data in reading(caller, test_id, after_seq=after):
                await response.write(data + b"\n")
            # The final view ends the stream: the follower needs no call of its own to learn it.
            final = None if to_now else await self.service.show(caller, test_id)
            await response.write(wire.encode(FollowEnd(end=True, test=final)) + b"\n")
        except (ConnectionResetError, asyncio.CancelledError):
            pass  # the client went away; it resumes from its own position
        finally:
            self.active_streams -= 1
        return response

    async def package(self, request: web.Request) -> web.Response:
        caller = peer_owner(request)
        out_dir = (await _body(request, PackageBody)).out_dir
        # The zip goes back in the answer (PackageAnswer): the server writes no file for it.
        return answer(await self.service.package(caller, _test_id(request), out_dir=out_dir))

    async def queue(self, request: web.Request) -> web.Response:
        view = await self.service.queue(peer_owner(request))
        return answer(view)

    async def history(self, request: web.Request) -> web.Response:
        caller = peer_owner(request)
        views = await self.service.history(
            caller,
            search=_text_param(request, "search"),
            limit=min(_int_param(request, "limit", 50), 1000),
            mine=_flag(request, "mine"),
        )
        return answer(views)

    async def clear_history(self, request: web.Request) -> web.Response:
        caller = peer_owner(request)
        older = (await _body(request, ClearHistoryBody)).older_than_s  # not negative (wire.ClearHistoryBody)
        return answer(Archived(archived=await self.service.clear_history(caller, older)))

    def _owner_or_admin(self, request: web.Request, what: str) -> Owner:
        """The caller, when it is the server's own user, root or an admin; else AccessDenied."""
        caller = peer_owner(request)
        if caller.uid != os.getuid() and not self.service.is_admin(caller):
            admins = self.settings.admin_group if self.settings is not None else None
            who = f"{_user_name(os.getuid())}, root" + (f" or a member of group {admins}" if admins else "")
            raise AccessDenied(f"only the server's own user ({who}) may {what}; you are {caller.name}")
        return caller

    async def server_status(self, request: web.Request) -> web.Response:
        self._owner_or_admin(request, "see the server's status")
        settings = self.settings
        if settings is None:
            raise BadRequest("this server was started without its settings")
        queue = await self.service.store.queue_status(settings.max_concurrent)
        return answer(ServerStatus(
            pid=os.getpid(), version=__version__, build=BUILD_ID, started_at=self.started_at,
            uptime_s=round(time.time() - self.started_at, 1), socket_path=str(settings.resolved_socket_path),
            owner=Caller(uid=os.getuid(), name=_user_name(os.getuid())), personal=settings.socket_path is None,
            backend=settings.backend, store=store_address(settings.resolved_db_url),
            tests_running=queue.running, tests_queued=queue.queued, cap=queue.cap,
        ))

    async def shutdown(self, request: web.Request) -> web.Response:
        """Stop the server, as SIGTERM does: `agenttui server stop` and a client replacing its
        outdated personal server ask here instead of signalling a pid. Only the server's own
        user, root and admins may."""
        caller = self._owner_or_admin(request, "stop it")
        log.info("stopping: asked by %s (uid %s)", caller.name, caller.uid)
        if self.stop is not None:
            asyncio.get_running_loop().call_soon(self.stop)
        return answer({"ok": True})


__all__ = ["Api", "peer_owner", "ValidationError"]
