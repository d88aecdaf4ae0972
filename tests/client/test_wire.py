"""The wire schema, the error table and the socket transport, without a server."""

import socket
import threading
from pathlib import Path

import pytest

from agenttui.client import transport
from agenttui.core import errors, wire
from agenttui.core.lifecycle import FailureKind, InvalidRequest, Status
from agenttui.core.wire import FollowEnd, FollowRecord, LogEntry, QueueView, TestView
from agenttui.packaging import PackageResult


def a_view(**changes) -> TestView:
    fields = dict(
        id=7, status=Status.RUNNING, owner_name="ann", owner_uid=1000, priority="normal", query="q",
        provider="ollama", model_id="llama3.2", attempt=1, parent_id=None, created_at=1.5, claimed_at=2.0,
        running_at=2.5, finished_at=None, exit_code=None, oom_killed=False, failure_kind=None, error=None,
        response=None, metrics={"wall_s": 1.0}, log_lines=3, log_truncated=False, cancel_requested=False,
    )
    return TestView(**{**fields, **changes})


def test_what_the_server_encodes_the_client_decodes_the_same():
    view = a_view()
    assert wire.decode(wire.encode(view), TestView) == view
    queue = QueueView(running=1, queued=0, cap=4, utilization=25.0, tests=[view])
    assert wire.decode(wire.encode(queue), QueueView) == queue
    result = PackageResult(path=Path("/tmp/a.zip"), size=10, files=["agent.py"], elapsed=0.1, warnings=["w"])
    assert wire.decode(wire.encode(result), PackageResult) == result


def test_fields_a_newer_server_adds_are_ignored():
    data = {**wire.decode(wire.encode(a_view())), "from_the_future": [1, 2]}
    assert wire.decode(wire.encode(data), TestView) == a_view()


def test_the_follow_stream_is_batches_then_an_end_with_the_final_view():
    entry = LogEntry(test_id=7, seq=1, ts=1.0, stream="stdout", text="hi")
    assert wire.decode(wire.encode([entry]), FollowRecord) == [entry]
    final = a_view(status=Status.COMPLETED)
    assert wire.decode(wire.encode(FollowEnd(end=True, test=final)), FollowRecord) == FollowEnd(True, final)
    assert wire.decode(b'{"end": true}', FollowRecord) == FollowEnd(True, None)


@pytest.mark.parametrize(
    "error",
    [errors.NotFound(3), errors.AccessDenied("no"), errors.NotActionable("done"), errors.InfraError("down"),
     errors.BadRequest("bad"), InvalidRequest({"query": "empty"})],
)
def test_each_api_error_comes_back_as_itself(error):
    code = errors.code_of(error)
    assert code is not None and code.http is not None
    fields = error.errors if isinstance(error, InvalidRequest) else None
    back = errors.error_of(code.kind, str(error), fields)
    assert type(back) is type(error) and str(back) == str(error)


def test_an_unknown_kind_is_a_plain_runtime_error():
    assert type(errors.error_of("from_the_future", "x")) is RuntimeError


@pytest.mark.parametrize(
    "status, failure_kind, exit_code",
    [(Status.COMPLETED, None, 0), (Status.FAILED, FailureKind.AGENT.value, 1), (Status.FAILED, None, 1),
     (Status.FAILED, FailureKind.INFRA.value, 3), (Status.TIMED_OUT, None, 4), (Status.CANCELLED, None, 5)],
)
def test_outcomes_exit_with_the_documented_codes(status, failure_kind, exit_code):
    assert errors.outcome_of(status, failure_kind).exit == exit_code


def test_kinds_are_unique_and_reserved_exit_codes_are_taken_by_nothing_else():
    kinds = [code.kind for code in errors.CODES]
    assert len(kinds) == len(set(kinds))
    reserved = [code.exit for code in errors.CODES if code.reserved_for]
    others = {code.exit for code in errors.CODES if not code.reserved_for}
    assert len(reserved) == len(set(reserved)) and not others & set(reserved)


def serve_once(folder: Path, answer: bytes) -> str:
    """A Unix socket that answers one connection with `answer`, then closes it."""
    path = str(folder / "s")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)

    def run() -> None:
        conn, _ = server.accept()
        with conn, server:
            conn.recv(65536)
            conn.sendall(answer)

    threading.Thread(target=run, daemon=True).start()
    return path


def test_a_chunked_stream_arrives_line_by_line(tmp_path):
    body = b'[1]\n[2]\n{"end": true}\n'
    path = serve_once(
        tmp_path,
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        + b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in body.splitlines(keepends=True))
        + b"0\r\n\r\n"
    )
    with transport.request(path, "GET", "/v1/x", timeout=5) as response:
        assert response.status == 200
        assert list(response.lines(1024)) == [b"[1]", b"[2]", b'{"end": true}']


def test_a_stream_cut_short_is_a_lost_connection(tmp_path):
    path = serve_once(tmp_path, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n[1]\n\r\n")
    with transport.request(path, "GET", "/v1/x", timeout=5) as response:
        lines = response.lines(1024)
        assert next(lines) == b"[1]"
        with pytest.raises(transport.ConnectionLost):
            next(lines)


def test_no_server_is_a_lost_connection(tmp_path):
    with pytest.raises(transport.ConnectionLost):
        transport.request(str(tmp_path / "nobody"), "GET", "/v1/health", timeout=1)
