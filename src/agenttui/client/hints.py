"""What to tell a user on a remote box about fetching a file agenttui wrote there."""

from __future__ import annotations

import getpass
import socket
from pathlib import Path

_LOOPBACK_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")


def reachable_host() -> str:
    """This box's name as another machine would use it: the fully qualified name, unless the
    resolver only knows this box as localhost (then the host name). May ask DNS."""
    fqdn = socket.getfqdn()
    if fqdn in _LOOPBACK_NAMES or fqdn.startswith(("localhost.", "127.")) or fqdn == "::1":
        return socket.gethostname()
    return fqdn


def copy_hint(path: Path) -> str:
    """How to fetch `path` from this box when it was reached over SSH."""
    return f"scp {getpass.getuser()}@{reachable_host()}:{path} ."
