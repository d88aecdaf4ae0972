"""Hostile inputs at the server's edge: each is answered 4xx naming what is wrong, never 500,
and nothing out of range reaches the engine or the store (issue 14, point 11)."""

from __future__ import annotations

import http.client
import json
import socket
from pathlib import Path

from .conftest import wait_for

AGENT = {"agent_code": "def run(q):\n    return q\n", "query": "hello"}
HUGE = 99999999999999999999999  # past SQLite's and PostgreSQL's integers


class UnixHTTP(http.client.HTTPConnection):
    """HTTP over the server's Unix socket, with bodies sent byte for byte."""

    def __init__(self, socket_path: Path):
        super().__init__("agenttui", timeout=30)
        self.socket_path = socket_path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(str(self.socket_path))


def call(socket_path: Path, method: str, path: str, body: object = None, raw: bytes | None = None):
    connection = UnixHTTP(socket_path)
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    try:
        connection.request(method, f"/v1{path}", body=data, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"null")
    finally:
        connection.close()


def test_hostile_inputs_get_a_4xx_naming_the_field(shared_server):
    socket_path = shared_server(backend="noop").socket_path
    status, first = call(socket_path, "POST", "/tests", {"request": AGENT})
    assert status == 201
    test_id = first["id"]
    wait_for(lambda: call(socket_path, "GET", f"/tests/{test_id}")[1]["status"] == "COMPLETED", 20)
    deep = b"[" * 100_000 + b"]" * 100_000
    cases = [
        # (method, path, JSON body or raw bytes, the answer's status, what its message names)
        ("GET", f"/tests/{test_id}/logs?after={HUGE}", None, 400, "'after'"),
        ("GET", f"/tests/{test_id}/logs?limit={HUGE}", None, 400, "'limit'"),
        ("GET", f"/history?limit={HUGE}", None, 400, "'limit'"),
        ("POST", "/tests", {"request": AGENT, "parent_id": HUGE}, 400, "parent_id"),
        ("POST", "/tests", {"request": AGENT, "parent_id": 2**63}, 400, "parent_id"),
        ("POST", "/tests", {"request": AGENT, "parent_id": True}, 400, "parent_id"),
        ("POST", "/tests", {"request": AGENT, "parent_id": -7}, 400, "parent_id"),
        ("POST", "/tests", b'{"request": {"query": ' + deep + b"}}", 400, "nests deeper"),
        ("POST", "/tests", deep, 400, "nests deeper"),
        ("GET", "/tests/%C2%B2", None, 400, "test id"),  # superscript two: isdigit(), not int()
        ("GET", "/tests/%D9%A3", None, 400, "test id"),  # Arabic-Indic three: not test 3
        ("GET", f"/tests/{HUGE}", None, 400, "test id"),
        ("GET", "/tests/0", None, 400, "test id"),
        ("POST", f"/tests/{test_id}/package", {"out_dir": 5}, 400, "out_dir"),
        ("POST", f"/tests/{test_id}/package", {"out_dir": "/tmp/a\0b"}, 400, "out_dir"),
        ("POST", f"/tests/{test_id}/package", {"out_dir": "relative"}, 400, "out_dir"),
        ("POST", "/tests", b'{"request": {"agent_code": "def run(q):\\n    return q\\n", "query": "\\ud800"}}',
         400, "not valid JSON"),
        ("POST", "/tests", b'{"request": {"agent_code": "x", "query": "\xed\xa0\x80"}}', 400, "not valid JSON"),
        ("POST", f"/tests/{test_id}/retry", b'{"query": "\\udc00"}', 400, "not valid JSON"),
        ("GET", "/history?search=a%00b", None, 400, "'search'"),
        ("POST", "/history/clear", {"older_than_s": -1}, 400, "older_than_s"),
        ("POST", "/history/clear", b'{"older_than_s": 1e400}', 400, "older_than_s"),
    ]
    for method, path, body, expected, named in cases:
        raw = body if isinstance(body, bytes) else None
        status, error = call(socket_path, method, path, None if raw else body, raw)
        assert (status, error["kind"]) == (expected, "bad_request"), (path, body if raw is None else raw[:60], error)
        assert named in error["error"], (path, error)
    # Nothing was stored from them: the only test is the first, and the server still serves.
    assert [t["id"] for t in call(socket_path, "GET", "/history")[1]] == [test_id]
    status, tests = call(socket_path, "GET", "/history?search=%ED%A0%80")  # undecodable: matches nothing
    assert (status, tests) == (200, [])
    assert call(socket_path, "GET", f"/tests/{test_id}/logs?after=9223372036854775807")[0] == 200
    assert call(socket_path, "GET", "/health")[0] == 200
