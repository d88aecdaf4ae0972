"""The socket API as an OpenAPI 3.1 document, generated from the wire schema (agenttui.core.wire).

One table of operations (OPERATIONS) both routes the server (agenttui.server.api) and describes
it, so the document cannot drift from what is served; `GET /v1/openapi.json` serves it, and the
suite fuzzes a real server against it (tests/server/test_api_fuzz.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import PurePath
from typing import Any

import msgspec

from agenttui import __version__
from agenttui.core.wire import (
    MAX_ID, NDJSON, Archived, ClearHistoryBody, ErrorAnswer, Health, LogEntry, PackageAnswer, PackageBody,
    QueueView, RetryBody, ServerStatus, SubmitBody, SubmitManyBody, SubmittedMany, TestView,
)
from agenttui.core.wire import TraceView
from agenttui.core.suite_wire import SuiteResumeBody, SuiteRunBody, SuiteRunView
from agenttui.packaging import PackageResult

API_PREFIX = "/v1"
_COUNT = {"type": "integer", "minimum": 0, "maximum": MAX_ID}


@dataclass(frozen=True)
class Param:
    name: str
    schema: dict[str, Any]
    description: str


AFTER = Param("after", _COUNT, "only the lines after this line number")
LIMIT = Param("limit", _COUNT, "at most this many (0: no limit for logs; history keeps at most 1000)")
FOLLOW = Param("follow", {"type": "boolean"}, f"stream the test's log as {NDJSON} until it ends")
STREAM = Param("stream", {"type": "boolean"}, f"stream the test's log so far as {NDJSON} (a whole log never comes as one answer)")
SEARCH = Param("search", {"type": "string", "maxLength": 1000}, "only tests whose text contains this")
MINE = Param("mine", {"type": "boolean"}, "only the caller's own tests")


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # below API_PREFIX; `{test_id}` is a test's id
    handler: str  # the agenttui.server.api.Api method that serves it
    summary: str
    answer: Any  # the wire type of its answer
    status: int = 200
    body: Any = None  # the wire type of its body (None: it takes none)
    query: tuple[Param, ...] = ()
    streams: bool = False  # with ?follow=true it answers NDJSON


OPERATIONS: tuple[Operation, ...] = (
    Operation("GET", "/health", "health", "who the server thinks the caller is, and what it runs", Health),
    Operation("POST", "/check", "check", "check that the backend can run tests", dict[str, bool]),
    Operation("POST", "/tests", "submit", "queue a test", TestView, 201, SubmitBody, (FOLLOW,), streams=True),
    Operation("POST", "/tests/many", "submit_many", "queue many tests at once, all or none", SubmittedMany, 201,
              SubmitManyBody),
    Operation("GET", "/tests/{test_id}", "show", "a test", TestView),
    Operation("GET", "/tests/{test_id}/request", "request_of", "a test's request (its owner's)", dict[str, Any]),
    Operation("GET", "/tests/{test_id}/trace", "trace", "a test's recorded model calls and their totals (its owner's)",
              TraceView, query=(Param("after", _COUNT, "only the calls after this one (its seq)"),)),
    Operation("POST", "/tests/{test_id}/cancel", "cancel", "cancel a queued or running test", TestView),
    Operation("POST", "/tests/{test_id}/retry", "retry", "a new test from a test's request", TestView, 201,
              RetryBody),
    Operation("GET", "/tests/{test_id}/logs", "logs", "a test's log lines", list[LogEntry],
              query=(AFTER, LIMIT, FOLLOW, STREAM), streams=True),
    Operation("POST", "/tests/{test_id}/package", "package", "a test's deployment package (the zip, base64)",
              PackageAnswer[PackageResult], body=PackageBody),
    Operation("POST", "/suite-runs", "create_suite_run", "store a suite run and queue its tests, all or none",
              SuiteRunView, 201, SuiteRunBody),
    Operation("GET", "/suite-runs", "suite_runs", "suite runs, newest first (with baseline=true: a suite's baseline)",
              list[SuiteRunView], query=(Param("name", {"type": "string", "maxLength": 1000}, "only this suite's runs"),
                                         Param("baseline", {"type": "boolean"}, "only the baseline of the suite `name`"),
                                         LIMIT)),
    Operation("GET", "/suite-runs/{run_id}", "suite_run", "a suite run, its case × repeat slots and their tests",
              SuiteRunView),
    Operation("POST", "/suite-runs/{run_id}/resume", "resume_suite_run",
              "queue tests for the slots of a run that did not finish", SuiteRunView, body=SuiteResumeBody),
    Operation("POST", "/suite-runs/{run_id}/bless", "bless_suite_run", "make a run the baseline of its suite",
              SuiteRunView),
    Operation("GET", "/queue", "queue", "the shared queue: active tests, then queued ones", QueueView),
    Operation("GET", "/history", "history", "finished tests, newest first", list[TestView],
              query=(SEARCH, LIMIT, MINE)),
    Operation("POST", "/history/clear", "clear_history", "archive finished tests older than a time", Archived,
              body=ClearHistoryBody),
    Operation("GET", "/server", "server_status", "the server's process, store and load (its own user and admins "
              "only)", ServerStatus),
    Operation("POST", "/shutdown", "shutdown", "stop the server (its own user and admins only)", dict[str, bool]),
    Operation("GET", "/openapi.json", "openapi", "this document", dict[str, Any]),
)


def _schema_hook(kind: Any) -> dict[str, Any]:
    if isinstance(kind, type) and issubclass(kind, PurePath):
        return {"type": "string"}
    raise NotImplementedError(f"no JSON schema for {kind}")


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _operation(op: Operation, schemas: dict[Any, dict[str, Any]]) -> dict[str, Any]:
    content = _json(schemas[op.answer])
    if op.streams:  # one JSON value a line: batches of log entries, then the end record
        content[NDJSON] = {"schema": {"type": "string"}}
    # A request the HTTP parser refuses (a line over 8 KB, a broken header) never reaches the
    # API: its 400 is plain text.
    error = {"description": "an error: `kind` is a row of the code table (agenttui.core.errors)",
             "content": {**_json(schemas[ErrorAnswer]), "text/plain": {"schema": {"type": "string"}}}}
    described: dict[str, Any] = {
        "operationId": op.handler,
        "summary": op.summary,
        "responses": {str(op.status): {"description": op.summary, "content": content}, "4XX": error, "5XX": error},
    }
    params = [{"name": p.name, "in": "query", "schema": p.schema, "description": p.description} for p in op.query]
    if "{test_id}" in op.path:
        params.insert(0, {"name": "test_id", "in": "path", "required": True, "description": "the test's id",
                          "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID}})
    if "{run_id}" in op.path:
        params.insert(0, {"name": "run_id", "in": "path", "required": True, "description": "the suite run's id",
                          "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID}})
    if params:
        described["parameters"] = params
    if op.body is not None:
        described["requestBody"] = {"required": False, "content": _json(schemas[op.body])}
    return described


@cache
def document() -> dict[str, Any]:
    """The OpenAPI document of every operation, its schemas generated from the wire types."""
    kinds = list(dict.fromkeys([ErrorAnswer, *(op.answer for op in OPERATIONS), *(op.body for op in OPERATIONS)]))
    kinds = [k for k in kinds if k is not None]
    found, components = msgspec.json.schema_components(
        kinds, schema_hook=_schema_hook, ref_template="#/components/schemas/{name}"
    )
    schemas = dict(zip(kinds, found))
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(API_PREFIX + op.path, {})[op.method.lower()] = _operation(op, schemas)
    return {
        "openapi": "3.1.0",
        "info": {"title": "agenttui server", "version": __version__,
                 "description": "HTTP over the server's Unix socket; the caller is who the kernel says (SO_PEERCRED)."},
        "paths": paths,
        "components": {"schemas": components},
    }
