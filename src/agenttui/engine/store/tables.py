"""The store's schema: SQLModel tables (the migrations in migrations/ create them).

TestRecord is also what callers get back: detached rows, built without validation (see
records.py). A log's lines are stored in chunks (chunks.py); callers get wire LogEntry objects."""

from __future__ import annotations

import functools
import json
from typing import Any

from sqlalchemy import Index
from sqlmodel import AutoString, Field, SQLModel

from agenttui.core.domain import Status, TestRequest


class StoreMeta(SQLModel, table=True):
    __tablename__ = "store_meta"
    key: str = Field(primary_key=True)
    value: str


class TestRecord(SQLModel, table=True):
    """One test: its request, where it is in its life cycle, who runs it, what it produced."""

    __test__ = False
    __tablename__ = "tests"
    __table_args__ = (
        Index("ix_tests_queue", "status", "priority", "queued_at", "id"),
        # The claim's reads (see _next_in_line): waiting users, each user's line and
        # running count, and when each user was last served.
        Index("ix_tests_owner_queue", "owner_uid", "status", "priority", "queued_at", "id"),
        Index("ix_tests_owner_claimed", "owner_uid", "claimed_at"),
        # Newest first within one status (and one owner's): history pages, the queue's active
        # tests and the ETA's recent durations read only the rows they return. The claim's
        # waiting users and running counts read the second.
        Index("ix_tests_status", "status", "id"),
        Index("ix_tests_status_owner", "status", "owner_uid", "id"),
        # An id is never handed out twice, even after the newest tests were deleted: a
        # test's id names its containers (migration 0003).
        {"sqlite_autoincrement": True},
    )

    id: int | None = Field(default=None, primary_key=True)
    request_json: str
    query: str
    status: Status = Field(default=Status.QUEUED, sa_type=AutoString)
    priority: int = 2
    owner_uid: int = Field(index=True)
    owner_name: str
    parent_id: int | None = Field(default=None, index=True)
    attempt: int = 0  # execution attempt: incremented by every claim from QUEUED
    backend: str = "docker"
    handle: str | None = None  # container id / task ARN of the current attempt
    image: str | None = None
    log_cursor: str | None = None  # backend's resume position of the log stream
    lease_owner: str | None = Field(default=None, index=True)
    lease_expires_at: float | None = None
    cancel_requested: bool = False
    cancel_requested_at: float | None = None
    created_at: float
    queued_at: float | None = None
    claimed_at: float | None = None
    running_at: float | None = None
    finished_at: float | None = None
    deadline_at: float | None = None  # when RUNNING must end (timeout), survives adoption
    next_attempt_at: float | None = None  # backoff of an infrastructure retry
    exit_code: int | None = None
    oom_killed: bool = False
    failure_kind: str | None = None
    error: str | None = None
    response: str | None = None
    result_json: str | None = None  # the harness record, saved as soon as it is seen
    result_nonce: str | None = None  # per-attempt secret marking the harness record
    metrics_json: str | None = None
    log_seq: int = 0
    log_bytes: int = 0
    log_truncated: bool = False
    updated_at: float

    @property
    def request(self) -> TestRequest:
        return _parse_request(self.request_json)

    @property
    def metrics(self) -> dict[str, Any]:
        return json.loads(self.metrics_json) if self.metrics_json else {}

    @property
    def result(self) -> dict[str, Any] | None:
        return json.loads(self.result_json) if self.result_json else None


@functools.lru_cache(maxsize=32)
def _parse_request(request_json: str) -> TestRequest:
    # A request (frozen) is read several times a test; parsing checks the agent's syntax.
    # 32 covers the running tests at the default cap; each holds at most ~0.25 MB.
    return TestRequest.model_validate_json(request_json)


class LogChunkRecord(SQLModel, table=True):
    """Consecutive lines of one test's log, lines first_seq..last_seq, stored together as
    chunks.py packs them (the JSON of their entries, compressed): one row per append."""

    __tablename__ = "log_chunks"
    test_id: int = Field(primary_key=True)
    last_seq: int = Field(primary_key=True)  # readers start at the first chunk ending past where they are
    first_seq: int
    attempt: int  # the attempt that wrote its lines
    data: bytes


