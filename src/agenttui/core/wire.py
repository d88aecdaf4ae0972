"""What crosses the server's socket: one definition for the server that encodes it and the
client that decodes it (msgspec, over these dataclasses).

Test views, the queue, log entries and the follow stream are defined here; a package's answer
is PackageAnswer over agenttui.packaging.PackageResult. Dataclasses rather than pydantic
models: the headless client decodes them, and pydantic would cost it ~100 ms of start-up. The
engine is their only source. A newer server may send fields an older client does not know:
decoding ignores them.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Annotated, Any, Generic, TypeVar, Union

import msgspec

from agenttui.core.lifecycle import Priority, Status

T = TypeVar("T")
R = TypeVar("R")


HIDDEN_CONTENT = "(hidden: not your test)"  # shown for the content of another user's test


@dataclass
class TestView:
    __test__ = False

    id: int
    status: Status
    owner_name: str
    owner_uid: int
    priority: str
    query: str
    provider: str
    model_id: str
    attempt: int
    parent_id: int | None
    created_at: float
    claimed_at: float | None
    running_at: float | None
    finished_at: float | None
    exit_code: int | None
    oom_killed: bool
    failure_kind: str | None
    error: str | None
    response: str | None
    metrics: dict[str, Any]
    log_lines: int
    log_truncated: bool
    cancel_requested: bool
    packages: list[dict[str, Any]] = field(default_factory=list)  # deployment packages: path, size, created_at
    # {distribution: version} the test image's requirements step installed (pip freeze at its build).
    installed: dict[str, str] = field(default_factory=dict)
    position: int | None = None  # 1-based place in the queue when QUEUED
    eta_s: float | None = None  # estimated wait before it starts
    # Another user's test seen without its content (query, response, error, packages): the
    # server's setting share_test_content is off and the caller is neither owner nor admin.
    content_hidden: bool = False
    model_calls: CallTotals | None = None  # its recorded model calls summed (`show` fills it)
    # live | recorded (`submit --record`) | replayed (`submit --replay`, docs/replay.md)
    model_traffic: str = "live"

    def to_json(self) -> dict[str, Any]:
        return to_builtins(self)

    def traffic_note(self) -> str:
        """How its model calls ran, for `show` and the TUI's details (docs/replay.md)."""
        if self.model_traffic == "replayed":
            mode = self.metrics.get("replay_mode")
            added = self.metrics.get("cassette_added")
            return "replayed from a cassette" + (f" ({mode}" + (f", {added} new call(s) recorded live" if added else "")
                                                 + ")" if mode else "")
        if self.model_traffic == "recorded":
            return "recorded to a cassette (live calls)"
        return "live"

    @property
    def duration_s(self) -> float | None:
        wall = self.metrics.get("wall_s")
        if wall is not None:
            return wall
        if self.running_at and self.finished_at:
            return round(self.finished_at - self.running_at, 3)
        return None

    @classmethod
    def from_record(cls, test: Any, *, position: int | None = None, eta_s: float | None = None) -> TestView:
        """The view of a stored test (an agenttui.engine.store.TestRecord, or a row of its table)."""
        request = json.loads(test.request_json)
        metrics = json.loads(test.metrics_json) if test.metrics_json else {}
        return cls(
            id=test.id or 0,
            status=Status(test.status),
            owner_name=test.owner_name,
            owner_uid=test.owner_uid,
            priority=Priority(test.priority).name.lower(),
            query=test.query,
            provider=request.get("provider", {}).get("name", ""),
            model_id=request.get("provider", {}).get("model_id", ""),
            attempt=test.attempt,
            parent_id=test.parent_id,
            created_at=test.created_at,
            claimed_at=test.claimed_at,
            running_at=test.running_at,
            finished_at=test.finished_at,
            exit_code=test.exit_code,
            oom_killed=test.oom_killed,
            failure_kind=test.failure_kind,
            error=test.error,
            response=test.response,
            # A recorded cassette is its owner's (`trace` serves it), never part of the view.
            metrics={k: v for k, v in metrics.items() if k not in ("installed", "cassette")},
            installed=dict(metrics.get("installed") or {}),
            log_lines=test.log_seq,
            log_truncated=test.log_truncated,
            cancel_requested=test.cancel_requested,
            position=position,
            eta_s=eta_s,
            model_traffic="replayed" if request.get("replay") else "recorded" if request.get("record") else "live",
        )

    def without_content(self) -> TestView:
        """This view as users other than its owner and the admins see it: metadata only."""
        return dataclasses.replace(self, query="", response=None, error=None, packages=[], content_hidden=True)

    def summary(self) -> dict[str, Any]:
        """The headless `--json` record (R-25)."""
        return {
            "id": self.id,
            "status": self.status.value,
            "owner": self.owner_name,
            "query": self.query,
            "response": self.response,
            "error": self.error,
            "failure_kind": self.failure_kind,
            "exit_code": self.exit_code,
            "oom_killed": self.oom_killed,
            "duration_s": self.duration_s,
            "attempt": self.attempt,
            "parent_id": self.parent_id,
            "metrics": self.metrics,
            "log_truncated": self.log_truncated,
            "packages": self.packages,
            "installed": self.installed,
            "model_traffic": self.model_traffic,
        }


