"""HTTP/1.1 over the server's Unix socket: h11 on a blocking socket, one request per connection.

The headless commands start fast only if they avoid heavy imports (aiohttp alone is far heavier
than h11). The server's API needs little: `Connection: close`, JSON bodies, and a chunked NDJSON
stream for following logs. A response is read from one thread at a time; `close()` may come
from another thread, and wakes a read blocked on the socket.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import h11

READ_BYTES = 64 * 1024
CONNECT_TIMEOUT_S = 10.0


class ConnectionLost(ConnectionError):
    """The server closed the connection, or was never there."""


class Response:
    def __init__(self, sock: socket.socket, connection: h11.Connection, head: h11.Response):
        self.status = head.status_code
        self.headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in head.headers}
        self._sock = sock
        self._connection = connection

    def __enter__(self) -> Response:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Drop the connection, waking a read blocked in another thread."""
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed by the server, or by an earlier close
        self._sock.close()

    def read(self) -> bytes:
        return b"".join(self.pieces())

    def pieces(self) -> Iterator[bytes]:
        """The body as it arrives."""
        while True:
            event = _next_event(self._sock, self._connection)
            if isinstance(event, h11.Data):
                yield bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                return

    def lines(self, max_line: int) -> Iterator[bytes]:
        """The body's lines (NDJSON), as they arrive."""
        pending = b""
        for piece in self.pieces():
            pending += piece
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                yield line
            if len(pending) > max_line:
                raise ConnectionLost(f"a streamed line exceeds {max_line} bytes")
        if pending:
            yield pending


def _next_event(sock: socket.socket, connection: h11.Connection) -> Any:
    """The next event from the server, reading the socket as h11 needs more bytes."""
    while True:
        try:
            event = connection.next_event()
        except h11.RemoteProtocolError as exc:
            raise ConnectionLost(f"the response was cut short: {exc}") from None
        if event is h11.NEED_DATA:
            try:
                data = sock.recv(READ_BYTES)
            except OSError as exc:  # socket.timeout included
                raise ConnectionLost(f"the server broke off: {exc!r}") from None
            connection.receive_data(data)  # b"" tells h11 the server closed the connection
            continue
        if isinstance(event, h11.ConnectionClosed):
            raise ConnectionLost("the server closed the connection")
        return event


def _connect(socket_path: str, timeout: float) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(socket_path)
    except OSError as exc:
        sock.close()
        raise ConnectionLost(f"cannot connect to {socket_path}: {exc}") from None
    return sock


class Sent:
    """A request on its way: the answer's head is read by `response()`, so that the client may
    do other work (load its modules) while the server works on it."""

    def __init__(self, socket_path: str, sock: socket.socket, connection: h11.Connection, timeout: float | None):
        self.socket_path = socket_path
        self._sock = sock
        self._connection = connection
        self._timeout = timeout

    def response(self) -> Response:
        """The answer, once its head has arrived (within the request's timeout)."""
        sock, connection = self._sock, self._connection
        try:
            sock.settimeout(self._timeout)
            head = _next_event(sock, connection)
            sock.settimeout(None)
        except BaseException as exc:
            sock.close()
            if isinstance(exc, OSError) and not isinstance(exc, ConnectionLost):
                raise ConnectionLost(f"the server at {self.socket_path} broke off: {exc!r}") from None
            raise
        if not isinstance(head, h11.Response):
            sock.close()
            raise ConnectionLost(f"the server at {self.socket_path} sent {type(head).__name__} instead of a response")
        return Response(sock, connection, head)

    def close(self) -> None:
        self._sock.close()


def send(
    socket_path: str,
    method: str,
    path: str,
    *,
    params: dict[str, Any] | None = None,
    body: bytes | None = None,
    timeout: float | None = None,
    headers: dict[str, str] | None = None,
) -> Sent:
    """Send one request without waiting for its answer. `timeout` bounds the connect and, in
    `Sent.response()`, the wait for the head; the body may take its time."""
    if params:
        path = f"{path}?{urlencode({k: v for k, v in params.items() if v is not None})}"
    fields = [("Host", "agenttui"), ("Connection", "close"), *(headers or {}).items()]
    if body is not None:
        fields.append(("Content-Type", "application/json"))
    if body is not None or method in ("POST", "PUT"):
        fields.append(("Content-Length", str(len(body or b""))))
    sock = _connect(socket_path, timeout or CONNECT_TIMEOUT_S)
    connection = h11.Connection(h11.CLIENT)
    try:
        sock.settimeout(timeout)
        outgoing = connection.send(h11.Request(method=method, target=path, headers=fields))
        outgoing += connection.send(h11.Data(data=body)) if body else b""
        sock.sendall(outgoing + connection.send(h11.EndOfMessage()))
    except BaseException as exc:
        sock.close()
        if isinstance(exc, OSError) and not isinstance(exc, ConnectionLost):
            raise ConnectionLost(f"the server at {socket_path} broke off: {exc!r}") from None
        raise
    return Sent(socket_path, sock, connection, timeout)


def request(socket_path: str, method: str, path: str, **options: Any) -> Response:
    """Send one request (`send`'s options); returns the response once its head has arrived
    (close it when done)."""
    return send(socket_path, method, path, **options).response()
