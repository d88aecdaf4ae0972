"""Real Unix users and groups made for one test (names `att` + a random suffix, so parallel runs
never collide), and commands run as them; all removed when the test ends."""

from __future__ import annotations

import os
import pwd
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest

AGENTTUI = [str(Path(sys.executable).parent / "agenttui")]


class UnixUsers:
    def __init__(self) -> None:
        self.users: list[str] = []
        self.groups: list[str] = []
        self.processes: list[subprocess.Popen] = []
        self.suffix = secrets.token_hex(3)

    def group(self, role: str) -> str:
        name = f"att{self.suffix}{role}"
        subprocess.run(["groupadd", name], check=True, capture_output=True)
        self.groups.append(name)
        return name

    def user(self, role: str, *groups: str) -> pwd.struct_passwd:
        name = f"att{self.suffix}{role}"
        command = ["useradd", "--create-home", "--shell", "/bin/sh"]
        command += ["--groups", ",".join(groups)] if groups else []
        subprocess.run([*command, name], check=True, capture_output=True)
        self.users.append(name)
        return pwd.getpwnam(name)

    @staticmethod
    def as_user(user: pwd.struct_passwd, command: list[str]) -> list[str]:
        """`command` run as `user` (its groups included), exec'd: the pid is the command's own."""
        return ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--init-groups", "--", *command]

    def run(
        self, user: pwd.struct_passwd, command: list[str], env: dict[str, str], **options
    ) -> subprocess.CompletedProcess:
        return subprocess.run(self.as_user(user, command), env=env, capture_output=True, text=True, umask=0o022,
                              timeout=options.pop("timeout", 120), **options)

    def start(self, user: pwd.struct_passwd, command: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        process = subprocess.Popen(self.as_user(user, command), env=env, umask=0o022,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.processes.append(process)
        return process

    def serve(self, user: pwd.struct_passwd, socket_path: Path, env: dict[str, str]) -> subprocess.Popen:
        """`agenttui server` run by `user` with `env`, once its socket is there."""
        server = self.start(user, [*AGENTTUI, "server"], env)
        deadline = time.monotonic() + 30
        while not socket_path.exists():
            assert server.poll() is None and time.monotonic() < deadline, server.stderr.read().decode()
            time.sleep(0.05)
        return server

    def cleanup(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        for name in self.users:
            subprocess.run(["userdel", "--remove", "--force", name], capture_output=True)
        for name in self.groups:
            subprocess.run(["groupdel", name], capture_output=True)
        self.processes, self.users, self.groups = [], [], []


def user_env(user: pwd.struct_passwd, **extra: str) -> dict[str, str]:
    """An environment of `user`'s own: their home and XDG folders, no runtime dir (the fallback
    in /tmp is what the attacks aim at); the test's AGENTTUI_* settings (isolated_env's) kept."""
    home = Path(user.pw_dir)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("XDG_") and k not in ("TMPDIR", "HOME", "USER", "LOGNAME")}
    env.update(HOME=str(home), USER=user.pw_name, LOGNAME=user.pw_name, XDG_CONFIG_HOME=str(home / "config"),
               XDG_DATA_HOME=str(home / "data"), XDG_STATE_HOME=str(home / "state"))
    env.update(extra)
    return env


@pytest.fixture
def unix_users():
    users = UnixUsers()
    try:
        yield users
    finally:
        users.cleanup()
