"""`agenttui submit` sends its request before it loads the wire schema and the blocking client:
one request per submit (no health check before it), the server's health read from the answer's
header. A recording server on a Unix socket stands in for agenttui's own here: what is asserted
is what the client sends."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from agenttui.core import wire
from agenttui.core.lifecycle import Status
from agenttui.core.wire import Caller, FollowEnd, Health, TestView
from agenttui.core.wire_headers import BUILD_HEADER, HEALTH_HEADER


def _view(status: Status, **changes) -> TestView:
    fields = dict(
        id=7, status=status, owner_name="me", owner_uid=os.getuid(), priority="normal", query="hello",
        provider="ollama", model_id="llama3.2", attempt=1, parent_id=None, created_at=1.0, claimed_at=None,
        running_at=None, finished_at=None, exit_code=None, oom_killed=False, failure_kind=None, error=None,
        response=None, metrics={}, log_lines=0, log_truncated=False, cancel_requested=False,
    )
    return TestView(**{**fields, **changes})


class RecordingServer:
    """Answers POST /v1/tests?follow=1 with a queued view and, at once, the completed one."""

    def __init__(self, path: Path):
        self.path = path
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(path))
        self.listener.listen(8)
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with conn:
                self._answer(conn)

    def _answer(self, conn: socket.socket) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            piece = conn.recv(65536)
            if not piece:
                return  # a connection that sends nothing: the client's check of who serves the socket
            data += piece
        head, _, body = data.partition(b"\r\n\r\n")
        line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
        while len(body) < int(headers.get("content-length", 0)):
            body += conn.recv(65536)
        self.requests.append((line, headers, body))
        health = json.dumps(wire.to_builtins(Health(version="recorded", build="b", you=Caller(uid=os.getuid(), name="me"))))
        stream = wire.encode(_view(Status.QUEUED)) + b"\n" + wire.encode(
            FollowEnd(end=True, test=_view(Status.COMPLETED, response="HELLO", exit_code=0))) + b"\n"
        conn.sendall(b"HTTP/1.1 201 Created\r\nContent-Type: application/x-ndjson\r\nConnection: close\r\n"
                     + f"{HEALTH_HEADER}: {health}\r\n\r\n".encode() + stream)

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def recording(tmp_path):
    folder = tmp_path / "sock"
    folder.mkdir(mode=0o755)
    server = RecordingServer(folder / "agenttui.sock")
    yield server
    server.close()


def test_a_followed_submit_is_one_request_and_its_answer_tells_the_servers_health(recording, tmp_path):
    agent = tmp_path / "agent.py"
    agent.write_text("def run(query):\n    return query.upper()\n")
    env = {**os.environ, "AGENTTUI_SOCKET_PATH": str(recording.path)}
    done = subprocess.run([sys.executable, "-m", "agenttui", "submit", str(agent), "--query", "hello"],
                          capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    assert "COMPLETED" in done.stdout and "HELLO" in done.stdout
    assert [line for line, _, _ in recording.requests] == ["POST /v1/tests?follow=1 HTTP/1.1"]
    _, headers, body = recording.requests[0]
    sent = json.loads(body)
    assert sent["request"]["query"] == "hello" and sent["check_backend"] is True
    assert wire.decode(body, wire.SubmitBody).request["agent_code"] == agent.read_text()  # the schema's body
    assert BUILD_HEADER.lower() not in headers  # a shared server's build is warned about, never asked for


def test_the_blocking_client_reads_the_answer_of_a_submit_sent_ahead(recording):
    from agenttui.client.blocking import BlockingClient
    from agenttui.client.early import send_submit
    from agenttui.client.settings import load_client_settings

    settings = load_client_settings(socket_path=recording.path, in_process=False)
    sent = send_submit(settings, {"agent_code": "def run(q):\n    return q\n", "query": "hello"}, check_backend=True)
    assert sent is not None
    with BlockingClient(settings, sent) as client:  # no request of its own on opening
        view = client.submit({"agent_code": "unused", "query": "hello"}, check_backend=True, follow=True)
        assert view.id == 7 and view.status is Status.QUEUED
        assert client.health is not None and client.health.version == "recorded"
        assert list(client.follow_logs(7)) == []  # the stream the submit opened: no request
        assert client.wait(7).response == "HELLO"
    assert len(recording.requests) == 1
