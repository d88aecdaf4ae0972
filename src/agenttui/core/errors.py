"""Failures every layer reports, and the one table of how each error and outcome is told.

Light enough for the headless client (agenttui.backends.base and agenttui.core.config re-export
the failures). Every HTTP status, JSON `kind` and CLI exit code is defined here: the server
answers with them (agenttui.server.api), the socket client turns them back into exceptions
(agenttui.client.remote), and the CLI exits with them (agenttui.cli).
"""

from __future__ import annotations

from typing import NamedTuple

from agenttui.core.lifecycle import FailureKind, InvalidRequest, Status


class InfraError(Exception):
    """The infrastructure failed (engine unreachable, build broken by the network, task failed
    to start). The orchestrator retries these with backoff (R-8)."""


class ConfigurationError(InfraError):
    """An infrastructure failure that retrying cannot fix: the set-up is wrong (a CA bundle the
    build's TLS does not trust, a model endpoint down under strict preflight). The test fails at
    once, as an infrastructure failure (exit 3), with the fix in the message."""


class BuildError(Exception):
    """The user's build failed (bad requirement, broken Dockerfile): not retried.
    `log` holds the build output worth showing."""

    def __init__(self, message: str, log: str = ""):
        super().__init__(message)
        self.log = log


class SettingsError(Exception):
    """A setting has a bad value; the message names the setting and the source to fix."""


class NotFound(LookupError):
    def __init__(self, test_id: int | str):
        message = test_id if isinstance(test_id, str) else f"no test with id {test_id}; `agenttui history` lists them"
        super().__init__(message)


class AccessDenied(PermissionError):
    pass


class NotActionable(ValueError):
    """The request makes no sense in the test's state (cancel a finished test, ...)."""


class BadRequest(RuntimeError):
    """A call the API cannot parse (a client's bug, never the user's input)."""


class Code(NamedTuple):
    """How one error or outcome is told: the JSON `kind`, the HTTP status of an API answer
    that carries it (None: it is never an API answer) and the CLI exit code."""

    kind: str
    http: int | None
    exit: int
    reserved_for: str = ""  # the feature (of another issue) that will use a code defined ahead

    @property
    def status(self) -> int:
        """The HTTP status to answer with (an internal error for a code that is never an answer)."""
        return self.http if self.http is not None else 500


# Answers that went well: a call answered, a test queued (`agenttui submit --no-wait` exits here).
OK = Code("ok", 200, 0)
QUEUED = Code("queued", 201, 0)
# Outcomes of a test, as `agenttui submit` (and the commands that wait) exit.
AGENT_FAILED = Code("agent_failed", None, 1)
TIMED_OUT = Code("timed_out", None, 4)
CANCELLED = Code("cancelled", None, 5)
# Errors: the user asked for something impossible (exit 2), or the infrastructure failed (exit 3).
INVALID_REQUEST = Code("invalid_request", 422, 2)
BAD_REQUEST = Code("bad_request", 400, 2)
NOT_FOUND = Code("not_found", 404, 2)
ACCESS_DENIED = Code("access_denied", 403, 2)
NOT_ACTIONABLE = Code("not_actionable", 409, 2)
BAD_SETTING = Code("bad_setting", None, 2)
INFRA = Code("infra", 503, 3)
# A submit asked for the client's own build (agenttui.core.wire_headers) and the personal server runs
# other code: the client replaces its server and submits again (the user never sees it).
SERVER_OUTDATED = Code("server_outdated", 409, 3)
# The server refuses a connection: its user already holds too many (agenttui.server.guard).
TOO_MANY_CONNECTIONS = Code("too_many_connections", 429, 3)
INTERNAL = Code("internal", 500, 1)  # a bug: the CLI shows its traceback, and Python exits 1
# Interrupted (Ctrl-C): the shell's convention, 128 + SIGINT. `agenttui submit` only detaches: the
# test keeps running on the server.
DETACHED = Code("detached", None, 130)
# `agenttui server status` finds no server: 3, as `systemctl status` says of a unit that is not running.
NOT_RUNNING = Code("not_running", None, 3)
# The reader of the output went away (`agenttui history | head -1`): 128 + SIGPIPE, as `git log` ends.
OUTPUT_CLOSED = Code("output_closed", None, 141)
# A budget of the test (--max-cost, --max-tokens, --max-model-calls) was used up: the forwarder refused
# a model call (docs/recorder.md).
BUDGET_EXHAUSTED = Code("budget_exhausted", None, 7)
REGRESSIONS_FOUND = Code("regressions_found", None, 8)  # `agenttui suite run`: a case regressed (docs/suites.md)
# `submit --replay` in strict mode: the agent made a model call its cassette did not record (docs/replay.md).
REPLAY_MISS = Code("replay_miss", None, 9)

CODES = (
    OK, QUEUED, AGENT_FAILED, TIMED_OUT, CANCELLED, INVALID_REQUEST, BAD_REQUEST, NOT_FOUND, ACCESS_DENIED,
    NOT_ACTIONABLE, BAD_SETTING, INFRA, INTERNAL, DETACHED, OUTPUT_CLOSED, BUDGET_EXHAUSTED, REGRESSIONS_FOUND, REPLAY_MISS,
    TOO_MANY_CONNECTIONS, NOT_RUNNING, SERVER_OUTDATED,
)

# Each error a call can fail with, most specific first (isinstance decides).
ERRORS: tuple[tuple[type[Exception], Code], ...] = (
    (NotFound, NOT_FOUND),
    (AccessDenied, ACCESS_DENIED),
    (NotActionable, NOT_ACTIONABLE),
    (InvalidRequest, INVALID_REQUEST),
    (BadRequest, BAD_REQUEST),
    (SettingsError, BAD_SETTING),
    (InfraError, INFRA),
    (InfraError, TOO_MANY_CONNECTIONS),  # told before any handler runs: a client takes it for an InfraError
)


def code_of(error: BaseException) -> Code | None:
    """The table's row for an error, or None for an error it does not know."""
    for error_type, code in ERRORS:
        if isinstance(error, error_type):
            return code
    return None


def error_of(kind: str | None, message: str, fields: dict[str, str] | None = None) -> Exception:
    """The exception an API answer of `kind` stands for (the inverse of `code_of`)."""
    for error_type, code in ERRORS:
        if code.kind == kind:
            if error_type is InvalidRequest:
                return InvalidRequest(fields or {"request": message})
            return error_type(message)
    return RuntimeError(message)


def outcome_of(status: Status, failure_kind: str | None) -> Code:
    """The outcome of a finished test (its exit code)."""
    if status is Status.COMPLETED:
        return OK
    if status is Status.TIMED_OUT:
        return TIMED_OUT
    if status is Status.CANCELLED:
        return CANCELLED
    if failure_kind == FailureKind.INFRA.value:
        return INFRA
    if failure_kind == FailureKind.REPLAY_MISS.value:
        return REPLAY_MISS
    if failure_kind == FailureKind.BUDGET.value:
        return BUDGET_EXHAUSTED
    return AGENT_FAILED
