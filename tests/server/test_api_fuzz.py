"""The socket API's OpenAPI document (generated from the wire schema) is what the server serves,
and a real server on a Unix socket, fuzzed from it (schemathesis, bounded and derandomized),
never answers 5xx nor anything the document does not describe (issue 14, point 11)."""

from __future__ import annotations

import itertools
import socket

import pytest
import requests
import schemathesis
from schemathesis import GenerationMode
from hypothesis import HealthCheck, Phase, given, settings
from requests.adapters import HTTPAdapter
from schemathesis.checks import (
    content_type_conformance, not_a_server_error, response_schema_conformance, status_code_conformance,
)
from urllib3.connection import HTTPConnection
from urllib3.connectionpool import HTTPConnectionPool

from agenttui.server.openapi import OPERATIONS, document

from .test_api_inputs import call

EXAMPLES = 12  # per operation: ~14 operations, a few seconds in all
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# Stopping the server would end the fuzzing: its own test is elsewhere (test_client_trust).
FUZZED = [op for op in OPERATIONS if op.handler != "shutdown"]


class UnixAdapter(HTTPAdapter):
    """requests over a Unix socket: every URL goes to the server's socket."""

    def __init__(self, socket_path: str):
        self.socket_path = socket_path
        super().__init__()

    def get_connection_with_tls_context(self, request, verify, proxies=None, cert=None):
        socket_path = self.socket_path

        class Connection(HTTPConnection):
            def _new_conn(self) -> socket.socket:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(10)
                sock.connect(socket_path)
                return sock

        pool = HTTPConnectionPool("agenttui", maxsize=1)
        pool.ConnectionCls = Connection
        return pool


def test_the_document_is_generated_from_the_wire_schema_and_served(shared_server):
    doc = document()
    assert doc["openapi"].startswith("3.1")
    schemas = doc["components"]["schemas"]
    # The call bodies' bounds come from agenttui.core.wire's constraints.
    assert schemas["SubmitBody"]["properties"]["parent_id"]["anyOf"][0] == {
        "type": "integer", "minimum": 1, "maximum": 2**63 - 1, "description": "a test's id"}
    assert schemas["ClearHistoryBody"]["properties"]["older_than_s"]["minimum"] == 0
    assert {f"/v1{op.path}" for op in OPERATIONS} == set(doc["paths"])
    socket_path = shared_server(backend="noop").socket_path
    status, served = call(socket_path, "GET", "/openapi.json")
    assert status == 200 and served == doc
    # Each described operation is routed: a wrong id is told as such, never "no such route".
    for op in OPERATIONS:
        if "{test_id}" in op.path:
            status, error = call(socket_path, op.method, op.path.replace("{test_id}", "987654"),
                                 {} if op.method == "POST" else None)
            assert status == 404 and "987654" in error["error"], (op.path, error)


def test_fuzzing_the_socket_api_finds_no_server_error(shared_server):
    socket_path = shared_server(backend="noop").socket_path
    session = requests.Session()
    session.mount("http://agenttui/", UnixAdapter(str(socket_path)))
    # Some tests to act on: fuzzed ids are mostly unknown, these are not.
    for _ in range(3):
        assert call(socket_path, "POST", "/tests", {"request": {"agent_code": "def run(q):\n    return q\n",
                                                                "query": "fuzz"}})[0] == 201
    schema = schemathesis.openapi.from_dict(document())
    fuzzed = {(op.method, f"/v1{op.path}"): op for op in FUZZED}
    operations = [result.ok() for result in schema.get_all_operations()]
    for operation, mode in itertools.product(operations, GenerationMode):
        op = fuzzed.get((operation.method.upper(), operation.path))
        takes_input = op is not None and (op.body is not None or op.query or "{test_id}" in op.path)
        if op is None or (mode is GenerationMode.NEGATIVE and not takes_input):
            continue

        @settings(max_examples=EXAMPLES, deadline=5000, derandomize=True, database=None,
                  phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(mode))
        def fuzz(case):
            case.call_and_validate(base_url="http://agenttui", session=session, checks=CHECKS, timeout=10)

        try:
            fuzz()
        except Exception as exc:
            pytest.fail(f"{operation.method.upper()} {operation.path} ({mode.value}): {exc}")
    assert call(socket_path, "GET", "/health")[0] == 200

