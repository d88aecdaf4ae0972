"""A small HTTP/1.1 client over a Unix socket, on asyncio streams alone.

The headless commands start in a fraction of a second only if they avoid heavy imports; aiohttp
alone costs ~200 ms to import. The server's API needs little: one request per connection
(`Connection: close`), JSON bodies, and a chunked NDJSON stream for following logs.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlencode

HEADER_LIMIT = 64 * 1024


class ConnectionLost(ConnectionError):
    """The server closed the connection, or was never there."""


class Response:
    def __init__(self, status: int, headers: dict[str, str], reader: asyncio.StreamReader):
        self.status = status
        self.headers = headers
        self._reader = reader
        self._chunked = headers.get("transfer-encoding", "").lower() == "chunked"
        self._length = int(headers["content-length"]) if "content-length" in headers else None

    async def read(self) -> bytes:
        return b"".join([piece async for piece in self._pieces()])

    async def json(self) -> Any:
        body = await self.read()
        return json.loads(body) if body else None

    async def lines(self, max_line: int) -> AsyncIterator[bytes]:
        """The body's lines (NDJSON), as they arrive."""
        pending = b""
        async for piece in self._pieces():
            pending += piece
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                yield line
            if len(pending) > max_line:
                raise ConnectionLost(f"a streamed line exceeds {max_line} bytes")
        if pending:
            yield pending

    async def _pieces(self) -> AsyncIterator[bytes]:
        reader = self._reader
        try:
            if self._chunked:
                while True:
                    size_line = await reader.readuntil(b"\r\n")
                    size = int(size_line.split(b";", 1)[0], 16)
                    if size == 0:
                        await reader.readuntil(b"\r\n")
                        return
                    data = await reader.readexactly(size)
                    await reader.readexactly(2)
                    yield data
            elif self._length is not None:
                yield await reader.readexactly(self._length)
            else:
                yield await reader.read()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            raise ConnectionLost(f"the response was cut short: {exc}") from None


@asynccontextmanager
async def request(
    socket_path: str,
    method: str,
    path: str,
    *,
    params: dict[str, Any] | None = None,
    body: Any = None,
    timeout: float | None = None,
) -> AsyncIterator[Response]:
    """Send one request; yields the response once its headers have arrived."""
    if params:
        path = f"{path}?{urlencode({k: v for k, v in params.items() if v is not None})}"
    payload = json.dumps(body).encode() if body is not None else b""
    head = [f"{method} {path} HTTP/1.1", "Host: agenttui", "Connection: close"]
    if body is not None:
        head += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
    elif method in ("POST", "PUT"):
        head.append("Content-Length: 0")
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_unix_connection(socket_path, limit=HEADER_LIMIT), timeout or 10
        )
    except (OSError, asyncio.TimeoutError) as exc:
        raise ConnectionLost(f"cannot connect to {socket_path}: {exc}") from None
    try:
        try:
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + payload)
            await writer.drain()
            raw = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
            status_line, *header_lines = raw.decode("latin-1").split("\r\n")
            status = int(status_line.split(" ", 2)[1])
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError,
                ValueError, IndexError) as exc:
            raise ConnectionLost(f"the server at {socket_path} broke off: {exc!r}") from None
        headers = {}
        for line in header_lines:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        yield Response(status, headers, reader)
    finally:
        writer.close()
