"""Cassettes: a test's whole model exchanges, recorded on the egress path and served back (docs/replay.md).

Recording: the forwarder's ConnectionRecorder (agenttui.sandbox.recorder) hands each finished HTTP
exchange it framed to the Tape attached under the test's container name; the tape keeps the whole
request and response (a stream's chunks in order, with their offsets; an AWS event stream as its
decoded messages, encoded again on replay), drops auth and signature headers and redacts every
text with the test's Redactor. This is apart from the capped, redacted
call kept for display (agenttui.engine.store.calls).

Replay: the forwarder asks `replayer_for(name)`; a Replayer matches each request to a recorded
exchange (the Nth call of an endpoint to its Nth recorded call, else any unused recorded call of
that endpoint with the same normalised request) and the forwarder writes the recorded response.
A miss names the first differing place as a JSON path with both values.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
from dataclasses import dataclass, field
from typing import Any

from agenttui.core.redact import Redactor
from agenttui.sandbox.bedrock_format import EVENTSTREAM, encode_message, split_messages

FORMAT = 1
MODES = ("strict", "new-calls-live")
# Never written to a cassette, whatever their value (lower-case names; any x-amz-* header too).
SECRET_HEADERS = frozenset({
    "authorization", "proxy-authorization", "x-api-key", "api-key", "cookie", "set-cookie",
    "x-goog-api-key", "ocp-apim-subscription-key",
})
# Framing is the forwarder's to write again; the body is stored decoded from it.
FRAMING_HEADERS = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive"})
# Keys of a request body that vary by themselves and are left out of matching, at any depth
# (a cassette's "match": {"ignore_keys": [...]} replaces them).
DEFAULT_IGNORE_KEYS = ("request_id", "timestamp", "created", "user")
MAX_CASSETTE_BYTES = 8 * 1024 * 1024  # what a test's recording keeps (the store holds it until read)


class CassetteError(ValueError):
    """A cassette that cannot be read: the message names the file's problem."""


def secret_header(name: str) -> bool:
    name = name.lower()
    return name in SECRET_HEADERS or name.startswith("x-amz-") or "signature" in name or "token" in name


def kept_headers(headers: list[tuple[str, str]], redact: Redactor) -> dict[str, str]:
    """Headers as a cassette keeps them: no secret header, no framing, none a redaction would change."""
    kept: dict[str, str] = {}
    for name, value in headers:
        name = name.lower()
        if secret_header(name) or name in FRAMING_HEADERS or redact(value) != value:
            continue
        kept[name] = value
    return kept


def redact_json(value: Any, redact: Redactor) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, list):
        return [redact_json(item, redact) for item in value]
    if isinstance(value, dict):
        return {key: redact_json(item, redact) for key, item in value.items()}
    return value


def body_entry(data: bytes, redact: Redactor) -> dict[str, Any]:
    """A request's or an unstreamed response's body: its JSON when it is JSON, else its text."""
    if not data:
        return {}
    text = data.decode("utf-8", "replace")
    try:
        return {"body": redact_json(json.loads(text), redact)}
    except ValueError:
        return {"body_text": redact(text)}


def body_bytes(entry: dict[str, Any]) -> bytes:
    if "body" in entry:
        return json.dumps(entry["body"], ensure_ascii=False).encode()
    return entry.get("body_text", "").encode()


@dataclass
class Recorded:
    """One exchange while it passes: filled by the recorder's framing, then finished into a dict."""

    endpoint: str
    method: str
    path: str
    request_headers: list[tuple[str, str]]
    started_at: float
    request_body: bytearray = field(default_factory=bytearray)
    status: int | None = None
    response_headers: list[tuple[str, str]] = field(default_factory=list)
    chunks: list[tuple[float, bytes]] = field(default_factory=list)

    def entry(self, redact: Redactor) -> dict[str, Any]:
        streamed = _streamed(dict(self.response_headers))
        response: dict[str, Any] = {"status": self.status, "headers": kept_headers(self.response_headers, redact)}
        events = _event_stream(dict(self.response_headers), self.chunks, self.started_at, redact)
        if events is not None:
            response.update(events)
        elif streamed:
            response["chunks"] = [redact(chunk.decode("utf-8", "replace")) for _, chunk in self.chunks]
            response["offsets_s"] = [round(at - self.started_at, 4) for at, _ in self.chunks]
        else:
            response.update(body_entry(b"".join(chunk for _, chunk in self.chunks), redact))
        request = {"headers": kept_headers(self.request_headers, redact), **body_entry(bytes(self.request_body), redact)}
        return {"endpoint": self.endpoint, "method": self.method, "path": self.path, "request": request,
                "response": response}


