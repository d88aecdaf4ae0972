"""Bedrock's wire formats, read from a copy of the bytes (agenttui.sandbox.recorder, via model_formats).

The runtime's operations are POST /model/{modelId}/converse, /converse-stream, /invoke and
/invoke-with-response-stream; the model is the path's (URL-decoded) id, since Converse answers do
not name it. Converse answers are JSON with `usage` {inputTokens, outputTokens}; ConverseStream and
InvokeModelWithResponseStream answer in the AWS binary event stream (application/vnd.amazon.eventstream:
messages of a prelude, headers, a payload and CRC32s), whose `metadata` event, or whose last `chunk`'s
`amazon-bedrock-invocationMetrics`, holds the token counts. InvokeModel bodies are the model vendor's
own (Anthropic messages, Amazon Titan and Nova, Meta Llama, Mistral, Cohere); Bedrock also sends their
counts as X-Amzn-Bedrock-Input/Output-Token-Count headers. Errors are `x-amzn-ErrorType` with
{"message"} or, inside a stream, an exception message. Nothing here raises on odd input.
"""

from __future__ import annotations

import base64
import binascii
import struct
import zlib
from collections import deque
from typing import Any
from urllib.parse import unquote

import msgspec

from agenttui.sandbox.model_formats import HEAD_BYTES, TAIL_BYTES, TEXT_CAP, RequestSummary, ResponseSummary

EVENTSTREAM = "application/vnd.amazon.eventstream"
OPERATIONS = ("converse", "converse-stream", "invoke", "invoke-with-response-stream")
STREAMED_OPERATIONS = ("converse-stream", "invoke-with-response-stream")
MAX_MESSAGE = 16 * 1024 * 1024  # AWS caps an event-stream message far below this; longer is noise
_PRELUDE = 12  # total length, headers length, prelude CRC
_decode = msgspec.json.Decoder().decode


def bedrock_operation(target: str) -> tuple[str, str] | None:
    """(model id, operation) of a Bedrock runtime request target, else None."""
    parts = target.split("?", 1)[0].rstrip("/").split("/")
    if len(parts) >= 4 and parts[-3] == "model" and parts[-1] in OPERATIONS and parts[-2]:
        return unquote(parts[-2]), parts[-1]
    return None


def read_bedrock_request(target: str, body: bytes) -> RequestSummary:
    """The model (from the path), what was asked (Converse and Anthropic messages with their system
    prompt; Titan's inputText, Llama's and Mistral's prompt, Cohere's message) and whether it streams."""
    found = bedrock_operation(target)
    model, operation = found if found else (None, "")
    summary = RequestSummary(model, None, operation in STREAMED_OPERATIONS)
    try:
        data = _decode(body) if body else {}
    except (msgspec.DecodeError, UnicodeDecodeError):
        return summary
    if not isinstance(data, dict):
        return summary
    if data.get("messages") is not None:
        system = data.get("system")
        summary.messages = {"system": system, "messages": data["messages"]} if system else data["messages"]
    else:
        for key in ("inputText", "prompt", "message"):
            if data.get(key) is not None:
                summary.messages = data[key]
                break
    return summary


# ------------------------------------------------------------------ the event stream


def _valid_prelude(data: bytes | bytearray, at: int) -> int:
    """The total length of a message whose prelude starts at `at` and checks out, else 0."""
    if at + _PRELUDE > len(data):
        return 0
    total, headers = struct.unpack_from(">II", data, at)
    if not (16 <= total <= MAX_MESSAGE and headers <= total - 16):
        return 0
    if zlib.crc32(bytes(data[at:at + 8])) != struct.unpack_from(">I", data, at + 8)[0]:
        return 0
    return total


def first_message(data: bytes | bytearray) -> int:
    """Where the first message that begins in `data` starts (a stream's tail was cut mid-message),
    found by its prelude's CRC; len(data) when none does."""
    for at in range(len(data)):
        if _valid_prelude(data, at):
            return at
    return len(data)


