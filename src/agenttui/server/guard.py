"""What keeps one user from starving a shared server: a cap on each user's open connections
(told by the kernel, SO_PEERCRED), the descriptor limit raised to what the service may have,
and error logging that says a repeated error once, then how often it came.

Half-sent requests and idle connections are closed by aiohttp's keep-alive timeout, which runs
from a connection's start until its request is whole (agenttui.server.main sets it).
"""

from __future__ import annotations

import asyncio
import logging
import resource
import socket
import struct
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from aiohttp import web

from agenttui.core import wire
from agenttui.core.errors import TOO_MANY_CONNECTIONS
from agenttui.core.wire import ErrorAnswer

log = logging.getLogger(__name__)

MAX_CONNECTIONS_PER_USER = 256  # a TUI and a few follows hold a handful
REPEAT_WINDOW_S = 60.0


def raise_descriptor_limit() -> int:
    """The soft limit of open files raised to the hard one (services start with 1024)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open-files limit from %s to %s: %s", soft, target, exc)
    return soft


def _refusal(limit: int) -> bytes:
    body = wire.encode(ErrorAnswer(
        error=f"you already hold {limit} connections to this server; close some and try again",
        kind=TOO_MANY_CONNECTIONS.kind,
    ))
    head = (f"HTTP/1.1 {TOO_MANY_CONNECTIONS.http} Too Many Requests\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
    return head.encode() + body


def _peer_uid(transport: asyncio.BaseTransport) -> int | None:
    sock = transport.get_extra_info("socket")
    if sock is None or sock.family != socket.AF_UNIX:
        return None
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)[1]


class ConnectionGuard:
    """A protocol factory in front of aiohttp's: each user holds at most `limit` connections;
    one more is answered 429 (`too_many_connections`) and closed before anything is read."""

    def __init__(self, factory: Callable[[], Any], limit: int = MAX_CONNECTIONS_PER_USER):
        self.factory = factory
        self.limit = limit
        self.open: Counter[int | None] = Counter()

    def __call__(self) -> asyncio.Protocol:
        return _Guarded(self)

    def admit(self, uid: int | None) -> bool:
        if self.open[uid] >= self.limit:
            log.warning("a user (uid %s) holds %s connections: refusing more", uid, self.limit)
            return False
        self.open[uid] += 1
        return True

    def release(self, uid: int | None) -> None:
        self.open[uid] -= 1
        if self.open[uid] <= 0:
            del self.open[uid]


class _Guarded(asyncio.Protocol):
    """One connection: counted against its user, then served by aiohttp's protocol."""

    def __init__(self, guard: ConnectionGuard):
        self.guard = guard
        self.inner: Any = None
        self.uid: int | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.uid = _peer_uid(transport)
        if not self.guard.admit(self.uid):
            assert isinstance(transport, asyncio.WriteTransport)
            transport.write(_refusal(self.guard.limit))
            transport.close()
            return
        self.inner = self.guard.factory()
        self.inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.inner is not None:
            self.guard.release(self.uid)
            self.inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.inner is not None:
            self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received() if self.inner is not None else None

    def pause_writing(self) -> None:
        if self.inner is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.inner is not None:
            self.inner.resume_writing()


class GuardedSockSite(web.SockSite):
    """aiohttp's site on a ready socket, each connection passing a ConnectionGuard first."""

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registers the site with its runner
        server = self._runner.server
        assert server is not None
        self._server = await asyncio.get_running_loop().create_server(
            ConnectionGuard(server), sock=self._sock, backlog=self._backlog
        )


class RepeatedErrors(logging.Filter):
    """Warnings and errors alike in message and exception are logged once a window; the next
    one after it says how many were left out (a flood of one traceback fills no disk)."""

    def __init__(self, window_s: float = REPEAT_WINDOW_S, keys: int = 1000):
        super().__init__()
        self.window_s = window_s
        self.keys = keys
        self.seen: dict[tuple[Any, ...], tuple[float, int]] = {}  # key: (logged at, left out since)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        # One decision a record, whichever of the handlers sharing this filter asks first.
        decided = record.__dict__.get("_repeat_decision")
        if decided is None:
            decided = record.__dict__["_repeat_decision"] = self._decide(record)
        return decided

    def _decide(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        key = (record.name, record.msg, type(exc).__name__, str(exc)[:200] if exc else "")
        now = time.monotonic()
        logged_at, left_out = self.seen.get(key, (None, 0))
        if logged_at is not None and now - logged_at < self.window_s:
            self.seen[key] = (logged_at, left_out + 1)
            return False
        if len(self.seen) >= self.keys:
            self.seen.clear()
        self.seen[key] = (now, 0)
        if left_out:
            record.msg = f"{record.msg} [and {left_out} more like it in the last {self.window_s:.0f} s, not logged]"
        return True
