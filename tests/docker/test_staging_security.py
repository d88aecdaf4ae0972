"""Issue 14, point 2: a warm-pool test's environment (its secrets) never touches a file, and no
other user of the host reads anything under the staging folder while the test runs."""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest

from ..conftest import stop_personal_server
from ..helpers import wait_for

pytestmark = pytest.mark.docker

SECRET = "sk-stagingcanary-" + uuid.uuid4().hex
AGENT = """
import hashlib, os, time
def run(query):
    if query == "hold":
        time.sleep(3)  # long enough for the host to look around while it runs
    return hashlib.sha256(os.environ.get("MY_API_KEY", "").encode()).hexdigest()
"""

# Run as the outsider: every path given that it can open (a pipe without blocking) or list.
PROBE = """
import json, os, sys
opened = []
for path in json.load(sys.stdin):
    try:
        if os.path.isdir(path):
            os.listdir(path)
        else:
            os.close(os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW))
        opened.append(path)
    except OSError:
        pass
print(json.dumps(opened))
"""


@pytest.fixture
def outsider():
    """A real user of the box who is in none of agenttui's groups."""
    name = "att" + uuid.uuid4().hex[:8]
    subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name], check=True)
    try:
        yield pwd.getpwnam(name)
    finally:
        subprocess.run(["userdel", name], capture_output=True)


@pytest.fixture
def open_data_home(monkeypatch):
    """A data folder other users can walk up to, as an older agenttui left it (0755 up to the
    staging root): what protects the staging tree must be the tree itself."""
    home = Path(tempfile.mkdtemp(prefix="att-data-", dir="/tmp"))
    home.chmod(0o755)
    staging = home / "agenttui" / "staging"
    staging.mkdir(parents=True)
    for folder in (home / "agenttui", staging):
        folder.chmod(0o755)
    monkeypatch.setenv("XDG_DATA_HOME", str(home))
    yield home / "agenttui"
    stop_personal_server(Path(os.environ["XDG_RUNTIME_DIR"]))  # it removes its waiting containers
    shutil.rmtree(home, ignore_errors=True)


class Watcher(threading.Thread):
    """Reads every file under a folder, over and over, while a test runs: notes each one that
    holds the secret and every path seen under the staging folder."""

    def __init__(self, root: Path):
        super().__init__(daemon=True)
        self.root = root
        self.leaks: set[str] = set()
        self.seen: set[str] = set()
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.sweep()
            time.sleep(0.02)
        self.sweep()

    def sweep(self) -> None:
        for folder, dirs, files in os.walk(self.root):
            for name in dirs + files:
                path = os.path.join(folder, name)
                self.seen.add(path)
                try:
                    if not stat.S_ISREG(os.lstat(path).st_mode):
                        continue
                    with open(path, "rb") as handle:
                        if SECRET.encode() in handle.read():
                            self.leaks.add(path)
                except OSError:  # removed meanwhile
                    pass


def readable_by(user: pwd.struct_passwd, paths: list[str]) -> list[str]:
    result = subprocess.run(
        ["/usr/bin/python3", "-c", PROBE], input=json.dumps(paths), capture_output=True, text=True,
        user=user.pw_uid, group=user.pw_gid, extra_groups=[], cwd="/", env={"PATH": "/usr/bin:/bin"}, check=True,
    )
    return json.loads(result.stdout)


def a_test_folder(staging: Path, test_id: int) -> list[str]:
    """Every path under the staging folder once test `test_id` has a folder there."""
    if not any(f"-{test_id}-a" in p.name for p in staging.iterdir() if p.is_dir()):
        return []
    return [str(staging)] + [os.path.join(d, n) for d, ds, fs in os.walk(staging) for n in ds + fs]


def test_a_warm_test_s_secret_stays_off_disk_and_its_staging_is_private(
    cli, agenttui_cmd, write_agent, monkeypatch, outsider, open_data_home
):
    monkeypatch.setenv("AGENTTUI_WARM_POOL", "1")
    agent = write_agent(AGENT)
    staging = open_data_home / "staging"
    first = cli("submit", str(agent), "--query", "warm-up", "--json")
    assert first.returncode == 0, first.stderr
    time.sleep(3)  # a container of the kind starts waiting
    watcher = Watcher(open_data_home)
    watcher.start()
    submit = subprocess.Popen(
        [*agenttui_cmd, "submit", str(agent), "--query", "hold", "--option", f"MY_API_KEY={SECRET}", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        second_id = json.loads(first.stdout)["id"] + 1
        paths = wait_for(lambda: a_test_folder(staging, second_id), timeout=30)
        opened_while_running = readable_by(outsider, paths)
        stdout, stderr = submit.communicate(timeout=120)
    finally:
        submit.kill()
        watcher.done.set()
        watcher.join(timeout=30)
    assert submit.returncode == 0, stderr
    record = json.loads(stdout)
    # The secret reached the agent (its digest came back), through a waiting container.
    assert record["response"] == hashlib.sha256(SECRET.encode()).hexdigest()
    assert "container started ahead of the test (warm pool" in cli("logs", str(record["id"])).stdout
    assert opened_while_running == []
    assert watcher.leaks == set()
    assert any("-pool-" not in p for p in watcher.seen if p.startswith(str(staging) + "/"))
    # The staging root is the server user's alone; nothing below it is writable by others.
    info = staging.stat()
    assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (os.geteuid(), 0o700)
    for path in [str(staging), *(os.path.join(d, n) for d, ds, fs in os.walk(staging) for n in ds + fs)]:
        assert stat.S_IMODE(os.lstat(path).st_mode) & 0o022 == 0, path