def _event_stream(headers: dict[str, str], chunks: list[tuple[float, bytes]], started_at: float,
                  redact: Redactor) -> dict[str, Any] | None:
    """An AWS event stream (Bedrock's ConverseStream, InvokeModelWithResponseStream) kept as its
    messages, readable: each message's headers and its JSON payload (a `chunk`'s base64 `bytes`
    decoded as `bytes_json`), redacted like any text, with the offset of the chunk that completed
    it. Replay encodes them again (prelude, CRC32s). None when the answer is not an event stream
    or does not split into whole messages (it is then kept as text chunks)."""
    kind = {k.lower(): v for k, v in headers.items()}.get("content-type", "")
    if kind.split(";", 1)[0].strip().lower() != EVENTSTREAM:
        return None
    data, ends = b"", []
    for at, chunk in chunks:
        data += chunk
        ends.append((len(data), at))
    messages, used, damaged = split_messages(data)
    if damaged or used != len(data):
        return None
    events: list[dict[str, Any]] = []
    offsets: list[float] = []
    position = 0
    for message_headers, payload in messages:
        position += int.from_bytes(data[position:position + 4], "big")  # the message's total length
        events.append(_event_entry(message_headers, payload, redact))
        offsets.append(round(next(at for end, at in ends if end >= position) - started_at, 4))
    return {"events": events, "offsets_s": offsets}


def _event_entry(headers: dict[str, Any], payload: bytes, redact: Redactor) -> dict[str, Any]:
    entry: dict[str, Any] = {"headers": {name: redact(str(value)) for name, value in headers.items()}}
    try:
        body = json.loads(payload.decode("utf-8")) if payload else None
    except ValueError:
        entry["payload_text"] = redact(payload.decode("utf-8", "replace"))
        return entry
    if isinstance(body, dict) and isinstance(body.get("bytes"), str):
        try:  # InvokeModelWithResponseStream: the model's own JSON, base64'd
            inner = json.loads(base64.b64decode(body["bytes"], validate=True))
            body = {**body, "bytes_json": inner}
            del body["bytes"]
        except (binascii.Error, ValueError):
            pass
    entry["payload"] = redact_json(body, redact)
    return entry


def event_bytes(entry: dict[str, Any]) -> bytes:
    """A kept event-stream message encoded again, as the client's decoder reads it."""
    if "payload_text" in entry:
        payload = entry["payload_text"].encode()
    else:
        body = entry.get("payload")
        if isinstance(body, dict) and "bytes_json" in body:
            inner = json.dumps(body["bytes_json"], ensure_ascii=False).encode()
            body = {**{k: v for k, v in body.items() if k != "bytes_json"}, "bytes": base64.b64encode(inner).decode()}
        payload = b"" if body is None else json.dumps(body, ensure_ascii=False).encode()
    return encode_message({str(k): str(v) for k, v in (entry.get("headers") or {}).items()}, payload)


def _streamed(headers: dict[str, str]) -> bool:
    kind = {k.lower(): v for k, v in headers.items()}.get("content-type", "")
    return "event-stream" in kind or "ndjson" in kind or "jsonl" in kind