def split_messages(data: bytes | bytearray) -> tuple[list[tuple[dict[str, Any], bytes]], int, bool]:
    """The whole messages at the start of `data` (headers, payload), how many bytes they took, and
    whether one was damaged (bad CRC or headers; reading stops there)."""
    messages: list[tuple[dict[str, Any], bytes]] = []
    at = 0
    while at + _PRELUDE <= len(data):
        total = _valid_prelude(data, at)
        if not total:
            return messages, at, True
        if at + total > len(data):
            break
        message = bytes(data[at:at + total])
        if zlib.crc32(message[:-4]) != struct.unpack_from(">I", message, total - 4)[0]:
            return messages, at, True
        headers_length = struct.unpack_from(">I", message, 4)[0]
        headers = _headers(message[_PRELUDE:_PRELUDE + headers_length])
        if headers is None:
            return messages, at, True
        messages.append((headers, message[_PRELUDE + headers_length:-4]))
        at += total
    return messages, at, False


def _headers(raw: bytes) -> dict[str, Any] | None:
    """Event-stream headers: name length, name, value type, value (the types AWS defines)."""
    headers: dict[str, Any] = {}
    at = 0
    try:
        while at < len(raw):
            size = raw[at]
            name = raw[at + 1:at + 1 + size].decode("utf-8")
            at += 1 + size
            kind = raw[at]
            at += 1
            if kind in (0, 1):  # true, false
                value: Any = kind == 0
            elif kind == 2:
                value, at = struct.unpack_from(">b", raw, at)[0], at + 1
            elif kind == 3:
                value, at = struct.unpack_from(">h", raw, at)[0], at + 2
            elif kind == 4:
                value, at = struct.unpack_from(">i", raw, at)[0], at + 4
            elif kind in (5, 8):  # long, timestamp
                value, at = struct.unpack_from(">q", raw, at)[0], at + 8
            elif kind in (6, 7):  # bytes, string
                length = struct.unpack_from(">H", raw, at)[0]
                data = raw[at + 2:at + 2 + length]
                value, at = (data.decode("utf-8", "replace") if kind == 7 else data), at + 2 + length
            elif kind == 9:  # uuid
                value, at = raw[at:at + 16].hex(), at + 16
            else:
                return None
            headers[name] = value
    except (IndexError, struct.error, UnicodeDecodeError):
        return None
    return headers


def encode_message(headers: dict[str, str], payload: bytes) -> bytes:
    """One event-stream message with string headers (a replayed stream's messages, re-encoded)."""
    raw = b""
    for name, value in headers.items():
        name_bytes, value_bytes = name.encode(), value.encode()
        raw += struct.pack(">B", len(name_bytes)) + name_bytes + struct.pack(">BH", 7, len(value_bytes)) + value_bytes
    prelude = struct.pack(">II", _PRELUDE + len(raw) + len(payload) + 4, len(raw))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    message = prelude + raw + payload
    return message + struct.pack(">I", zlib.crc32(message))


# ------------------------------------------------------------------ the answer


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _arguments(value: Any) -> str:
    return value if isinstance(value, str) else msgspec.json.encode(value).decode() if value is not None else ""


