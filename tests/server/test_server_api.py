"""The server's API, its identity checks and its robustness (noop backend: no containers needed)."""

import json
import socket
import sqlite3
import time

import pytest

from agenttui.core.config import data_dir

from .conftest import ensure_user, wait_for

AGENT = {"agent_code": "def run(q):\n    return q\n", "query": "hello"}


@pytest.fixture(scope="module")
def users():
    return ensure_user("agenttui-alice"), ensure_user("agenttui-bob")


def test_users_share_one_queue_but_not_each_others_tests(shared_server, users):
    curl = shared_server(backend="noop", noop_run_s=60, max_concurrent=1)
    alice, bob = "agenttui-alice", "agenttui-bob"
    status, test = curl(alice, "POST", "/tests", {"request": AGENT})
    assert status == 201 and test["owner_name"] == alice and test["owner_uid"] == users[0]
    test_id = test["id"]
    wait_for(lambda: curl(alice, "GET", f"/tests/{test_id}")[1]["status"] == "RUNNING", 20)
    impersonate = {"USER": alice, "LOGNAME": alice}
    for method, path in (("POST", f"/tests/{test_id}/cancel"), ("POST", f"/tests/{test_id}/retry"),
                         ("GET", f"/tests/{test_id}/logs"), ("GET", f"/tests/{test_id}/request")):
        status, error = curl(bob, method, path, {} if method == "POST" else None, env=impersonate)
        assert status == 403, (path, error)
        assert error["kind"] == "access_denied" and f"belongs to {alice}" in error["error"]
    # Both see the shared queue; the cap (1) is global: Bob's test waits behind Alice's.
    status, bobs = curl(bob, "POST", "/tests", {"request": AGENT})
    assert status == 201 and bobs["status"] == "QUEUED"
    for user in (alice, bob):
        status, queue = curl(user, "GET", "/queue")
        assert (queue["running"], queue["queued"], queue["cap"], queue["utilization"]) == (1, 1, 1, 100.0)
        assert [(t["id"], t["owner_name"]) for t in queue["tests"]] == [(test_id, alice), (bobs["id"], bob)]
        assert queue["tests"][1]["position"] == 1
    # The owner may cancel: the running test ends, and Bob's starts.
    status, cancelled = curl(alice, "POST", f"/tests/{test_id}/cancel", {})
    assert status == 200
    wait_for(lambda: curl(alice, "GET", f"/tests/{test_id}")[1]["status"] == "CANCELLED", 10)
    wait_for(lambda: curl(bob, "GET", f"/tests/{bobs['id']}")[1]["status"] == "RUNNING", 10)
    # Root is an admin.
    assert curl("root", "POST", f"/tests/{bobs['id']}/cancel", {})[0] == 200


def test_fair_share_b_starts_at_the_next_free_slot(shared_server, users):
    curl = shared_server(backend="noop", noop_run_s=0.6, max_concurrent=2)
    alice, bob = "agenttui-alice", "agenttui-bob"
    alice_ids = [curl(alice, "POST", "/tests", {"request": AGENT})[1]["id"] for _ in range(10)]
    wait_for(lambda: curl(alice, "GET", "/queue")[1]["running"] == 2, 10)
    bobs = curl(bob, "POST", "/tests", {"request": AGENT})[1]["id"]
    submitted = time.time()  # committed by now: every claim that starts later sees Bob's test
    wait_for(lambda: curl(bob, "GET", f"/tests/{bobs}")[1]["status"] == "COMPLETED", 30)
    conn = sqlite3.connect(data_dir() / "agenttui.db")
    after = conn.execute("select test_id, ts from claims where ts >= ? order by id", (submitted,)).fetchall()
    # Bob's test is the first one claimed when a slot frees (several may free at once).
    assert after[0][0] == bobs, after
    after = [test_id for test_id, _ in after]
    assert set(alice_ids) & set(after[1:])  # Alice's queue kept moving after Bob's turn


