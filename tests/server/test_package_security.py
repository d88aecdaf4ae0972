"""`agenttui package`: the server hands the zip over and writes no file where a client points; the
client writes it with its own rights (issue 14, points 1 and 12). Real users, a real shared
server run by a service user, the installed `agenttui` command."""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import sqlite3
import stat
import tempfile
import zipfile
from pathlib import Path

import pytest

from .shared_box import agenttui_as, start_server, users_file
from .unix_users import UnixUsers


@pytest.fixture(scope="module")
def box():
    """A service user running the shared server, a user who attacks it, and a folder in /tmp
    where both may have folders."""
    users = UnixUsers()
    outside = Path(tempfile.mkdtemp(prefix="atpk-", dir="/tmp"))
    outside.chmod(0o755)
    try:
        svc, mallory = users.user("svc"), users.user("mal")
        socket_path, server = start_server(users, svc)
        sentinel = Path(svc.pw_dir) / "data" / "agenttui" / "sentinel"
        sentinel.write_text("the server's own file\n")
        os.chown(sentinel, svc.pw_uid, svc.pw_gid)
        yield users, svc, mallory, socket_path, server, outside
    finally:
        users.cleanup()
        shutil.rmtree(outside, ignore_errors=True)


def as_mallory(box, *args: str):
    users, _svc, mallory, socket_path, _server, _outside = box
    return agenttui_as(users, mallory, socket_path, *args)


def finished_test(box) -> int:
    agent = users_file(box[2], "agent.py", "def run(query):\n    return query[::-1]\n")
    done = as_mallory(box, "submit", str(agent), "--query", "package me", "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["id"]


def opened_folder(user, path: Path) -> Path:
    """A folder of `user`'s own, which they opened to everyone (the server's user too)."""
    path.mkdir()
    path.chmod(0o777)
    os.chown(path, user.pw_uid, user.pw_gid)
    return path


def test_links_planted_by_a_user_never_make_the_server_write_its_own_files(box):
    _users, svc, mallory, _socket_path, server, outside = box
    test_id = finished_test(box)
    first = as_mallory(box, "package", str(test_id), "-o", str(opened_folder(mallory, outside / "probe")))
    assert first.returncode == 0, first.stderr
    name = Path(first.stdout.strip()).name  # agenttui-<id>-<slug>.zip
    store = Path(svc.pw_dir) / "data" / "agenttui" / "agenttui.db"
    sentinel = store.with_name("sentinel")
    # The attack: links named like the server's temp file (its pid was public) and like the zip.
    trap = opened_folder(mallory, outside / "trap")
    for link, target in ((f".{name}.{server.pid}.tmp", sentinel), (name, store)):
        os.symlink(target, trap / link)
        os.lchown(trap / link, mallory.pw_uid, mallory.pw_gid)
    result = as_mallory(box, "package", str(test_id), "-o", str(trap))
    assert result.returncode == 0, result.stderr
    assert sentinel.read_bytes() == b"the server's own file\n"
    with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as db:  # the store is whole
        assert db.execute("pragma quick_check").fetchone() == ("ok",)
        assert db.execute("select count(*) from tests where id = ?", (test_id,)).fetchone() == (1,)
    info = os.lstat(trap / name)
    assert stat.S_ISREG(info.st_mode) and info.st_uid == mallory.pw_uid  # written with the client's rights
    assert any(n.endswith("/agent.py") for n in zipfile.ZipFile(trap / name).namelist())
    assert all(os.lstat(p).st_uid == mallory.pw_uid for p in trap.iterdir())  # nothing of the server's
    assert server.poll() is None and as_mallory(box, "queue").returncode == 0


def test_a_folder_only_the_server_can_write_is_refused(box):
    svc = box[1]
    test_id = finished_test(box)
    servers_folder = Path(svc.pw_dir) / "data" / "agenttui"
    result = as_mallory(box, "package", str(test_id), "-o", str(servers_folder))
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert f"{servers_folder}: permission denied" in result.stderr and "Traceback" not in result.stderr
    assert not [p for p in servers_folder.iterdir() if p.name.endswith((".zip", ".tmp"))]


def test_package_onto_a_file_is_a_clear_error(box):
    test_id = finished_test(box)
    existing = users_file(box[2], "notes.txt", "mine\n")
    onto_file = as_mallory(box, "package", str(test_id), "-o", str(existing))
    assert onto_file.returncode == 2, (onto_file.stdout, onto_file.stderr)
    assert f"{existing} is a file, not a folder" in onto_file.stderr and "Traceback" not in onto_file.stderr
    assert existing.read_text() == "mine\n"


def test_the_package_answer_carries_the_zip_and_health_no_pid(box):
    """The API: the zip comes back in the answer (base64), described by its PackageResult."""
    users, _svc, mallory, socket_path, _server, _outside = box
    test_id = finished_test(box)
    curl = ["curl", "-s", "--unix-socket", str(socket_path)]
    answer = users.run(mallory, [*curl, "-X", "POST", f"http://x/v1/tests/{test_id}/package"], {})
    body = json.loads(answer.stdout)
    assert body["result"]["path"].endswith(".zip") and "/" not in body["result"]["path"]
    names = zipfile.ZipFile(io.BytesIO(base64.b64decode(body["zip"]))).namelist()
    assert any(n.endswith("/Dockerfile") for n in names)
    health = json.loads(users.run(mallory, [*curl, "http://x/v1/health"], {}).stdout)
    assert health.get("pid") is None


def test_a_huge_agent_file_is_refused_before_it_is_read_whole(box):
    huge = users_file(box[2], "huge_agent.py", "")
    with open(huge, "wb") as out:  # sparse: 100 MB that cost no disk
        out.truncate(100 * 1024 * 1024)
    submit = as_mallory(box, "submit", str(huge), "--query", "q")
    assert submit.returncode == 2, (submit.stdout, submit.stderr)
    assert f"agent file {huge} is 100.0 MB: too large; it must be under 100 KB" in submit.stderr
    assert "Traceback" not in submit.stderr
