"""A test's model calls hold its messages and answers: on a shared server only its owner and the
admins may read its trace (real users, the installed command; the box of tests/server/test_privacy)."""

from __future__ import annotations

import json

from agenttui.core import errors

from ..server.shared_box import agenttui_as
from ..server.test_privacy import box  # noqa: F401  (the fixture: Alice's finished test on a shared server)


def test_only_the_owner_and_the_admins_read_a_trace(box):  # noqa: F811
    users, socket_path, test_id, people = box
    denied = agenttui_as(users, people["bob"], socket_path, "trace", str(test_id), "--json")
    assert denied.returncode == errors.ACCESS_DENIED.exit, denied.stderr
    assert "you cannot read the model calls of it" in denied.stderr and denied.stdout == ""
    for who in ("alice", "carol"):
        allowed = agenttui_as(users, people[who], socket_path, "trace", str(test_id), "--json")
        assert allowed.returncode == 0, allowed.stderr
        trace = json.loads(allowed.stdout)
        assert (trace["test_id"], trace["calls"], trace["totals"]) == (test_id, [], None)
