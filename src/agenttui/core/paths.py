"""Where agenttui keeps its files: XDG directories through platformdirs, so setting
XDG_CONFIG_HOME / XDG_DATA_HOME / XDG_STATE_HOME / XDG_RUNTIME_DIR isolates a whole run.
Light on purpose: the headless client imports it."""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

import platformdirs

from agenttui.core.errors import AccessDenied

APP_NAME = "agenttui"
PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


class UnsafeFolder(AccessDenied):
    """A folder agenttui must trust (the runtime folder, a shared socket's folder) could be
    controlled by another user."""


def config_dir() -> Path:
    return Path(platformdirs.user_config_dir(APP_NAME))


def data_dir() -> Path:
    return Path(platformdirs.user_data_dir(APP_NAME))


def state_dir() -> Path:
    return Path(platformdirs.user_state_dir(APP_NAME))


def runtime_dir() -> Path:
    """Where the personal server's socket lives: $XDG_RUNTIME_DIR/agenttui, or a private
    folder in /tmp when the session has no runtime dir (e.g. after `su`)."""
    base = os.environ.get("XDG_RUNTIME_DIR")
    if base and os.access(base, os.W_OK):
        return Path(base) / APP_NAME
    import tempfile  # only here: every headless command's start reads this

    return Path(tempfile.gettempdir()) / f"{APP_NAME}-{os.getuid()}"


def user_name(uid: int) -> str:
    import pwd

    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def private_dir(path: Path, *, ours: bool = False) -> Path:
    """`path` as a folder for this user alone: missing folders (parents too, as the XDG spec
    asks) are created 0700. With `ours` (a folder agenttui names itself, e.g. the data dir), an
    existing one of this user's is narrowed to 0700 too: older versions left it 0755."""
    missing: list[Path] = []
    folder = path
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):
            folder.mkdir(mode=PRIVATE_DIR)  # the umask can only narrow it
    if ours and not missing:
        info = path.stat()
        if info.st_uid == os.getuid() and stat.S_IMODE(info.st_mode) & 0o077:
            path.chmod(PRIVATE_DIR)
    return path


def private_file(path: Path) -> Path:
    """Create `path` empty with mode 0600 unless it exists: whoever opens it next (a log
    handler, SQLite) finds it private from its first byte."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, PRIVATE_FILE))
    return path


def trusted_runtime_dir(path: Path) -> Path:
    """The personal server's folder, created 0700 when missing. One this user does not own
    with mode 0700 is refused: another user who made it (`/tmp/agenttui-<uid>` is guessable)
    could pose as the server there and be sent the agent code and its keys."""
    created = False
    try:
        path.mkdir(mode=PRIVATE_DIR)
        created = True
    except FileExistsError:
        pass
    info = os.lstat(path)
    if created and stat.S_IMODE(info.st_mode) != PRIVATE_DIR:
        os.chmod(path, PRIVATE_DIR)  # our own new folder, narrowed by an unusual umask
        info = os.lstat(path)
    problem, fix = "", f"remove it (`rm -r {path}`; ask the box's admin if you cannot)"
    if not stat.S_ISDIR(info.st_mode):
        problem = "is not a folder (a symbolic link or a file)"
    elif info.st_uid != os.getuid():
        problem = f"belongs to {user_name(info.st_uid)}, not to you"
    elif stat.S_IMODE(info.st_mode) != PRIVATE_DIR:
        problem = f"has mode {stat.S_IMODE(info.st_mode):o}, not 700"
        fix = f"`chmod 700 {path}` if you made it yourself, else remove it"
    if problem:
        raise UnsafeFolder(
            f"the runtime folder {path} {problem}: another user could pose as your agenttui server "
            f"there, so agenttui will not use it. {fix[0].upper()}{fix[1:]}, or set XDG_RUNTIME_DIR to "
            "a folder only you can write, then run the command again"
        )
    return path


def server_log_file() -> Path:
    return state_dir() / "server.log"


def config_file() -> Path:
    return Path(os.environ.get("AGENTTUI_CONFIG", config_dir() / "config.toml"))