class Tape:
    """A test's recording: exchanges in the order their responses ended."""

    def __init__(self, redact: Redactor, first: list[dict[str, Any]] | None = None,
                 match: dict[str, Any] | None = None):
        self.redact = redact
        self.exchanges: list[dict[str, Any]] = list(first or [])
        self.match = match
        self.size = 0
        self.cut = False  # past MAX_CASSETTE_BYTES: the rest was not kept
        self._lock = threading.Lock()

    def add(self, exchange: Recorded) -> None:
        entry = exchange.entry(self.redact)
        size = len(json.dumps(entry))
        with self._lock:
            if self.size + size > MAX_CASSETTE_BYTES:
                self.cut = True
                return
            self.size += size
            self.exchanges.append(entry)

    def document(self) -> dict[str, Any]:
        return cassette_document(self.exchanges, self.match)


def cassette_document(exchanges: list[dict[str, Any]], match: dict[str, Any] | None = None) -> dict[str, Any]:
    document: dict[str, Any] = {"agenttui_cassette": FORMAT}
    if match:
        document["match"] = match
    document["exchanges"] = exchanges
    return document


def dumps(document: dict[str, Any]) -> str:
    """The file's text: indented JSON, one key a line, readable in a pull request's diff."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def check_document(document: Any, where: str) -> dict[str, Any]:
    """A cassette as read from a file, checked enough that replay cannot trip on its shape."""
    if not isinstance(document, dict) or document.get("agenttui_cassette") != FORMAT:
        raise CassetteError(f"{where} is not an agenttui cassette (format {FORMAT}); record one with --record")
    exchanges = document.get("exchanges")
    if not isinstance(exchanges, list):
        raise CassetteError(f"{where}: `exchanges` must be a list")
    for index, entry in enumerate(exchanges):
        if not (isinstance(entry, dict) and all(isinstance(entry.get(k), str) for k in ("endpoint", "method", "path"))
                and isinstance(entry.get("request"), dict) and isinstance(entry.get("response"), dict)
                and isinstance(entry["response"].get("status"), int)):
            raise CassetteError(f"{where}: exchanges[{index}] needs endpoint, method, path, request and a response "
                                "with a status")
    match = document.get("match", {})
    if not isinstance(match, dict) or not isinstance(match.get("ignore_keys", []), list):
        raise CassetteError(f"{where}: `match` must be an object whose `ignore_keys` is a list of key names")
    return document


# ------------------------------------------------------------------ matching


def normalised(value: Any, ignore: frozenset[str]) -> Any:
    if isinstance(value, dict):
        return {key: normalised(item, ignore) for key, item in value.items() if key not in ignore}
    if isinstance(value, list):
        return [normalised(item, ignore) for item in value]
    return value


def first_difference(recorded: Any, new: Any, path: str = "") -> tuple[str, Any, Any] | None:
    """The first place where two JSON values differ, as a JSON path (`messages[1].content`), with
    the recorded and the new value there; None when they are equal."""
    if isinstance(recorded, dict) and isinstance(new, dict):
        for key in list(recorded) + [k for k in new if k not in recorded]:
            where = f"{path}.{key}" if path else key
            if key not in new:
                return where, recorded[key], "(absent)"
            if key not in recorded:
                return where, "(absent)", new[key]
            found = first_difference(recorded[key], new[key], where)
            if found:
                return found
        return None
    if isinstance(recorded, list) and isinstance(new, list):
        for index in range(max(len(recorded), len(new))):
            where = f"{path}[{index}]"
            if index >= len(new):
                return where, recorded[index], "(absent)"
            if index >= len(recorded):
                return where, "(absent)", new[index]
            found = first_difference(recorded[index], new[index], where)
            if found:
                return found
        return None
    if recorded != new or type(recorded) is not type(new):
        return path or "(the whole body)", recorded, new
    return None


def _shown(value: Any, limit: int = 200) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass
class Miss:
    message: str


class Replayer:
    """Serves one test's cassette (see the module's docstring). Thread-safe: one lock."""

    def __init__(self, document: dict[str, Any], mode: str, redact: Redactor, realtime: bool = False):
        self.mode = mode
        self.realtime = realtime  # a stream's chunks at their recorded offsets (else as fast as possible)
        self.redact = redact
        self.exchanges: list[dict[str, Any]] = document["exchanges"]
        self.match = document.get("match") or {}
        self.ignore = frozenset(self.match.get("ignore_keys", DEFAULT_IGNORE_KEYS))
        self.used: set[int] = set()
        self.misses: list[str] = []
        self.added: list[dict[str, Any]] = []  # new-calls-live: exchanges recorded live
        self._lock = threading.Lock()

    def _request_key(self, entry_request: dict[str, Any]) -> Any:
        if "body" in entry_request:
            return normalised(entry_request["body"], self.ignore)
        return entry_request.get("body_text", "")

    def find(self, endpoint: str, method: str, path: str, body: bytes) -> dict[str, Any] | Miss:
        new = self._request_key(body_entry(body, self.redact))
        with self._lock:
            same = [i for i, e in enumerate(self.exchanges)
                    if (e["endpoint"], e["method"], e["path"]) == (endpoint, method, path) and i not in self.used]
            for index in same:  # the next recorded call first, then a concurrent call's
                if self._request_key(self.exchanges[index]["request"]) == new:
                    self.used.add(index)
                    return self.exchanges[index]
            if not same:
                total = sum(1 for e in self.exchanges if (e["endpoint"], e["method"], e["path"]) == (endpoint, method, path))
                miss = Miss(f"replay miss: {method} {path} ({endpoint}): the cassette has {total} recorded call(s) "
                            "of it and all were used")
            else:
                recorded = self._request_key(self.exchanges[same[0]]["request"])
                where, old, now = first_difference(recorded, new) or ("(the whole body)", recorded, new)
                nth = sum(1 for i in self.used if self.exchanges[i]["path"] == path) + 1
                miss = Miss(f"replay miss: call {nth} of {method} {path} ({endpoint}) differs from the recording "
                            f"at {where}: recorded {_shown(old)}, now {_shown(now)}")
            self.misses.append(miss.message)
            return miss

    def first_miss(self) -> str | None:
        return self.misses[0] if self.misses else None


def response_parts(entry: dict[str, Any]) -> tuple[int, list[tuple[str, str]], list[bytes], list[float]]:
    """What the forwarder writes back: status, headers (it frames the body itself), body pieces and
    their offsets from the request (a stream's chunks, else one piece)."""
    response = entry["response"]
    headers = [(k, v) for k, v in (response.get("headers") or {}).items()
               if k.lower() not in FRAMING_HEADERS and k.lower() != "content-encoding"]
    if "events" in response:  # an AWS event stream: one HTTP chunk a message
        messages = [event_bytes(event) for event in response["events"]]
        offsets = list(response.get("offsets_s") or [0.0] * len(messages))
        return response["status"], headers, messages, offsets
    if "chunks" in response:
        chunks = [chunk.encode() for chunk in response["chunks"]]
        offsets = list(response.get("offsets_s") or [0.0] * len(chunks))
        return response["status"], headers, chunks, offsets
    return response["status"], headers, [body_bytes(response)], [0.0]


def miss_body(endpoint: str, message: str) -> bytes:
    """The error the agent's client library shows (the provider's own error shape)."""
    if endpoint == "ollama":
        return json.dumps({"error": "agenttui " + message}).encode()
    if endpoint == "bedrock":  # restJson: botocore takes the error's code from __type
        return json.dumps({"__type": "ReplayMiss", "message": "agenttui " + message}).encode()
    return json.dumps({"error": {"message": "agenttui " + message, "type": "replay_miss", "code": "replay_miss"}}).encode()


# ------------------------------------------------------------------ per test, by container name

_tapes: dict[str, Tape] = {}
_replayers: dict[str, Replayer] = {}


def attach_tape(name: str, tape: Tape) -> None:
    _tapes[name] = tape


def tape_for(name: str) -> Tape | None:
    return _tapes.get(name)


def attach_replayer(name: str, replayer: Replayer) -> None:
    _replayers[name] = replayer


def replayer_for(name: str) -> Replayer | None:
    return _replayers.get(name)


def detach(name: str) -> None:
    _tapes.pop(name, None)
    _replayers.pop(name, None)