@dataclass
class CallTotals:
    """A test's recorded model calls summed (docs/recorder.md). Tokens and cost sum what the
    providers reported: None when no call reported any ("unmeasured", never 0)."""

    calls: int
    tokens_in: int | None = None
    tokens_out: int | None = None
    cost_usd: float | None = None
    unmeasured: int = 0  # calls whose cost is unknown (no token counts, or no price for the model)
    model_s: float = 0.0  # the calls' time, first request byte to last response byte, summed
    connections: int = 0  # other connections: not plain HTTP (bytes and timing only), or refused
    truncated: bool = False  # model_calls_max was reached: later calls were not stored

    def cost_text(self) -> str:
        if self.cost_usd is None:
            return "unmeasured"
        text = f"${self.cost_usd:.6f}"
        return text + (f" (+{self.unmeasured} unmeasured)" if self.unmeasured else "")

    def line(self) -> str:
        tokens = "unmeasured" if self.tokens_in is None else f"{self.tokens_in} in / {self.tokens_out or 0} out"
        more = f", {self.connections} other connection(s)" if self.connections else ""
        cut = " (stored up to model_calls_max)" if self.truncated else ""
        return (f"{self.calls} call(s){cut}, tokens {tokens}, cost {self.cost_text()}, "
                f"model time {self.model_s:.2f} s{more}")


@dataclass
class ModelCallView:
    """One recorded model call (kind "call"), unread connection ("connection") or the cap's notice
    ("truncated"), as clients see it: texts redacted and capped when stored."""

    seq: int
    attempt: int
    kind: str
    provider: str
    model: str | None
    method: str | None
    path: str | None
    status: int | None
    streamed: bool
    started_at: float
    duration_s: float
    first_byte_s: float | None
    tokens_in: int | None
    tokens_out: int | None
    cost_usd: float | None
    tool_calls: list[dict[str, Any]]
    request: str | None
    response: str | None
    error: str | None
    bytes_up: int
    bytes_down: int

    @classmethod
    def from_record(cls, record: Any) -> ModelCallView:
        """The view of a stored call (an agenttui.engine.store.ModelCallRecord)."""
        try:
            tools = json.loads(record.tool_calls_json) if record.tool_calls_json else []
        except ValueError:  # cut by model_call_text_max
            tools = [{"name": None, "arguments": record.tool_calls_json}]
        return cls(
            seq=record.seq, attempt=record.attempt, kind=record.kind, provider=record.provider, model=record.model,
            method=record.method, path=record.path, status=record.status, streamed=bool(record.streamed),
            started_at=record.started_at, duration_s=round(record.ended_at - record.started_at, 6),
            first_byte_s=record.first_byte_s, tokens_in=record.tokens_in, tokens_out=record.tokens_out,
            cost_usd=record.cost_usd, tool_calls=tools, request=record.request_text, response=record.response_text,
            error=record.error, bytes_up=record.bytes_up, bytes_down=record.bytes_down,
        )


