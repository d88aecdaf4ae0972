"""The wire formats of model calls, read from a copy of the bytes (agenttui.sandbox.recorder).

Which paths are model calls, what a request asked (model, messages), and what a response said,
whole or streamed: Ollama's JSON and NDJSON (/api/chat, /api/generate) and OpenAI-compatible
JSON and server-sent events (/v1/chat/completions, /v1/completions), with their token counts
and the tool calls the model requested; Bedrock's (JSON and the AWS binary event stream) are
agenttui.sandbox.bedrock_format's (model_api names them; the recorder picks the reader). Chunks
may be cut anywhere: lines are joined back before they are read. Nothing here raises on odd
input; what cannot be read stays unknown.
"""

from __future__ import annotations

import zlib
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import msgspec

PARSE_CAP = 8 * 1024 * 1024  # a line longer than this is not read (its call keeps the rest)
# What is kept of a response body while it passes, to be read once it has ended: its head whole and
# the end of the rest, whose last lines hold a stream's token counts.
HEAD_BYTES = 1024 * 1024
TAIL_BYTES = 64 * 1024
READ_PIECE = 16 * 1024  # what `end` reads at a time of the kept head
TEXT_CAP = 64 * 1024  # response text kept while reading: the most model_call_text_max may keep
# Once the text is full, only lines holding one of these are read (token counts, tool calls, errors
# come in a stream's last events): a long stream costs a substring search, not a decode an event.
_WANTED_PAST_CAP = (b"usage", b"tool_calls", b"error", b"eval_count")
_decode = msgspec.json.Decoder().decode
# path suffix → API family
_FAMILIES = (
    ("/api/chat", "ollama"),
    ("/api/generate", "ollama"),
    ("/chat/completions", "openai"),
    ("/completions", "openai"),
)
_BEDROCK_OPERATIONS = ("/converse", "/converse-stream", "/invoke", "/invoke-with-response-stream")


def model_api(method: str, target: str) -> str | None:
    """The API family of a request that is a model call ("ollama" | "openai" | "bedrock"), else None.
    A "bedrock" call is read by agenttui.sandbox.bedrock_format."""
    if method != "POST":
        return None
    path = target.split("?", 1)[0].rstrip("/")
    if path.endswith(_BEDROCK_OPERATIONS) and "/model/" in path:
        return "bedrock"  # /model/{modelId}/converse and the rest (agenttui.sandbox.bedrock_format)
    for suffix, family in _FAMILIES:
        if path.endswith(suffix):
            return family
    return None


@dataclass
class RequestSummary:
    model: str | None = None
    messages: Any = None  # the request's messages (or prompt), as sent
    stream: bool | None = None


def read_request(family: str, body: bytes) -> RequestSummary:
    try:
        data = _decode(body) if body else {}
    except (msgspec.DecodeError, UnicodeDecodeError):
        return RequestSummary()
    if not isinstance(data, dict):
        return RequestSummary()
    messages = data.get("messages")
    if messages is None and "prompt" in data:
        messages = {"system": data["system"], "prompt": data["prompt"]} if data.get("system") else data["prompt"]
    stream = data.get("stream")
    if stream is None:
        stream = family == "ollama"  # Ollama streams unless told not to; OpenAI does not
    model = data.get("model")
    return RequestSummary(model if isinstance(model, str) else None, messages, bool(stream))


@dataclass
class ResponseSummary:
    model: str | None = None
    text: str = ""
    tokens_in: int | None = None
    tokens_out: int | None = None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    unread: bool = False  # some of it could not be read (too long, not JSON)


