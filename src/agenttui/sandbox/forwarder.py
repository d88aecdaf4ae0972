"""The host side of a sandbox's tunnels (agenttui.sandbox.egress): one Unix socket per endpoint, each
connection forwarded to that endpoint's configured address and nowhere else.

It runs in the process that runs the test (the server, or the headless command with
--in-process), in its event loop. The sockets live in a folder bind-mounted read-only into the
test's net sidecar; a process that adopts a running test opens them again at the same paths.

When the engine has attached a call sink under the test's name (agenttui.sandbox.recorder), each
connection is also read by a ConnectionRecorder: every chunk is written on first, then a copy is
handed to the recorder, so recording never holds a byte back (docs/recorder.md).

With an Interceptor (agenttui.sandbox.interception), an https tunnel's connection is TLS on both
sides of the forwarder: it terminates the agent's TLS with a certificate of agenttui's CA and opens
its own verified TLS connection upstream, so the plain bytes between them pass (unchanged) and are
recorded like plain HTTP. Without one, TLS passes through untouched (bytes and timing only).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import h11

import agenttui.sandbox.budget as budget
import agenttui.sandbox.cassette as cassette
import agenttui.sandbox.recorder as recorder
from agenttui.sandbox.egress import NetworkPlan, Tunnel
from agenttui.sandbox.interception import InterceptionError, Interceptor, describe_tls_error

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 5.0
MAX_CONNECTIONS = 64  # per test: a flood of connections cannot exhaust the host's descriptors
CHUNK = 64 * 1024
MAX_SOCKET_PATH = 107  # sun_path limit on Linux
NOBODY = 65534


def sidecar_user() -> tuple[int, int]:
    """The uid and gid the net sidecar runs as, the only user its tunnels' sockets (0600) are
    given to: nobody when this process is root and can give them away, else this process's
    own user (a user outside the sandbox must never reach another's model endpoint)."""
    if os.geteuid() == 0:
        return NOBODY, NOBODY
    return os.getuid(), os.getgid()


def _tunnel_socket(path: Path) -> socket.socket:
    """A bound socket at `path`, mode 0600 from its creation, owned by the sidecar's user."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        os.fchmod(sock.fileno(), 0o600)  # Linux gives the bound file this mode
        sock.bind(str(path))
        os.chmod(path, 0o600)
        uid, gid = sidecar_user()
        if uid != os.getuid():
            os.chown(path, uid, gid)
    except BaseException:
        sock.close()
        raise
    return sock


class TunnelHost:
    """Serves one test's tunnels."""

    def __init__(self, folder: Path, plan: NetworkPlan, name: str = "", interceptor: Interceptor | None = None):
        self.folder = folder
        self.plan = plan
        self.name = name  # the test's container name: its call sink's key (agenttui.sandbox.recorder)
        self.interceptor = interceptor  # reads inside https tunnels' TLS; None: TLS passes through
        self.last_error: dict[str, str] = {}  # endpoint name → why the last connect failed
        self._servers: list[asyncio.base_events.Server] = []
        self._slots = asyncio.Semaphore(MAX_CONNECTIONS)
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        for tunnel in self.plan.tunnels:
            path = self.folder / tunnel.socket
            if len(str(path)) > MAX_SOCKET_PATH:
                raise OSError(f"socket path {path} is longer than {MAX_SOCKET_PATH} bytes")
            with contextlib.suppress(FileNotFoundError):
                path.unlink()  # left by a process that stopped (adoption)
            server = await asyncio.start_unix_server(
                lambda r, w, t=tunnel: self._accept(t, r, w), sock=_tunnel_socket(path)
            )
            self._servers.append(server)

    def _accept(self, tunnel: Tunnel, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if tunnel.scheme == "https" and self.interceptor is not None:
            # The agent's TLS is the interceptor's to read: nothing may land in the plain reader first.
            writer.transport.pause_reading()
        task = asyncio.ensure_future(self._forward(tunnel, reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _forward(self, tunnel: Tunnel, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._slots.locked():
            writer.close()
            return
        async with self._slots:
            interceptor = self.interceptor if tunnel.scheme == "https" else None
            replayer = cassette.replayer_for(self.name) if self.name else None
            if replayer is not None:  # served from the test's cassette: nothing upstream unless a live miss
                try:
                    if interceptor is not None:
                        await interceptor.accept(writer, tunnel)
                    await self._replay(tunnel, reader, writer, replayer)
                except (OSError, h11.ProtocolError):
                    pass
                finally:
                    writer.close()
                return
            try:
                up_reader, up_writer = await self._connect(tunnel)
            except (OSError, asyncio.TimeoutError) as exc:
                self.last_error[tunnel.name] = describe_connect_error(exc, tunnel)
                writer.close()
                self._record_refusal(tunnel)
                return
            self.last_error.pop(tunnel.name, None)
            if interceptor is not None:
                try:
                    await interceptor.accept(writer, tunnel)
                except (OSError, asyncio.TimeoutError, InterceptionError) as exc:  # ssl.SSLError is an OSError
                    up_writer.close()
                    writer.close()
                    self._record_refusal(tunnel, f"the agent's TLS handshake with agenttui's forwarder failed "
                                                 f"({describe_connect_error(exc)}): does it trust SSL_CERT_FILE?")
                    return
            sink = recorder.sink_for(self.name) if self.name else None
            tape = cassette.tape_for(self.name) if self.name else None
            seen = recorder.ConnectionRecorder(tunnel.name, sink, tape=tape) if sink is not None else None
            gate = budget.gate_of(sink)  # the test's budgets: asked before a model request goes on
            try:
                await asyncio.gather(
                    budget.gated_pipe(reader, up_writer, writer, gate, tunnel.name, seen.from_agent if seen else None)
                    if gate is not None else _pipe(reader, up_writer, seen.from_agent if seen else None),
                    _pipe(up_reader, writer, seen.from_endpoint if seen else None),
                )
            finally:
                for w in (writer, up_writer):
                    w.close()
                if seen is not None:
                    seen.closed()

    async def _replay(self, tunnel: Tunnel, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                      replayer: cassette.Replayer) -> None:
        """Answer each request on this connection from the cassette (docs/replay.md)."""
        agent = h11.Connection(h11.SERVER)
        request: h11.Request | None = None
        body = bytearray()
        while True:
            event = agent.next_event()
            if event is h11.NEED_DATA:
                agent.receive_data(await reader.read(CHUNK))
                continue
            if isinstance(event, h11.Request):
                request, body = event, bytearray()
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage) and request is not None:
                method, target = request.method.decode("ascii", "replace"), request.target.decode("ascii", "replace")
                found = replayer.find(tunnel.name, method, target, bytes(body))
                if isinstance(found, cassette.Miss) and replayer.mode == "new-calls-live":
                    replayer.misses.remove(found.message)  # not a miss: it goes to the endpoint
                    await _live_exchange(tunnel, request, bytes(body), replayer, lambda: self._connect(tunnel),
                                         agent, writer)
                    if agent.our_state is not h11.DONE or agent.their_state is not h11.DONE:
                        return
                    agent.start_next_cycle()
                    continue
                if isinstance(found, cassette.Miss):
                    # x-should-retry: the openai and anthropic libraries would retry a 409 otherwise.
                    status, headers, pieces, offsets = 409, [("content-type", "application/json"),
                                                             ("x-should-retry", "false")], [
                        cassette.miss_body(tunnel.name, found.message)], [0.0]
                else:
                    status, headers, pieces, offsets = cassette.response_parts(found)
                await _answer(agent, writer, status, headers, pieces, offsets, replayer.realtime)
                if agent.our_state is not h11.DONE or agent.their_state is not h11.DONE:
                    return
                agent.start_next_cycle()
            elif isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                return

    async def _connect(self, tunnel: Tunnel) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """The connection to the tunnel's endpoint: TLS of our own (verified) when intercepting."""
        if tunnel.scheme == "https" and self.interceptor is not None:
            return await self.interceptor.connect(tunnel, CONNECT_TIMEOUT_S)
        return await asyncio.wait_for(
            asyncio.open_connection(tunnel.target_host, tunnel.target_port), CONNECT_TIMEOUT_S)

    def _record_refusal(self, tunnel: Tunnel, reason: str | None = None) -> None:
        """The agent's connection could not be carried on: its call failed before it began."""
        sink = recorder.sink_for(self.name) if self.name else None
        if sink is not None:
            now = time.time()
            if reason is None:
                reason = f"{self.last_error[tunnel.name]} at {tunnel.target_host}:{tunnel.target_port}"
            sink.add(recorder.ModelCall(tunnel.name, "connection", now, ended_at=now, error=reason))

    async def close(self) -> None:
        for server in self._servers:
            server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for server in self._servers:
            with contextlib.suppress(Exception):
                await server.wait_closed()
        self._servers.clear()


async def _answer(agent: h11.Connection, writer: asyncio.StreamWriter, status: int, headers: list[tuple[str, str]],
                  pieces: list[bytes], offsets: list[float], realtime: bool) -> None:
    """A recorded response, as a stream when it was one (one chunk a recorded chunk)."""
    if len(pieces) == 1:
        headers = [*headers, ("content-length", str(len(pieces[0])))]
    writer.write(agent.send(h11.Response(status_code=status, headers=headers)))
    began = time.monotonic()
    for piece, offset in zip(pieces, offsets):
        if realtime and offset > time.monotonic() - began:
            await asyncio.sleep(offset - (time.monotonic() - began))
        if piece:
            writer.write(agent.send(h11.Data(data=piece)))
            await writer.drain()
    writer.write(agent.send(h11.EndOfMessage()))
    await writer.drain()


async def _live_exchange(tunnel: Tunnel, request: h11.Request, body: bytes, replayer: cassette.Replayer,
                         connect: Callable[[], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]],
                         agent: h11.Connection, writer: asyncio.StreamWriter) -> None:
    """new-calls-live: a call the cassette lacks goes to the endpoint, and its answer to the agent
    as it arrives (a stream stays a stream); its exchange is kept to be added to the cassette
    (redacted like a recording)."""
    up_reader, up_writer = await connect()
    upstream = h11.Connection(h11.CLIENT)
    answered = False
    try:
        headers = [(n, v) for n, v in request.headers if n.lower() not in (b"connection", b"keep-alive")]
        up_writer.write(upstream.send(h11.Request(method=request.method, target=request.target,
                                                  headers=[*headers, (b"connection", b"close")])))
        if body:
            up_writer.write(upstream.send(h11.Data(data=body)))
        up_writer.write(upstream.send(h11.EndOfMessage()))
        await up_writer.drain()
        started = time.time()
        taped = cassette.Recorded(tunnel.name, request.method.decode("ascii", "replace"),
                                  request.target.decode("ascii", "replace"),
                                  [(n.decode("latin-1"), v.decode("latin-1")) for n, v in request.headers], started,
                                  bytearray(body))
        while True:
            event = upstream.next_event()
            if event is h11.NEED_DATA:
                upstream.receive_data(await up_reader.read(CHUNK))
                continue
            if isinstance(event, h11.Response):
                taped.status = event.status_code
                taped.response_headers = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in event.headers]
                # The forwarder frames the body itself (chunked, as a replayed stream): it is sent on as it comes.
                kept = [(n, v) for n, v in taped.response_headers if n.lower() not in cassette.FRAMING_HEADERS]
                writer.write(agent.send(h11.Response(status_code=event.status_code, headers=kept)))
                answered = True
            elif isinstance(event, h11.Data):
                taped.chunks.append((time.time(), bytes(event.data)))
                if event.data:
                    writer.write(agent.send(h11.Data(data=bytes(event.data))))
                    await writer.drain()
            elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                break
    finally:
        up_writer.close()
    replayer.added.append(taped.entry(replayer.redact))
    if not answered:
        writer.write(agent.send(h11.Response(status_code=502, headers=[("content-length", "0")])))
    writer.write(agent.send(h11.EndOfMessage()))
    await writer.drain()


async def _pipe(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, copy_to: Callable[[bytes], None] | None = None
) -> None:
    try:
        while True:
            data = await reader.read(CHUNK)
            if not data:
                break
            writer.write(data)  # on its way (the transport sends at once when it can) before it is read
            if copy_to is not None:
                copy_to(data)
            await writer.drain()
    except (OSError, asyncio.IncompleteReadError):
        pass
    finally:
        with contextlib.suppress(OSError, RuntimeError):
            if writer.can_write_eof():
                writer.write_eof()
            else:  # TLS cannot half-close: the other direction would wait on a keep-alive forever
                writer.close()


def describe_connect_error(exc: BaseException, tunnel: Tunnel | None = None) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return f"no answer within {CONNECT_TIMEOUT_S:.0f} s"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ssl.SSLError) and tunnel is not None:
        return describe_tls_error(exc, tunnel.target_host)
    return f"{type(exc).__name__}: {exc}"