class ClaimRecord(SQLModel, table=True):
    """Audit of every claim with the active count seen inside the claim transaction."""

    __tablename__ = "claims"
    id: int | None = Field(default=None, primary_key=True)
    test_id: int
    owner: str
    attempt: int
    active_after: int
    cap: int
    ts: float


class PackageRecord(SQLModel, table=True):
    """A deployment package generated from a test (R-21, R-23)."""

    __tablename__ = "packages"
    id: int | None = Field(default=None, primary_key=True)
    test_id: int = Field(index=True)
    owner_uid: int
    path: str
    size: int
    created_at: float
    s3_key: str | None = None
    url_expires_at: float | None = None


class TestSecretRecord(SQLModel, table=True):
    """A queued or running test's secret values, sealed (agenttui.core.secrets: encrypted with a key
    kept outside the store). Deleted when the test ends; the request itself keeps names only."""

    __test__ = False
    __tablename__ = "test_secrets"
    test_id: int = Field(primary_key=True)
    sealed: str


class ModelCallRecord(SQLModel, table=True):
    """One model call a test's agent made through its tunnel, or one connection the recorder could
    not read (kind "connection"): redacted, capped, priced when written (docs/recorder.md)."""

    __tablename__ = "model_calls"
    __table_args__ = (Index("ux_model_calls_test_seq", "test_id", "seq", unique=True),)

    id: int | None = Field(default=None, primary_key=True)
    test_id: int
    seq: int
    attempt: int
    kind: str  # call | connection | truncated (the per-test cap was reached)
    provider: str
    method: str | None = None
    path: str | None = None
    model: str | None = None
    status: int | None = None
    streamed: bool = False
    started_at: float
    first_byte_s: float | None = None  # from the start
    ended_at: float
    tokens_in: int | None = None  # None: the provider did not say (unmeasured), never 0
    tokens_out: int | None = None
    cost_usd: float | None = None  # None: unmeasured
    tool_calls_json: str | None = None
    request_text: str | None = None
    response_text: str | None = None
    error: str | None = None
    bytes_up: int = 0
    bytes_down: int = 0


TESTS = TestRecord.__table__  # type: ignore[attr-defined]
SECRETS = TestSecretRecord.__table__  # type: ignore[attr-defined]
LOGS = LogChunkRecord.__table__  # type: ignore[attr-defined]
CLAIMS = ClaimRecord.__table__  # type: ignore[attr-defined]
PACKAGES = PackageRecord.__table__  # type: ignore[attr-defined]
META = StoreMeta.__table__  # type: ignore[attr-defined]
CALLS = ModelCallRecord.__table__  # type: ignore[attr-defined]


class SuiteRunRecord(SQLModel, table=True):
    """One run of a suite (docs/suites.md): what was run, by whom; the suite as parsed (its cases
    and assertions as JSON) so resuming or showing it never reads the file again."""

    __tablename__ = "suite_runs"
    # A run's id is never handed out twice: reports and baselines name runs by it.
    __table_args__ = (Index("ix_suite_runs_name", "name", "id"), {"sqlite_autoincrement": True})

    id: int | None = Field(default=None, primary_key=True)
    name: str
    suite_digest: str
    agent_digest: str
    created_at: float
    owner_uid: int = Field(index=True)
    owner_name: str
    repeat: int
    suite_json: str


class SuiteTestRecord(SQLModel, table=True):
    """A run's case × repeat and the test that runs it now (None: not submitted yet; a resume
    replaces a cancelled or infrastructure-failed test's id)."""

    __tablename__ = "suite_tests"
    run_id: int = Field(primary_key=True)
    case_id: str = Field(primary_key=True)
    repeat: int = Field(primary_key=True)
    test_id: int | None = None


class SuiteBaselineRecord(SQLModel, table=True):
    """The run every later run of a suite (by name) is compared with (`agenttui suite bless`)."""

    __tablename__ = "suite_baselines"
    name: str = Field(primary_key=True)
    run_id: int
    blessed_at: float


SUITE_RUNS = SuiteRunRecord.__table__  # type: ignore[attr-defined]
SUITE_TESTS = SuiteTestRecord.__table__  # type: ignore[attr-defined]
SUITE_BASELINES = SuiteBaselineRecord.__table__  # type: ignore[attr-defined]