def test_bad_requests_get_clear_errors_and_the_server_keeps_serving(shared_server):
    curl = shared_server(backend="noop")
    socket_path = curl.socket_path

    def raw(data: bytes) -> bytes:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(10)
            sock.connect(str(socket_path))
            sock.sendall(data)
            try:
                return sock.recv(65536)
            except (TimeoutError, ConnectionResetError):
                return b""

    for _ in range(20):
        assert b"400" in raw(b"\x00\xff garbage \r\n\r\n")
        huge = b"{" + b'"x": "' + b"a" * (2 * 1024 * 1024) + b'"}'
        reply = raw(b"POST /v1/tests HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n" % len(huge) + huge)
        assert b"413" in reply.split(b"\r\n", 1)[0]
        status, error = curl("root", "POST", "/tests", None)
        assert status == 400 and "request" in error["error"]
        status, error = curl("root", "POST", "/tests", {"request": "not an object"})
        assert status == 400 and error["kind"] == "bad_request"
        status, error = curl("root", "POST", "/tests", {"request": {**AGENT, "timeout_s": 1, "query": ""}})
        assert status == 422 and {"timeout_s", "query"} <= set(error["fields"])
        status, error = curl("root", "GET", "/tests/987654")
        assert status == 404 and "no test with id 987654" in error["error"]
        status, error = curl("root", "GET", "/tests/abc")
        assert status == 400
        status, error = curl("root", "GET", "/tests/1/logs?after=-5")
        assert status in (400, 404)
        status, error = curl("root", "POST", "/history/clear", {"older_than_s": "soon"})
        assert status == 400 and "older_than_s" in error["error"]
    status, health = curl("root", "GET", "/health")
    assert status == 200 and health["ok"] and health["you"]["uid"] == 0
    status, test = curl("root", "POST", "/tests", {"request": AGENT})
    assert status == 201
    wait_for(lambda: curl("root", "GET", f"/tests/{test['id']}")[1]["status"] == "COMPLETED", 20)


def test_a_second_server_on_the_same_socket_refuses_to_start(shared_server, agenttui_cmd, tmp_path):
    import os
    import subprocess

    curl = shared_server(backend="noop")
    env = {**os.environ, "AGENTTUI_SOCKET_PATH": str(curl.socket_path), "AGENTTUI_BACKEND": "noop"}
    second = subprocess.run([*agenttui_cmd, "server"], env=env, capture_output=True, text=True, timeout=30)
    assert second.returncode == 3 and "already running" in second.stderr
    assert curl("root", "GET", "/health")[0] == 200


def test_a_personal_server_starts_on_demand_and_exits_when_idle(agenttui_cmd, monkeypatch):
    import os
    import subprocess

    from agenttui.core.config import runtime_dir

    monkeypatch.setenv("AGENTTUI_BACKEND", "noop")
    monkeypatch.setenv("AGENTTUI_SERVER_IDLE_EXIT_S", "3")
    queue = subprocess.run([*agenttui_cmd, "queue", "--json"], capture_output=True, text=True, timeout=60)
    assert queue.returncode == 0, queue.stderr
    assert json.loads(queue.stdout)["cap"] == 10
    pid = int((runtime_dir() / "agenttui.sock.lock").read_text())
    os.kill(pid, 0)  # the client left it running in the background

    def gone():
        try:
            os.kill(pid, 0)
            return False
        except ProcessLookupError:
            return True

    wait_for(gone, 20)
    assert not (runtime_dir() / "agenttui.sock").exists()