@dataclass
class TraceView:
    """`agenttui trace`: a test's model calls, oldest first, and their totals."""

    test_id: int
    calls: list[ModelCallView]
    totals: CallTotals | None = None  # None: nothing was recorded
    note: str | None = None  # why calls may be missing (egress full, a backend without the recorder)
    # `submit --record` (or a replay's new-calls-live): the cassette document its owner's submit writes.
    cassette: dict[str, Any] | None = None


@dataclass
class LogEntry:
    """One stored log line, as clients see it."""

    test_id: int
    seq: int
    ts: float
    stream: str  # stdout | stderr | system | build
    text: str
    attempt: int = 0  # the attempt that wrote it (0: stored before lines were marked)

    @classmethod
    def from_record(cls, record: Any) -> LogEntry:
        """The entry of a stored line (an agenttui.engine.store.LogRecord)."""
        return cls(
            test_id=record.test_id, seq=record.seq, ts=record.ts, stream=record.stream, text=record.text,
            attempt=record.attempt,
        )


@dataclass
class QueueView:
    running: int
    queued: int
    cap: int
    utilization: float
    tests: list[TestView]  # active first, then queued in claim order
    store_problem: str | None = None  # why the engine is stalled, e.g. the store's disk is full

    def to_json(self) -> dict[str, Any]:
        return to_builtins(self)

    @classmethod
    def build(cls, status: Any, tests: list[TestView]) -> QueueView:
        """The queue from the store's counts (an agenttui.engine.store.QueueStatus)."""
        return cls(
            running=status.running, queued=status.queued, cap=status.cap, utilization=status.utilization, tests=tests,
            store_problem=status.store_problem,
        )


@dataclass
class Caller:
    uid: int
    name: str


@dataclass
class Health:
    """The server's answer to "are you there": who it thinks the caller is, and what it runs."""

    ok: bool = True
    you: Caller | None = None
    version: str | None = None
    build: str | None = None  # a client replaces its personal server when this is not its own
    pid: int | None = None  # absent from a server too old to say
    # Its settings, each as settings_digest(value), told to the server's own user alone: a
    # client compares them with its own to say which differ (absent from an older server).
    settings: dict[str, str] | None = None


def settings_digest(value: Any) -> str:
    """A setting's value as both sides compare it: a digest of its JSON, so an answer never
    carries a value itself (a store URL's password)."""
    import hashlib

    return hashlib.sha256(encode(value)).hexdigest()[:16]


@dataclass
class ServerStatus:
    """`GET /v1/server`'s answer (the server's own user and admins only): what
    `agenttui server status` prints."""

    pid: int
    version: str
    build: str
    started_at: float
    uptime_s: float
    socket_path: str
    owner: Caller  # the user the server runs as
    personal: bool  # a personal server (no socket_path setting) rather than a shared one
    backend: str
    store: str  # its URL, the password hidden
    tests_running: int
    tests_queued: int
    cap: int


@dataclass
class Archived:
    archived: int  # how many finished tests clearing the history archived


@dataclass
class FollowEnd:
    """The follow stream's last record: the test has ended, and this is its final view."""

    end: bool
    test: TestView | None = None  # absent from an older server's stream


@dataclass
class ErrorAnswer:
    """An API error's body; `kind` is a row of agenttui.core.errors."""

    error: str = ""
    kind: str = ""
    fields: dict[str, str] | None = None  # each bad field of an invalid request


