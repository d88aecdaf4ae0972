import json
import os
import pwd
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from ..helpers import wait_for  # noqa: F401  (used by the tests that import it from here)




def ensure_user(name: str) -> int:
    try:
        return pwd.getpwnam(name).pw_uid
    except KeyError:
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", name], check=True)
        return pwd.getpwnam(name).pw_uid


class Curl:
    """HTTP over the server's Unix socket, as a given Unix user (identity from the kernel)."""

    def __init__(self, socket_path: Path):
        self.socket_path = socket_path

    def __call__(self, user: str, method: str, path: str, body=None, env: dict | None = None):
        cmd = ["curl", "-s", "-w", "\n%{http_code}", "--unix-socket", str(self.socket_path), "-X", method,
               f"http://agenttui/v1{path}"]
        if body is not None:
            cmd += ["-H", "Content-Type: application/json", "--data-binary", json.dumps(body)]
        if user != "root":
            # USER/LOGNAME claim to be someone else: the server must not care.
            cmd = ["runuser", "-u", user, "--", "env", *[f"{k}={v}" for k, v in (env or {}).items()], *cmd]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=True).stdout
        text, _, status = out.rpartition("\n")
        return int(status), (json.loads(text) if text else None)


@pytest.fixture
def shared_server(tmp_path, agenttui_cmd):
    """A shared server run by root on a world-reachable socket, as an admin would run it."""
    sock_dir = Path(tempfile.mkdtemp(prefix="ats-", dir="/tmp"))
    sock_dir.chmod(0o755)
    socket_path = sock_dir / "agenttui.sock"
    processes = []

    def start(**settings) -> Curl:
        env = {**os.environ, "AGENTTUI_SOCKET_PATH": str(socket_path), "AGENTTUI_SOCKET_MODE": "666",
               **{f"AGENTTUI_{k.upper()}": str(v) for k, v in settings.items()}}
        proc = subprocess.Popen([*agenttui_cmd, "server", "--foreground"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        processes.append(proc)
        wait_for(lambda: socket_path.exists(), 20)
        return Curl(socket_path)

    yield start
    for proc in processes:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
    subprocess.run(["rm", "-rf", str(sock_dir)])