def test_a_personal_server_running_older_code_is_replaced(agenttui_cmd, monkeypatch):
    import os
    import subprocess
    from pathlib import Path

    import agenttui
    from agenttui.core.config import runtime_dir

    monkeypatch.setenv("AGENTTUI_BACKEND", "noop")
    first = subprocess.run([*agenttui_cmd, "queue", "--json"], capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    old_pid = int((runtime_dir() / "agenttui.sock.lock").read_text())
    # agenttui is upgraded in place: its code is newer than the running server's.
    source = Path(agenttui.__file__)
    later = max(p.stat().st_mtime for p in source.parent.rglob("*.py")) + 5
    os.utime(source, (later, later))
    second = subprocess.run([*agenttui_cmd, "queue", "--json"], capture_output=True, text=True, timeout=60)
    assert second.returncode == 0, second.stderr
    new_pid = int((runtime_dir() / "agenttui.sock.lock").read_text())
    assert new_pid != old_pid

    wait_for(lambda: _gone(old_pid), 20)


def test_a_submit_sent_ahead_to_an_outdated_personal_server_is_refused_then_run_by_its_replacement(
    agenttui_cmd, tmp_path, monkeypatch
):
    """`submit` sends its request before it loads the wire schema, asking for its own build: the
    outdated server queues nothing, and the replacement runs the test once."""
    import os
    from pathlib import Path

    import agenttui
    from agenttui.core.config import runtime_dir

    monkeypatch.setenv("AGENTTUI_BACKEND", "noop")
    first = _submit(agenttui_cmd, tmp_path, "--query", "before")
    assert first.returncode == 0, first.stderr
    old_pid = int((runtime_dir() / "agenttui.sock.lock").read_text())
    source = Path(agenttui.__file__)
    later = max(p.stat().st_mtime for p in source.parent.rglob("*.py")) + 5
    os.utime(source, (later, later))
    second = _submit(agenttui_cmd, tmp_path, "--query", "after the upgrade")
    assert second.returncode == 0, second.stderr
    assert "COMPLETED" in second.stdout and "after the upgrade" in second.stdout
    assert int((runtime_dir() / "agenttui.sock.lock").read_text()) != old_pid
    assert _stored_tests() == 2  # the refused submit queued nothing

    wait_for(lambda: _gone(old_pid), 20)

def _gone(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
        return False
    except ProcessLookupError:
        return True


# ------------------------------------------- the headless client through its personal server
# The client reads only the settings it needs and leaves validation to the server: these are
# the guarantees that must survive that (exit 2 naming the field, nothing queued; exit 3 when
# the engine is down; a bad setting of the server still named).
def _submit(agenttui_cmd, tmp_path, *args, env=None):
    import os
    import subprocess

    agent = tmp_path / "agent.py"
    if not agent.exists():
        agent.write_text("def run(q):\n    return q\n")
    return subprocess.run([*agenttui_cmd, "submit", str(agent), *args], capture_output=True, text=True,
                          timeout=60, env={**os.environ, **(env or {})})


def _stored_tests() -> int:
    path = data_dir() / "agenttui.db"
    if not path.exists():
        return 0
    with sqlite3.connect(path) as conn:
        return conn.execute("select count(*) from tests").fetchone()[0]


def test_the_server_validates_a_headless_submit_naming_each_flag(agenttui_cmd, tmp_path, monkeypatch):
    monkeypatch.setenv("AGENTTUI_BACKEND", "noop")
    result = _submit(agenttui_cmd, tmp_path, "--query", " ", "--timeout", "5", "--memory", "10")
    assert result.returncode == 2, result.stderr
    assert "nothing was queued" in result.stderr
    for flag in ("--query:", "--timeout:", "--memory:"):
        assert flag in result.stderr, result.stderr
    assert _stored_tests() == 0
    valid = _submit(agenttui_cmd, tmp_path, "--query", "x")
    assert valid.returncode == 0, valid.stderr
    assert _stored_tests() == 1


def test_an_unreachable_engine_exits_3_and_queues_nothing(agenttui_cmd, tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    result = _submit(agenttui_cmd, tmp_path, "--query", "x")
    assert result.returncode == 3, result.stderr
    assert "nothing was queued" in result.stderr and "not reachable" in result.stderr
    assert _stored_tests() == 0
    # A bad request still says what is wrong with it, whatever the engine.
    invalid = _submit(agenttui_cmd, tmp_path, "--query", "x", "--timeout", "5")
    assert invalid.returncode == 2 and "--timeout:" in invalid.stderr, invalid.stderr


def test_a_bad_setting_that_stops_the_personal_server_is_named(agenttui_cmd, monkeypatch):
    import subprocess

    monkeypatch.setenv("AGENTTUI_MAX_CONCURRENT", "0")
    result = subprocess.run([*agenttui_cmd, "queue"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert "max_concurrent" in result.stderr and "AGENTTUI_MAX_CONCURRENT" in result.stderr
