"""Whom a client talks to: a server it can trust with the agent code and keys it sends.

Personal mode: the runtime folder must be this user's own with mode 0700 (else another user
could have made it and serve a socket there), and the server behind the socket must run as this
user. Shared mode (`socket_path` set): the shared server is the user that owns the socket file,
trusted only when every folder on the socket's path is root's, that user's or this user's own and
nobody else could have put the socket (or a folder on the way) there. In both, the server's uid is the kernel's
answer for the connection (SO_PEERCRED), never anything the server says.
"""

from __future__ import annotations

import errno
import os
import socket
import stat
import struct
from pathlib import Path
from typing import NamedTuple

from agenttui.core.errors import AccessDenied
from agenttui.core.paths import UnsafeFolder, trusted_runtime_dir, user_name


class Peer(NamedTuple):
    pid: int
    uid: int
    gid: int


def peer_of(socket_path: Path, timeout: float = 5.0) -> Peer | None:
    """The kernel's credentials of the process that listens on `socket_path` (None: nobody
    listens there). Nothing is sent on the connection."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(str(socket_path))
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EPERM):
                raise _no_access(socket_path) from None
            return None
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return Peer(*struct.unpack("3i", creds))


def expected_server_uid(socket_path: Path, personal: bool) -> int | None:
    """The uid the server on `socket_path` must run as (None: there is no socket to check)."""
    if personal:
        trusted_runtime_dir(socket_path.parent)
        return os.getuid()
    folder = socket_path.parent
    try:
        folder_info = os.stat(folder)
        info = os.lstat(socket_path)
    except FileNotFoundError:
        return None
    except PermissionError:
        raise _no_access(folder) from None
    if not stat.S_ISSOCK(info.st_mode):
        raise UnsafeFolder(f"{socket_path} (setting socket_path) is not a socket; ask the box's admin")
    _check_placed_by_trusted(socket_path, info.st_uid, folder_info)
    return info.st_uid


def _check_placed_by_trusted(socket_path: Path, server_uid: int, folder_info: os.stat_result) -> None:
    """Every folder from the socket's up to / belongs to root, the server's user or this user,
    and none lets anyone else add an entry: except a sticky one (/tmp), where the entry on the
    way must then be root's or this user's, since whoever makes a name there first owns it."""
    trusted, sure = (0, server_uid, os.getuid()), (0, os.getuid())
    entry, entry_owner = socket_path, server_uid
    for folder in socket_path.parents:
        info = folder_info if folder == socket_path.parent else os.stat(folder)
        problem = ""
        if info.st_uid not in trusted:
            problem = f"{folder} belongs to {user_name(info.st_uid)}"
        elif info.st_mode & 0o022 and not (info.st_mode & stat.S_ISVTX and entry_owner in sure):
            problem = f"{entry} belongs to {user_name(entry_owner)} in {folder}, where other users may add files"
        if problem:
            raise UnsafeFolder(
                f"the agenttui socket {socket_path} (setting socket_path) could have been put there by another "
                f"user: {problem}, so agenttui will not use it. Ask the box's admin for a socket in a folder "
                "only root or the server's user may write (e.g. /run/agenttui)"
            )
        entry, entry_owner = folder, info.st_uid


def check_server(socket_path: Path, personal: bool) -> None:
    """Refuse a server that is not who it must be, before anything is sent to it."""
    expected = expected_server_uid(socket_path, personal)
    if expected is None:
        return
    if personal:
        _check_own_socket(socket_path)
    peer = peer_of(socket_path)
    if peer is None or peer.uid == expected:
        return
    whose = "you" if personal else f"the socket's owner, {user_name(expected)}"
    raise AccessDenied(
        f"the agenttui socket {socket_path} is served by {user_name(peer.uid)}, not by {whose}: another "
        "user may be posing as the server, so agenttui sends it nothing. "
        + (f"Remove {socket_path.parent} and run the command again" if personal else "Tell the box's admin")
    )


def _no_access(path: Path) -> AccessDenied:
    import grp

    try:
        group = f"group {grp.getgrgid(os.stat(path).st_gid).gr_name}"
    except (OSError, KeyError):
        group = "the group that may use the agenttui server"
    return AccessDenied(f"permission denied on {path}: ask the box's admin to add you to {group}")


def _check_own_socket(socket_path: Path) -> None:
    try:
        info = os.lstat(socket_path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(info.st_mode) or info.st_uid != os.getuid():
        raise UnsafeFolder(
            f"{socket_path} is not a socket of yours (it belongs to {user_name(info.st_uid)}): agenttui will "
            f"not use it. Remove {socket_path.parent} and run the command again"
        )