# What a client sends: each call's body. Every bound is checked as the body is decoded, so
# nothing out of range reaches the engine or the store (an answer of 400 naming the field).
MAX_ID = 2**63 - 1  # the largest integer SQLite and PostgreSQL store
MAX_JSON_DEPTH = 32  # a request nests ~4 deep; deeper is an attack on the decoders' stacks
TestId = Annotated[int, msgspec.Meta(ge=1, le=MAX_ID, description="a test's id")]
# The absolute folder a package is written into: recorded only, never opened by the server.
OutDir = Annotated[str, msgspec.Meta(min_length=1, max_length=4096, pattern=r"^/[^\x00]*$")]


@dataclass
class SubmitBody:
    request: dict[str, Any]  # the request's fields, validated by the engine (InvalidRequest)
    parent_id: TestId | None = None
    check_backend: bool = False  # check the backend after validating, before queueing


@dataclass
class SubmitManyBody:
    """Many tests in one call: each entry of `tests` holds the fields it sets over `common`
    (e.g. only its query); all are validated before any is queued."""

    tests: list[dict[str, Any]]
    common: dict[str, Any] = field(default_factory=dict)


@dataclass
class SubmittedMany:
    ids: list[TestId]  # in the order of the call's tests


@dataclass
class RetryBody:
    query: str | None = None
    agent_code: str | None = None
    secrets: dict[str, str] | None = None  # resolved on the caller's side (docs/providers.md)
    budget: dict[str, float | int] | None = None  # budgets laid over the original's (docs/recorder.md)


@dataclass
class PackageBody:
    # The absolute folder the client will write the zip into, recorded with the test; the
    # server never writes there (nor anywhere a client names).
    out_dir: OutDir | None = None


@dataclass
class PackageAnswer(Generic[R]):
    """`POST /v1/tests/{id}/package`'s answer: the package's description (R: an
    agenttui.packaging.PackageResult, whose `path` is the zip's file name) and the zip itself
    (base64 in the JSON). The client writes the file, with its own rights."""

    result: R
    zip: bytes


@dataclass
class ClearHistoryBody:
    older_than_s: Annotated[float, msgspec.Meta(ge=0)]


# A followed log is NDJSON: lines that are each a batch (a JSON array), then one FollowEnd.
FollowRecord = Union[list[LogEntry], FollowEnd]
NDJSON = "application/x-ndjson"


def _encode_extra(value: Any) -> Any:
    if isinstance(value, PurePath):
        return str(value)
    raise NotImplementedError(f"cannot encode {type(value).__name__}")


def _decode_extra(kind: type, value: Any) -> Any:
    if isinstance(kind, type) and issubclass(kind, PurePath) and isinstance(value, str):
        return kind(value)
    raise NotImplementedError(f"cannot decode {kind}")


_encoder = msgspec.json.Encoder(enc_hook=_encode_extra)
_decoders: dict[Any, msgspec.json.Decoder[Any]] = {}


def encode(value: Any) -> bytes:
    """JSON bytes of any wire value (dataclasses, lists, dicts, enums, paths)."""
    return _encoder.encode(value)


def decode(data: bytes | str, kind: type[T] | Any = Any) -> T:
    """`data` decoded as `kind`; msgspec.ValidationError when it does not fit."""
    decoder = _decoders.get(kind)
    if decoder is None:
        decoder = _decoders[kind] = msgspec.json.Decoder(kind, dec_hook=_decode_extra)
    return decoder.decode(data)


# A JSON string (skipped whole: brackets inside it do not count) or a bracket.
_JSON_TOKENS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)


def too_deep(data: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether JSON `data` nests arrays and objects deeper than `limit` (checked before
    decoding: the decoders recurse once a level)."""
    depth = 0
    for token in _JSON_TOKENS.finditer(data):
        char = token.group()[0]
        if char in b"[{":
            depth += 1
            if depth > limit:
                return True
        elif char in b"]}":
            depth -= 1
    return False


def to_builtins(value: Any) -> Any:
    """A wire value as plain dicts and lists (for `--json` output)."""
    return msgspec.to_builtins(value, enc_hook=_encode_extra)
