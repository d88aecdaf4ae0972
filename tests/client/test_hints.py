"""The copy hint names a host another machine can reach: never localhost."""

from __future__ import annotations

import getpass
import socket
from pathlib import Path

from agenttui.client.hints import copy_hint


def test_the_copy_hint_names_this_box_as_another_machine_would_reach_it():
    hint = copy_hint(Path("/data/packages/agenttui-1-x.zip"))
    user_host, _, rest = hint.removeprefix("scp ").partition(":")
    user, _, host = user_host.partition("@")
    assert user == getpass.getuser() and rest == "/data/packages/agenttui-1-x.zip ."
    assert host not in ("localhost", "localhost.localdomain") and not host.startswith("127.")
    assert host in (socket.getfqdn(), socket.gethostname())