class BedrockResponseReader:
    """Reads a Bedrock answer: whole JSON or an event stream. As model_formats.ResponseReader: `feed`
    only keeps the bytes (head and tail) on the forwarding path; `end` reads them, off it."""

    def __init__(self, content_type: str, headers: dict[str, str]):
        self.stream = content_type.split(";", 1)[0].strip().lower() == EVENTSTREAM
        self.headers = {name.lower(): value for name, value in headers.items()}
        self._head = bytearray()
        self._tail: deque[bytes] = deque()
        self._tail_size = 0
        self._skipped = False
        self._text: list[str] = []
        self._text_size = 0
        self._tools: dict[int, dict[str, Any]] = {}  # streamed tool calls by content block index
        self.summary = ResponseSummary()

    def feed(self, data: bytes) -> None:
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

    def end(self) -> ResponseSummary:
        head, tail = bytes(self._head), b"".join(self._tail)
        self._head, self._tail = bytearray(), deque()
        if self.stream:
            if self._skipped:
                self._read_messages(head)
                self.summary.unread = True  # the middle of a long stream was not kept
                self._read_messages(tail[first_message(tail):])
            else:
                self._read_messages(head + tail)
        elif self._skipped:
            self.summary.unread = True  # a whole answer longer than the head is not read
        else:
            self._on_whole(head + tail)
        self._counts_from_headers()
        self._error_from_headers()
        self.summary.text = "".join(self._text)
        self.summary.tool_calls.extend(self._tools[i] for i in sorted(self._tools))
        self._tools.clear()
        return self.summary

    def _read_messages(self, data: bytes) -> None:
        messages, used, damaged = split_messages(data)
        if damaged or used < len(data):
            self.summary.unread = True
        for headers, payload in messages:
            self._on_message(headers, payload)

    def _counts_from_headers(self) -> None:
        summary = self.summary
        for name, attribute in (("x-amzn-bedrock-input-token-count", "tokens_in"),
                                ("x-amzn-bedrock-output-token-count", "tokens_out")):
            value = self.headers.get(name, "")
            if getattr(summary, attribute) is None and value.isdigit():
                setattr(summary, attribute, int(value))

    def _error_from_headers(self) -> None:
        kind = self.headers.get("x-amzn-errortype", "").split(":", 1)[0]
        error = self.summary.error
        if kind and (error is None or not error.startswith(kind)):
            self.summary.error = f"{kind}: {error}" if error else kind

    def _on_whole(self, data: bytes) -> None:
        try:
            body = _decode(data) if data else None
        except (msgspec.DecodeError, UnicodeDecodeError):
            self.summary.unread = True
            return
        if not isinstance(body, dict):
            return
        message = body.get("message") if isinstance(body.get("message"), str) else body.get("Message")
        if isinstance(message, str) and "output" not in body and "content" not in body:
            self.summary.error = message  # an error body: {"message": ...}
            return
        self._on_object(body)

    def _on_message(self, headers: dict[str, Any], payload: bytes) -> None:
        kind = headers.get(":message-type")
        try:
            data = _decode(payload) if payload else {}
        except (msgspec.DecodeError, UnicodeDecodeError):
            data = {"message": payload.decode("utf-8", "replace")}
        if kind in ("exception", "error"):
            name = headers.get(":exception-type") or headers.get(":error-code") or "error"
            text = data.get("message") or data.get("Message") if isinstance(data, dict) else None
            text = text or headers.get(":error-message") or ""
            self.summary.error = f"{name}: {text}" if text else str(name)
            return
        if not isinstance(data, dict):
            return
        event_type = headers.get(":event-type")
        if event_type == "chunk":  # InvokeModelWithResponseStream: the model's own JSON, base64'd
            try:
                inner = _decode(base64.b64decode(data.get("bytes") or ""))
            except (binascii.Error, ValueError, msgspec.DecodeError, UnicodeDecodeError, TypeError):
                self.summary.unread = True
                return
            if isinstance(inner, dict):
                self._on_object(inner)
        elif isinstance(event_type, str):
            self._on_object({event_type: data})  # ConverseStream: the event's name is in its header

    def _add_text(self, text: Any) -> None:
        if isinstance(text, str) and text and self._text_size < TEXT_CAP:
            piece = text[: TEXT_CAP - self._text_size]
            self._text.append(piece)
            self._text_size += len(piece)

    def _tool(self, index: Any) -> dict[str, Any]:
        key = index if isinstance(index, int) else len(self._tools)
        return self._tools.setdefault(key, {"id": None, "name": None, "arguments": ""})

    def _usage(self, tokens_in: Any, tokens_out: Any) -> None:
        if _int(tokens_in) is not None:
            self.summary.tokens_in = tokens_in
        if _int(tokens_out) is not None:
            self.summary.tokens_out = tokens_out

    def _on_object(self, data: dict[str, Any]) -> None:
        """One JSON object of any Bedrock shape (they do not collide): a Converse answer or stream
        event, or a vendor's InvokeModel body or stream chunk."""
        self._converse(data)
        self._anthropic(data)
        self._other_vendors(data)
        # Every InvokeModelWithResponseStream ends with Bedrock's own counts: they have the last word
        metrics = data.get("amazon-bedrock-invocationMetrics")
        if isinstance(metrics, dict):
            self._usage(metrics.get("inputTokenCount"), metrics.get("outputTokenCount"))

    def _converse(self, data: dict[str, Any]) -> None:
        """Converse (and Nova's InvokeModel): output.message.content, usage.inputTokens; and
        ConverseStream's events (and Nova's invoke stream chunks), keyed by the event's name."""
        summary = self.summary
        output = data.get("output")
        if isinstance(output, dict) and isinstance(output.get("message"), dict):
            for block in output["message"].get("content") or []:
                if not isinstance(block, dict):
                    continue
                self._add_text(block.get("text"))
                use = block.get("toolUse")
                if isinstance(use, dict):
                    summary.tool_calls.append({"id": use.get("toolUseId"), "name": use.get("name"),
                                               "arguments": _arguments(use.get("input"))})
        usage = data.get("usage")
        if isinstance(usage, dict):
            self._usage(usage.get("inputTokens", usage.get("input_tokens")),
                        usage.get("outputTokens", usage.get("output_tokens")))
        start = data.get("contentBlockStart")
        if isinstance(start, dict) and isinstance(start.get("start"), dict):
            use = start["start"].get("toolUse")
            if isinstance(use, dict):
                tool = self._tool(start.get("contentBlockIndex"))
                tool["id"], tool["name"] = use.get("toolUseId"), use.get("name")
        delta = data.get("contentBlockDelta")
        if isinstance(delta, dict) and isinstance(delta.get("delta"), dict):
            self._add_text(delta["delta"].get("text"))
            use = delta["delta"].get("toolUse")
            if isinstance(use, dict) and isinstance(use.get("input"), str):
                self._tool(delta.get("contentBlockIndex"))["arguments"] += use["input"]
        metadata = data.get("metadata")
        if isinstance(metadata, dict) and isinstance(metadata.get("usage"), dict):
            self._usage(metadata["usage"].get("inputTokens"), metadata["usage"].get("outputTokens"))

    def _anthropic(self, data: dict[str, Any]) -> None:
        """Anthropic messages: content blocks, and the stream's events by "type"."""
        summary = self.summary
        if data.get("type") == "message" and isinstance(data.get("content"), list):
            for block in data["content"]:
                if isinstance(block, dict) and block.get("type") == "text":
                    self._add_text(block.get("text"))
                elif isinstance(block, dict) and block.get("type") == "tool_use":
                    summary.tool_calls.append({"id": block.get("id"), "name": block.get("name"),
                                               "arguments": _arguments(block.get("input"))})
        kind = data.get("type")
        if kind == "message_start" and isinstance(data.get("message"), dict):
            first = data["message"].get("usage")
            if isinstance(first, dict):
                self._usage(first.get("input_tokens"), None)
        elif kind == "content_block_start" and isinstance(data.get("content_block"), dict):
            block = data["content_block"]
            if block.get("type") == "tool_use":
                tool = self._tool(data.get("index"))
                tool["id"], tool["name"] = block.get("id"), block.get("name")
        elif kind == "content_block_delta" and isinstance(data.get("delta"), dict):
            self._add_text(data["delta"].get("text"))
            if isinstance(data["delta"].get("partial_json"), str):
                self._tool(data.get("index"))["arguments"] += data["delta"]["partial_json"]
        elif kind == "error" and isinstance(data.get("error"), dict):
            summary.error = str(data["error"].get("message") or data["error"])

    def _other_vendors(self, data: dict[str, Any]) -> None:
        """Titan, Llama, Mistral and Cohere bodies and stream chunks."""
        # Amazon Titan: inputTextTokenCount, results[].outputText/tokenCount; its stream's outputText
        self._add_text(data.get("outputText"))
        results = data.get("results")
        if isinstance(results, list):
            out = 0
            for result in results:
                if isinstance(result, dict):
                    self._add_text(result.get("outputText"))
                    out += _int(result.get("tokenCount")) or 0
            self._usage(data.get("inputTextTokenCount"), out if results else None)
        else:
            self._usage(data.get("inputTextTokenCount"), data.get("totalOutputTextTokenCount"))
        # Meta Llama: generation, prompt_token_count, generation_token_count
        self._add_text(data.get("generation"))
        self._usage(data.get("prompt_token_count"), data.get("generation_token_count"))
        # Mistral: outputs[].text; Cohere: generations[].text or text
        for key in ("outputs", "generations"):
            for item in data.get(key) or []:
                if isinstance(item, dict):
                    self._add_text(item.get("text"))
