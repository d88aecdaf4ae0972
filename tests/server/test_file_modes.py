"""issue 14, point 3: every file and folder agenttui creates is its owner's alone (0700 / 0600),
the socket aside, in a personal and in a shared set-up, after a real test through a real server
(Docker backend, a sealed secret: the store, its WAL, the key, the log, staging, packages)."""

from __future__ import annotations

import os
import stat
import subprocess
import time
from pathlib import Path

import pytest

from ..helpers import wait_for
from .unix_users import AGENTTUI, unix_users, user_env  # noqa: F401  (unix_users is a fixture)

pytestmark = pytest.mark.docker

# A test with a secret (sealed with the server's key), an agent that needs no model.
SUBMIT = ["submit", "agent.py", "--query", "q", "--provider", "openai", "--model", "m",
          "--option", "OPENAI_BASE_URL=http://127.0.0.1:9/v1", "--egress", "none", "--json"]
KEY = {"OPENAI_API_KEY": "sk-modes-" + "x" * 24}
# What each set-up must have created (so the walk is never vacuous), relative to its roots.
EXPECTED = {"data": ["agenttui.db", "agenttui.db-wal", "agenttui.db-writers.lock", "packages", "staging"],
            "state": ["server.log", "secrets.key"], "runtime": ["."]}


def _walk(root: Path):
    if not root.exists():
        return
    yield root
    for folder, folders, files in os.walk(root):
        for name in folders + files:
            yield Path(folder) / name


def _modes(roots: dict[str, Path], uid: int, sockets: dict[Path, tuple[int, int]]) -> list[str]:
    """What is wrong under the roots: an entry not `uid`'s alone (a socket not of its (mode, gid)), or missing."""
    wrong = []
    for root in roots.values():
        for path in _walk(root):
            info = os.lstat(path)
            mode = stat.S_IMODE(info.st_mode)
            if stat.S_ISSOCK(info.st_mode):
                want_mode, want_gid = sockets.pop(path, (0o600, -1))
                if (mode, info.st_gid) != (want_mode, want_gid) or info.st_uid != uid:
                    wrong.append(f"{path}: socket {mode:o} {info.st_uid}:{info.st_gid}")
                continue
            want = 0o700 if stat.S_ISDIR(info.st_mode) else 0o600
            if mode != want or info.st_uid != uid:
                wrong.append(f"{path}: {mode:o} owned by uid {info.st_uid} (want {want:o}, uid {uid})")
    wrong += [f"{path}: no socket" for path in sockets]
    wrong += [f"{roots[kind] / name}: missing" for kind, names in EXPECTED.items() for name in names
              if not (roots[kind] / name).exists()]
    return wrong


def _finished_staging(data: Path) -> None:
    """The test's bundle folder goes with its container, just after the test ends."""
    deadline = time.monotonic() + 20
    while any((data / "staging").iterdir()):
        assert time.monotonic() < deadline, f"staging not cleared: {list((data / 'staging').iterdir())}"
        time.sleep(0.1)


def test_a_personal_set_up_keeps_every_file_private(agenttui_cmd, tmp_path):
    from agenttui.core.paths import data_dir, runtime_dir, state_dir

    (tmp_path / "agent.py").write_text("import time\n\ndef run(q):\n    time.sleep(2)\n    return q\n")
    submit = subprocess.Popen([*agenttui_cmd, *SUBMIT], cwd=tmp_path, env={**os.environ, **KEY}, umask=0o022,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # While it runs: the staged bundle (the agent's code) is out of other users' reach too. Its
    # files are readable by the container's user (backends/docker/staging.py), so what keeps other
    # users out is the staging root (0700, checked by the walk); nobody else may write in it.
    bundle = wait_for(lambda: next((data_dir() / "staging").glob("*/agent.py"), None), 120).parent
    staged = [f"{p}: {stat.S_IMODE(os.lstat(p).st_mode):o}" for p in _walk(bundle)
              if stat.S_IMODE(os.lstat(p).st_mode) & 0o022 or os.lstat(p).st_uid != os.getuid()]
    out, err = submit.communicate(timeout=120)
    assert submit.returncode == 0, out + err
    _finished_staging(data_dir())

    roots = {"data": data_dir(), "state": state_dir(), "runtime": runtime_dir()}
    sockets = {runtime_dir() / "agenttui.sock": (0o600, os.getgid())}
    assert _modes(roots, os.getuid(), sockets) == []
    assert staged == [], "others may write the staged agent code"


def test_a_shared_set_up_keeps_every_file_private_but_the_groups_socket(unix_users):  # noqa: F811
    users = unix_users.group("usr")
    service = unix_users.user("svc", "docker", users)  # in the users' group: it hands them the socket
    alice = unix_users.user("ali", users)
    # The socket's folder, as the admin (systemd's RuntimeDirectory) makes it for the users' group,
    # in a folder of root's (as /run is).
    root_run = Path(f"/tmp/att-run-{service.pw_name}")
    root_run.mkdir(mode=0o755)
    run = root_run / "agenttui"
    run.mkdir(mode=0o750)
    os.chown(run, service.pw_uid, grp_gid(users))
    socket_path = run / "agenttui.sock"
    shared = {"AGENTTUI_SOCKET_PATH": str(socket_path), "AGENTTUI_SOCKET_MODE": "660",
              "AGENTTUI_SOCKET_GROUP": users}
    service_runtime = Path(f"/tmp/agenttui-{service.pw_uid}")
    try:
        unix_users.serve(service, socket_path, user_env(service, **shared))
        agent = Path(alice.pw_dir) / "agent.py"
        agent.write_text("def run(q):\n    return q\n")
        submit = unix_users.run(alice, [*AGENTTUI, *SUBMIT], user_env(alice, **shared, **KEY), cwd=alice.pw_dir,
                                timeout=180)
        assert submit.returncode == 0, submit.stdout + submit.stderr

        home = Path(service.pw_dir)
        _finished_staging(home / "data" / "agenttui")
        roots = {"data": home / "data" / "agenttui", "state": home / "state" / "agenttui", "runtime": service_runtime}
        wrong = _modes(roots, service.pw_uid, {})
        # The shared folder: the group's socket, and the server's lock beside it, its own.
        assert stat.S_IMODE(os.lstat(socket_path).st_mode) == 0o660
        assert (os.lstat(socket_path).st_uid, os.lstat(socket_path).st_gid) == (service.pw_uid, grp_gid(users))
        lock = os.lstat(run / "agenttui.sock.lock")
        assert (stat.S_IMODE(lock.st_mode), lock.st_uid) == (0o600, service.pw_uid)
        assert wrong == []
    finally:
        unix_users.cleanup()
        subprocess.run(["rm", "-rf", str(root_run), str(service_runtime)])


def grp_gid(name: str) -> int:
    import grp

    return grp.getgrnam(name).gr_gid
