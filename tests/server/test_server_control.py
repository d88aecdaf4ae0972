"""`agenttui server status|stop|restart`: requests over the socket, allowed by the caller's kernel
credentials, never a signal; a stop hands running tests over as SIGTERM does."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

from agenttui.core import errors

from ..helpers import wait_for
from ..store.conftest import pg_url  # noqa: F401  (a fresh PostgreSQL database)
from .shared_box import agenttui_as, start_server
from .unix_users import unix_users  # noqa: F401  (real users and groups)


def agenttui(agenttui_cmd, *args: str, timeout: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run([*agenttui_cmd, *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def personal(monkeypatch):
    """A personal server's settings: the noop backend, tests that run for a while."""
    monkeypatch.setenv("AGENTTUI_BACKEND", "noop")
    monkeypatch.setenv("AGENTTUI_NOOP_RUN_S", "3")
    return Path(os.environ["XDG_RUNTIME_DIR"]) / "agenttui" / "agenttui.sock"


def test_status_stop_and_restart_of_a_personal_server(agenttui_cmd, personal):
    socket_path = personal
    none = agenttui(agenttui_cmd, "server", "status")
    assert none.returncode == errors.NOT_RUNNING.exit == 3, none.stderr
    assert f"not running (socket {socket_path})" in none.stdout
    assert json.loads(agenttui(agenttui_cmd, "server", "status", "--json").stdout)["running"] is False
    nothing = agenttui(agenttui_cmd, "server", "stop")
    assert nothing.returncode == 0 and "no agenttui server was running" in nothing.stdout, nothing.stderr

    started = agenttui(agenttui_cmd, "server", "restart")  # with none running: a start
    assert started.returncode == 0, started.stderr
    status = json.loads(agenttui(agenttui_cmd, "server", "status", "--json").stdout)
    assert status["running"] is True and status["personal"] is True
    assert status["socket_path"] == str(socket_path) and status["backend"] == "noop"
    assert status["owner"]["uid"] == os.getuid() and status["store"].startswith("sqlite+aiosqlite:///")
    assert (status["tests_running"], status["tests_queued"], status["cap"]) == (0, 0, 10)
    assert status["uptime_s"] >= 0 and status["version"]
    first_pid = status["pid"]
    text = agenttui(agenttui_cmd, "server", "status")
    assert text.returncode == 0 and f"pid {first_pid}" in text.stdout and "backend  noop" in text.stdout

    restarted = agenttui(agenttui_cmd, "server", "restart")
    assert restarted.returncode == 0, restarted.stderr
    second_pid = json.loads(agenttui(agenttui_cmd, "server", "status", "--json").stdout)["pid"]
    assert second_pid != first_pid
    wait_for(lambda: not Path(f"/proc/{first_pid}").exists() or _zombie(first_pid), 10)

    stopped = agenttui(agenttui_cmd, "server", "stop")
    assert stopped.returncode == 0 and "stopped the agenttui server" in stopped.stdout, stopped.stderr
    assert not socket_path.exists()  # stop returns once the server is gone
    assert agenttui(agenttui_cmd, "server", "status").returncode == 3


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True


def test_a_password_in_the_store_url_is_not_shown(agenttui_cmd, personal, monkeypatch, pg_url):
    from sqlalchemy.engine import make_url

    url = make_url(pg_url)
    monkeypatch.setenv("AGENTTUI_DB_URL", pg_url)
    assert agenttui(agenttui_cmd, "server", "restart").returncode == 0
    shown = agenttui(agenttui_cmd, "server", "status").stdout
    assert f"store    postgresql+asyncpg://{url.username}:***@{url.host}:{url.port}/{url.database}" in shown
    assert f":{url.password}@" not in shown and url.password
    assert agenttui(agenttui_cmd, "server", "stop").returncode == 0  # before its database is dropped


def test_stop_hands_a_running_test_over_as_sigterm_does(agenttui_cmd, personal, tmp_path):
    agent = tmp_path / "agent.py"
    agent.write_text("def run(query):\n    return query\n")
    queued = agenttui(agenttui_cmd, "submit", str(agent), "--query", "x", "--no-wait")
    assert queued.returncode == 0, queued.stderr
    test_id = queued.stdout.strip()
    show = lambda: json.loads(agenttui(agenttui_cmd, "show", test_id, "--json").stdout)  # noqa: E731
    wait_for(lambda: show()["status"] == "RUNNING", 30)

    stopped = agenttui(agenttui_cmd, "server", "stop")
    assert stopped.returncode == 0, stopped.stderr
    assert not personal.exists()
    # Left as it was, still leased to the stopped server: neither cancelled nor failed.
    db = Path(os.environ["XDG_DATA_HOME"]) / "agenttui" / "agenttui.db"
    with sqlite3.connect(db) as store:
        status, owner = store.execute("SELECT status, lease_owner FROM tests WHERE id = ?", (test_id,)).fetchone()
    assert status == "RUNNING" and owner

    # The next server (started by this command) adopts it once its lease expires, and ends it.
    followed = agenttui(agenttui_cmd, "logs", test_id, "--follow", timeout=120)
    assert followed.returncode == 0, followed.stderr
    assert "adopted by" in followed.stdout and f"previous owner {owner} stopped" in followed.stdout
    assert show()["status"] == "COMPLETED"


def test_only_the_servers_user_and_admins_may_and_no_signal_is_sent(unix_users):
    """The shared server runs as svc; carol (admin_group) stops it although she has no right to
    signal svc's process; bob (a user) is refused everything, and the server keeps running."""
    admins = unix_users.group("admins")
    svc = unix_users.user("svc")
    bob = unix_users.user("bob")
    carol = unix_users.user("carol", admins)
    socket_path, server = start_server(unix_users, svc, admin_group=admins)

    for action in ("status", "stop"):
        refused = agenttui_as(unix_users, bob, socket_path, "server", action)
        assert refused.returncode == errors.ACCESS_DENIED.exit == 2, refused.stderr
        assert "only the server's own user" in refused.stderr and f"group {admins}" in refused.stderr
        assert f"you are {bob.pw_name}" in refused.stderr and "Traceback" not in refused.stderr
    assert server.poll() is None and socket_path.exists()

    status = agenttui_as(unix_users, carol, socket_path, "server", "status", "--json")
    assert status.returncode == 0, status.stderr
    answer = json.loads(status.stdout)
    assert answer["owner"]["name"] == svc.pw_name and answer["personal"] is False
    assert answer["pid"] == server.pid  # setpriv execs: the process is the server itself

    # A restart of a shared server is its service manager's: refused before anything is stopped.
    restart = agenttui_as(unix_users, carol, socket_path, "server", "restart")
    assert restart.returncode == 2 and "systemctl restart agenttui" in restart.stderr, restart.stderr
    assert server.poll() is None

    with pytest.raises(PermissionError):  # what a signal from carol would meet
        _as_uid(carol.pw_uid, lambda: os.kill(server.pid, 0))
    stopped = agenttui_as(unix_users, carol, socket_path, "server", "stop")
    assert stopped.returncode == 0, stopped.stderr
    assert server.wait(timeout=30) == 0 and not socket_path.exists()
    assert "stopping: asked by " + carol.pw_name in Path(svc.pw_dir, "state/agenttui/server.log").read_text()


def _as_uid(uid: int, action) -> None:
    """`action` run in a child process with `uid` as its only identity; its PermissionError raised here."""
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.setgroups([])
            os.setresuid(uid, uid, uid)
            action()
        except PermissionError:
            code = 13
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) == 13:
        raise PermissionError(f"uid {uid} may not")
