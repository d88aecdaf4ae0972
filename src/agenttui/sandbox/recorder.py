"""The recorder on the egress path: what each model call through a test's tunnel asked and got
(docs/recorder.md).

The forwarder (agenttui.sandbox.forwarder) hands a ConnectionRecorder a copy of every chunk
after it has written the chunk on: the recorder never holds or changes a byte. Two h11 parsers
read the copy, one per direction; a request to a model API (agenttui.sandbox.model_formats)
becomes a ModelCall when its response ends. A connection that is not HTTP/1.1 (TLS, anything
h11 cannot read) becomes one "connection" record of bytes and timing when it closes. While a
response passes, only its framing is read and its body kept (its head and its tail); the body is
read when the response has ended, in a thread of its own (one for the process, so calls keep
their order), so a long stream costs the forwarding path a copy, not a parse a chunk. A body
framed by Content-Length is counted rather than framed by h11: its bytes go straight to the body's
reader, and the response parser starts afresh when the count runs out.

Calls go to the sink attached under the test's container name (the engine attaches one that
redacts, caps and stores them in batches); with none attached nothing is parsed at all.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import h11

from agenttui.sandbox.bedrock_format import BedrockResponseReader, read_bedrock_request
from agenttui.sandbox.cassette import Recorded, Tape
from agenttui.sandbox.model_formats import (
    PARSE_CAP,
    RequestSummary,
    ResponseReader,
    model_api,
    read_request,
)

log = logging.getLogger(__name__)


@dataclass
class ModelCall:
    """One model call (kind "call") or one connection the recorder could not read ("connection")."""

    provider: str  # the tunnel's endpoint name: ollama | openai | bedrock
    kind: str
    started_at: float
    ended_at: float = 0.0
    first_byte_at: float | None = None  # the response's first byte
    method: str | None = None
    path: str | None = None
    status: int | None = None
    model: str | None = None
    streamed: bool = False
    request: Any = None  # the request's messages (or prompt), as sent, before redaction
    response: str | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    bytes_up: int = 0
    bytes_down: int = 0


class CallSink(Protocol):
    def add(self, call: ModelCall) -> None: ...


_sinks: dict[str, CallSink] = {}  # container name → where its calls go
_reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="agenttui-recorder")


async def settled() -> None:
    """Every response that has ended is read and handed to its sink."""
    await asyncio.get_running_loop().run_in_executor(_reader, _nothing)


def _nothing() -> None:
    return None


def attach(name: str, sink: CallSink) -> None:
    _sinks[name] = sink


def detach(name: str, sink: CallSink | None = None) -> None:
    if sink is None or _sinks.get(name) is sink:
        _sinks.pop(name, None)


def sink_for(name: str) -> CallSink | None:
    return _sinks.get(name)


class _Exchange:
    """One request and its response, while they pass."""

    def __init__(self, provider: str, request: h11.Request, now: float):
        method = request.method.decode("ascii", "replace")
        target = request.target.decode("ascii", "replace")
        self.family = model_api(method, target)
        self.call = ModelCall(provider, "call", now, method=method, path=target.split("?", 1)[0])
        self.body = bytearray()
        self.body_too_long = False
        self.target = target
        self.reader: ResponseReader | BedrockResponseReader | None = None
        self.taped: Recorded | None = None  # the whole exchange, when the test records a cassette

    def request_data(self, data: bytes) -> None:
        if self.family is None or self.body_too_long:
            return
        if len(self.body) + len(data) > PARSE_CAP:
            self.body_too_long = True
            self.body.clear()
            return
        self.body += data

    def request_ended(self) -> None:
        if self.family is None:
            return
        summary = RequestSummary() if self.body_too_long else _read_request(self.family, bytes(self.body), self.target)
        self.call.model, self.call.request, self.call.streamed = summary.model, summary.messages, bool(summary.stream)
        self.body = bytearray()

    def response_started(self, response: h11.Response) -> None:
        self.call.status = response.status_code
        if self.family is None:
            return
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in response.headers}
        self.reader = response_reader(self.family, headers)
        content_type = headers.get("content-type", "")
        self.call.streamed = "event-stream" in content_type or "eventstream" in content_type or (
            self.call.streamed and self.family == "ollama"
        )

    def response_data(self, data: bytes) -> None:
        if self.reader is not None:
            self.reader.feed(data)

    def finish(self, now: float, error: str | None = None) -> ModelCall:
        call = self.call
        call.ended_at = now
        if self.reader is not None:
            summary = self.reader.end()
            call.response = summary.text
            call.tokens_in, call.tokens_out = summary.tokens_in, summary.tokens_out
            call.tool_calls = summary.tool_calls
            call.model = summary.model or call.model
            call.error = summary.error
        if call.error is None and call.status is not None and call.status >= 400:
            call.error = f"HTTP {call.status}"
        if error is not None:
            call.error = error
        return call


class ConnectionRecorder:
    """Reads one tunnel connection's two directions (see the module's docstring)."""

    def __init__(self, provider: str, sink: CallSink, clock: Any = time.time, tape: Tape | None = None):
        self.provider = provider
        self.sink = sink
        self.tape = tape  # the test's cassette recording (agenttui.sandbox.cassette), apart from the sink
        self.clock = clock
        self.opened_at = clock()
        self.bytes_up = 0
        self.bytes_down = 0
        self.first_byte_at: float | None = None
        self.calls = 0
        try:
            self._loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a direct caller): bodies are read at once
            self._loop = None
        self._request_began: int | None = None  # where the request being read began (bytes from the agent)
        self.readable = True  # False: not HTTP/1.1 we can follow; bytes and timing only
        self._requests = h11.Connection(h11.SERVER)  # reads what the agent sends
        self._responses = h11.Connection(h11.CLIENT)  # reads what the endpoint answers
        self._waiting: deque[_Exchange] = deque()  # requests whose responses have not ended
        self._sending: _Exchange | None = None  # the request whose body is passing
        self._body_left: int | None = None  # bytes still to come of a response body framed by Content-Length
        self._counting = False  # that body is counted here, past the response parser (see _count_body)

    def from_agent(self, data: bytes) -> None:
        if not data:  # h11 would take it for the end of the stream
            return
        if self._request_began is None:  # a request's first byte may come in an earlier chunk than its head's end
            self._request_began = self.bytes_up
        self.bytes_up += len(data)
        if self.readable:
            self._guard(self._requests.receive_data, data)
            self._guard(self._read_requests)

    def from_endpoint(self, data: bytes) -> None:
        if not data:
            return
        self.bytes_down += len(data)
        if self.first_byte_at is None:
            self.first_byte_at = self.clock()
        if self._waiting and self._waiting[0].call.first_byte_at is None:
            self._waiting[0].call.first_byte_at = self.clock()
        if self._counting:
            try:
                data = self._count_body(data)
            except Exception:  # as in _guard: a bug here must never break the agent's connection
                log.exception("recorder: cannot count a %s answer; recording bytes only", self.provider)
                self.readable, self._counting, data = False, False, b""
        if self.readable and data:
            self._guard(self._responses.receive_data, data)
            self._guard(self._read_responses)

    def closed(self) -> None:
        """The connection ended: calls cut short are recorded with an error, and a connection
        the recorder could not read is recorded as bytes and timing."""
        now = self.clock()
        for exchange in self._waiting:
            if exchange.family is not None:
                self._finish(exchange, now, "the connection closed before the response ended")
        self._waiting.clear()
        if not self.readable or (self.calls == 0 and self.bytes_up and self._looks_unread()):
            self.sink.add(ModelCall(
                self.provider, "connection", self.opened_at, ended_at=now, first_byte_at=self.first_byte_at,
                bytes_up=self.bytes_up, bytes_down=self.bytes_down,
            ))

    def _looks_unread(self) -> bool:
        return self._requests.their_state not in (h11.IDLE, h11.DONE, h11.MUST_CLOSE, h11.CLOSED)

    def _guard(self, action: Any, *args: Any) -> None:
        if not self.readable:
            return
        try:
            action(*args)
        except h11.ProtocolError:
            self.readable = False
        except Exception:  # a bug here must never break the agent's connection
            log.exception("recorder: cannot read a %s connection; recording bytes only", self.provider)
            self.readable = False

    def _read_requests(self) -> None:
        while self.readable:
            event = self._requests.next_event()
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            if isinstance(event, h11.Request):
                exchange = _Exchange(self.provider, event, self.clock())
                if self.tape is not None:
                    exchange.taped = Recorded(
                        self.provider, exchange.call.method or "", event.target.decode("ascii", "replace"),
                        [(n.decode("latin-1"), v.decode("latin-1")) for n, v in event.headers], exchange.call.started_at)
                exchange.call.bytes_up, exchange.call.bytes_down = self._request_began or 0, self.bytes_down
                self._request_began = None
                self._sending = exchange
                self._waiting.append(exchange)
                # The response parser must know the request (HEAD, keep-alive) to frame its answer.
                self._responses.send(h11.Request(method=event.method, target=event.target,
                                                 headers=_framing_free(event.headers)))
            elif isinstance(event, h11.Data) and self._sending is not None:
                self._sending.request_data(event.data)
                if self._sending.taped is not None:
                    self._sending.taped.request_body += event.data
            elif isinstance(event, h11.EndOfMessage) and self._sending is not None:
                self._sending.request_ended()
                self._responses.send(h11.EndOfMessage())
                self._sending = None
            elif isinstance(event, h11.ConnectionClosed):
                return

    def _read_responses(self) -> None:
        while self.readable:
            event = self._responses.next_event()
            if event is h11.NEED_DATA or event is h11.PAUSED or not self._waiting:
                break
            exchange = self._waiting[0]
            if isinstance(event, h11.Response):
                exchange.response_started(event)
                if exchange.taped is not None:
                    exchange.taped.status = event.status_code
                    exchange.taped.response_headers = [(n.decode("latin-1"), v.decode("latin-1"))
                                                       for n, v in event.headers]
                self._body_left = self._counted_length(exchange, event)
            elif isinstance(event, h11.Data):
                self._body_data(exchange, event.data)
                if self._body_left is not None:
                    self._body_left -= len(event.data)
            elif isinstance(event, h11.EndOfMessage):
                self._body_left = None
                self._response_ended(exchange)
            elif isinstance(event, h11.ConnectionClosed):
                return
        if self._body_left and self._responses.their_state is h11.SEND_BODY:
            self._counting = True  # h11 has handed out what it held: the rest of the body is counted

    def _counted_length(self, exchange: _Exchange, response: h11.Response) -> int | None:
        """The body's length when Content-Length alone frames it and its request has been read whole."""
        if self._sending is not None or exchange.call.method == "HEAD" or response.status_code in (204, 304):
            return None
        lengths = [value for name, value in response.headers if name == b"content-length"]
        if len(lengths) != 1 or any(name == b"transfer-encoding" for name, _ in response.headers):
            return None
        return int(lengths[0]) if lengths[0].isdigit() else None

    def _count_body(self, data: bytes) -> bytes:
        """Pass a counted body's bytes to its reader; what follows the body is returned for h11."""
        assert self._body_left is not None
        piece = data if len(data) <= self._body_left else data[:self._body_left]
        self._body_left -= len(piece)
        exchange = self._waiting[0]
        self._body_data(exchange, piece)
        if self._body_left == 0:
            self._counting, self._body_left = False, None
            # h11 never saw the body: a fresh parser reads the next response.
            self._responses = h11.Connection(h11.CLIENT)
            self._response_ended(exchange)
        return data[len(piece):]

    def _body_data(self, exchange: _Exchange, data: bytes) -> None:
        exchange.response_data(data)
        if exchange.taped is not None:
            exchange.taped.chunks.append((self.clock(), bytes(data)))

    def _response_ended(self, exchange: _Exchange) -> None:
        self._waiting.popleft()
        if exchange.taped is not None and self.tape is not None:
            self._tape(exchange.taped)
        if exchange.family is not None:
            self._finish(exchange, self.clock())
        self._answer_request_parser(exchange)

    def _answer_request_parser(self, exchange: _Exchange) -> None:
        """The request parser waits for an answer before it reads the next request: give it one
        (its bytes go nowhere), then start the next cycle on both."""
        if self._requests.our_state is h11.SEND_RESPONSE:
            self._requests.send(h11.Response(status_code=exchange.call.status or 200,
                                             headers=[("content-length", "0")]))
            self._requests.send(h11.EndOfMessage())
        if self._responses.states == {h11.CLIENT: h11.DONE, h11.SERVER: h11.DONE}:
            self._next_cycle()
        elif self._responses.states == {h11.CLIENT: h11.IDLE, h11.SERVER: h11.IDLE}:  # a fresh parser
            self._next_cycle(fresh=True)

    def _next_cycle(self, fresh: bool = False) -> None:
        if self._requests.states == {h11.CLIENT: h11.DONE, h11.SERVER: h11.DONE}:
            self._requests.start_next_cycle()
            if not fresh:
                self._responses.start_next_cycle()
            self._read_requests()

    def _tape(self, taped: Recorded) -> None:
        """The exchange ended whole: the tape encodes and redacts it off the forwarding path."""
        assert self.tape is not None
        if self._loop is None:
            self.tape.add(taped)
        else:
            self._loop.run_in_executor(_reader, self.tape.add, taped)

    def _finish(self, exchange: _Exchange, now: float, error: str | None = None) -> None:
        """The call is over: read its body off the forwarding path, then hand it to the sink."""
        self.calls += 1
        call = exchange.call
        call.bytes_up, call.bytes_down = self.bytes_up - call.bytes_up, self.bytes_down - call.bytes_down
        if self._loop is None:
            self.sink.add(exchange.finish(now, error))
            return
        loop, sink = self._loop, self.sink

        def read() -> None:
            try:
                done = exchange.finish(now, error)
            except Exception:  # a bug here must cost the call its details, never the connection
                log.exception("recorder: cannot read a %s answer", call.provider)
                done = call
            loop.call_soon_threadsafe(sink.add, done)

        loop.run_in_executor(_reader, read)


def _read_request(family: str, body: bytes, target: str) -> RequestSummary:
    if family == "bedrock":  # the model is the path's; the body is Converse's or the vendor's
        return read_bedrock_request(target, body)
    return read_request(family, body)


def response_reader(family: str, headers: dict[str, str]) -> ResponseReader | BedrockResponseReader:
    """The reader of a response's body, given its headers (lower-case names)."""
    if family == "bedrock":
        return BedrockResponseReader(headers.get("content-type", ""), headers)
    return ResponseReader(family, headers.get("content-type", ""), headers.get("content-encoding", ""))


def _framing_free(headers: Any) -> list[tuple[bytes, bytes]]:
    """The request's headers without its body framing (the response parser is sent no body)."""
    keep = [(n, v) for n, v in headers if n not in (b"content-length", b"transfer-encoding", b"expect")]
    return keep or [(b"host", b"endpoint")]