class ResponseReader:
    """Reads a response body: whole JSON, NDJSON lines or server-sent events. `feed` only keeps
    the bytes (the head and the tail, see HEAD_BYTES): it runs on the forwarding path; `end` reads
    them, off it (agenttui.sandbox.recorder)."""

    def __init__(self, family: str, content_type: str, content_encoding: str):
        self.family = family
        kind = content_type.split(";", 1)[0].strip().lower()
        self.mode = "sse" if kind == "text/event-stream" else "ndjson" if "ndjson" in kind else "json"
        if self.mode == "json" and family == "ollama":
            self.mode = "ndjson"  # a whole Ollama answer is one line of the same shape
        encoding = content_encoding.strip().lower()
        self._inflate = zlib.decompressobj(47) if encoding in ("gzip", "deflate") else None
        self._head = bytearray()
        self._tail: deque[bytes] = deque()
        self._tail_size = 0
        self._skipped = False  # bytes between the head and the tail were not kept
        self._buffer = bytearray()
        self._event_data: list[bytes] = []
        self._text: list[str] = []
        self._text_size = 0
        self._streamed_tools: dict[int, dict[str, Any]] = {}
        self.summary = ResponseSummary()

    def feed(self, data: bytes) -> None:
        if self._inflate is not None:
            try:
                data = self._inflate.decompress(data)
            except zlib.error:
                self._inflate, self.mode = None, "none"
                self.summary.unread = True
        if self.mode == "none":
            return
        room = HEAD_BYTES - len(self._head)
        if room > 0:
            self._head += data[:room]
            data = data[room:]
        if data:
            self._tail.append(data)
            self._tail_size += len(data)
            while self._tail_size - len(self._tail[0]) >= TAIL_BYTES:
                self._tail_size -= len(self._tail.popleft())
                self._skipped = True

    def _take(self, data: bytes) -> None:
        if self.mode == "none":
            return
        self._buffer += data
        if self.mode == "json":
            if len(self._buffer) > PARSE_CAP:
                self._give_up()
            return
        self._read_lines()

    def end(self) -> ResponseSummary:
        """Read what was kept (the whole body, or its head and its tail)."""
        head = bytes(self._head)
        for start in range(0, len(head), READ_PIECE):  # in pieces: once the text is full, the rest is only searched
            self._take(head[start:start + READ_PIECE])
        tail = b"".join(self._tail)
        self._head, self._tail = bytearray(), deque()
        if self._skipped and self.mode != "none":
            if self.mode == "json":
                self._give_up()  # a whole JSON answer longer than the head is not read
            else:
                # Start again at the tail's first whole line (NDJSON) or event (SSE).
                self._buffer.clear()
                self._event_data = []
                marks = (b"\n",) if self.mode == "ndjson" else (b"\n\n", b"\n\r\n")
                ends = [tail.find(mark) + len(mark) for mark in marks if tail.find(mark) >= 0]
                tail = tail[min(ends):] if ends else b""
        self._take(tail)
        if self.mode == "json":
            self._on_object(bytes(self._buffer))
        elif self.mode != "none":
            self._buffer += b"\n\n"  # a last line or event without its end
            self._read_lines()
        self._buffer.clear()
        self.summary.text = "".join(self._text)
        if self._streamed_tools:
            self.summary.tool_calls.extend(self._streamed_tools[i] for i in sorted(self._streamed_tools))
            self._streamed_tools.clear()
        return self.summary

    def _give_up(self) -> None:
        self.mode = "none"
        self.summary.unread = True
        self._buffer.clear()

    def _read_lines(self) -> None:
        buffer = self._buffer
        if self._text_size >= TEXT_CAP and not self._event_data:
            end = self._last_boundary()
            if end <= 0:
                return self._check_size()
            block = bytes(buffer[:end])
            del buffer[:end]  # whole lines (NDJSON) or whole events (SSE): the rest waits for its end
            if any(mark in block for mark in _WANTED_PAST_CAP):
                self._read_block(block)
            return self._check_size()
        end = buffer.rfind(b"\n") + 1
        if end:
            block = bytes(buffer[:end])
            del buffer[:end]
            self._read_block(block)
        self._check_size()

    def _last_boundary(self) -> int:
        """Where the last whole line (NDJSON) or event (SSE: a blank line) ends in the buffer."""
        if self.mode == "ndjson":
            return self._buffer.rfind(b"\n") + 1
        lf, crlf = self._buffer.rfind(b"\n\n"), self._buffer.rfind(b"\n\r\n")
        return max(lf + 2 if lf >= 0 else 0, crlf + 3 if crlf >= 0 else 0)

    def _read_block(self, block: bytes) -> None:
        for line in block.split(b"\n")[:-1]:
            line = line.rstrip(b"\r")
            if self.mode == "ndjson":
                if line.strip():
                    self._on_object(line)
            else:
                self._on_sse_line(line)

    def _check_size(self) -> None:
        if len(self._buffer) > PARSE_CAP:
            self._give_up()

    def _on_sse_line(self, line: bytes) -> None:
        if not line:  # an event ends at a blank line
            if self._event_data:
                payload = b"\n".join(self._event_data)
                self._event_data = []
                if payload.strip() != b"[DONE]":
                    self._on_object(payload)
            return
        if line.startswith(b"data:"):
            value = line[5:]
            self._event_data.append(value[1:] if value.startswith(b" ") else value)

    def _on_object(self, payload: bytes) -> None:
        try:
            data = _decode(payload)
        except (msgspec.DecodeError, UnicodeDecodeError):
            self.summary.unread = True
            return
        if isinstance(data, dict):
            if self.family == "ollama":
                self._ollama(data)
            else:
                self._openai(data)

    def _add_text(self, text: Any) -> None:
        if isinstance(text, str) and text and self._text_size < TEXT_CAP:
            piece = text[: TEXT_CAP - self._text_size]
            self._text.append(piece)
            self._text_size += len(piece)

    def _ollama(self, data: dict[str, Any]) -> None:
        summary = self.summary
        if isinstance(data.get("model"), str):
            summary.model = data["model"]
        if data.get("error") is not None:
            summary.error = str(data["error"])
        message = data.get("message")
        if isinstance(message, dict):
            self._add_text(message.get("content"))
            for call in message.get("tool_calls") or []:
                if isinstance(call, dict):
                    summary.tool_calls.append(_tool_call(call))
        self._add_text(data.get("response"))
        if isinstance(data.get("prompt_eval_count"), int):
            summary.tokens_in = data["prompt_eval_count"]
        if isinstance(data.get("eval_count"), int):
            summary.tokens_out = data["eval_count"]

    def _openai(self, data: dict[str, Any]) -> None:
        summary = self.summary
        if isinstance(data.get("model"), str):
            summary.model = data["model"]
        error = data.get("error")
        if error is not None:
            summary.error = str(error.get("message") or error) if isinstance(error, dict) else str(error)
        usage = data.get("usage")
        if isinstance(usage, dict):
            if isinstance(usage.get("prompt_tokens"), int):
                summary.tokens_in = usage["prompt_tokens"]
            if isinstance(usage.get("completion_tokens"), int):
                summary.tokens_out = usage["completion_tokens"]
        for choice in data.get("choices") or []:
            if not isinstance(choice, dict):
                continue
            self._add_text(choice.get("text"))  # /v1/completions
            message = choice.get("message")
            if isinstance(message, dict):
                self._add_text(message.get("content"))
                summary.tool_calls.extend(_tool_call(c) for c in message.get("tool_calls") or [] if isinstance(c, dict))
            delta = choice.get("delta")
            if isinstance(delta, dict):
                self._add_text(delta.get("content"))
                for part in delta.get("tool_calls") or []:
                    if isinstance(part, dict):
                        self._merge_tool_part(part)

    def _merge_tool_part(self, part: dict[str, Any]) -> None:
        """A streamed tool call comes in pieces keyed by index: its id and name first, then its
        arguments a few characters at a time."""
        index = part.get("index") if isinstance(part.get("index"), int) else len(self._streamed_tools)
        call = self._streamed_tools.setdefault(index, {"id": None, "name": None, "arguments": ""})
        if part.get("id"):
            call["id"] = part["id"]
        function = part.get("function")
        if isinstance(function, dict):
            if function.get("name"):
                call["name"] = function["name"]
            if isinstance(function.get("arguments"), str):
                call["arguments"] += function["arguments"]


def _tool_call(call: dict[str, Any]) -> dict[str, Any]:
    function = call.get("function") if isinstance(call.get("function"), dict) else {}
    arguments = function.get("arguments")
    if not isinstance(arguments, str):
        arguments = msgspec.json.encode(arguments).decode() if arguments is not None else ""
    return {"id": call.get("id"), "name": function.get("name"), "arguments": arguments}
