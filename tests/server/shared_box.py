"""A shared server run by a service user (noop backend), and `agenttui` run by the box's users."""

from __future__ import annotations

import os
import pwd
import subprocess
from pathlib import Path

from ..helpers import wait_for
from .unix_users import AGENTTUI, UnixUsers, user_env


def start_server(
    users: UnixUsers, svc: pwd.struct_passwd, folder: str = "sock", **settings: object
) -> tuple[Path, subprocess.Popen]:
    """`agenttui server` as `svc`, its store in svc's home, its socket (mode 666) in
    ~svc/`folder`; `settings` become AGENTTUI_* variables. Returns the socket and the server."""
    home = Path(svc.pw_dir)
    home.chmod(0o755)  # users reach the socket's folder
    for sub, mode in (("run", 0o700), (folder, 0o755)):
        if not (home / sub).exists():
            (home / sub).mkdir(mode=mode)
            os.chown(home / sub, svc.pw_uid, svc.pw_gid)
    socket_path = home / folder / "agenttui.sock"
    env = user_env(svc, XDG_RUNTIME_DIR=str(home / "run"), AGENTTUI_SOCKET_PATH=str(socket_path),
                   AGENTTUI_SOCKET_MODE="666", AGENTTUI_BACKEND="noop",
                   **{f"AGENTTUI_{key.upper()}": str(value) for key, value in settings.items()})
    server = users.start(svc, [*AGENTTUI, "server"], env)
    wait_for(lambda: socket_path.exists() or server.poll() is not None, 30)
    assert server.poll() is None, server.stderr.read().decode(errors="replace")
    return socket_path, server


def agenttui_as(
    users: UnixUsers, user: pwd.struct_passwd, socket_path: Path, *args: str
) -> subprocess.CompletedProcess:
    """The installed `agenttui` command, run by `user` against the shared server."""
    return users.run(user, [*AGENTTUI, *args], user_env(user, AGENTTUI_SOCKET_PATH=str(socket_path)))


def users_file(user: pwd.struct_passwd, name: str, text: str) -> Path:
    """A file of `user`'s own in their home."""
    path = Path(user.pw_dir) / name
    path.write_text(text)
    os.chown(path, user.pw_uid, user.pw_gid)
    return path
