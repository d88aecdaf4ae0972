"""Who sees what of a test on a shared server (issue 14, point 3): everyone sees every test's
metadata (owner, status, times, position), only its owner and the admins its content (query,
response, error), unless the admin sets share_test_content. Real users, a server run by a
service user, the installed `agenttui` command."""

from __future__ import annotations

import json

import pytest

from .shared_box import agenttui_as, start_server, users_file
from .unix_users import UnixUsers

SECRET = "the plan alice keeps to herself"


@pytest.fixture(scope="module")
def box():
    """Alice's finished test, then one of hers running and one queued (cap 1), on a server whose
    admin group holds Carol; Bob is just another user."""
    users = UnixUsers()
    try:
        admins = users.group("adm")
        svc, alice, bob, carol = users.user("svc"), users.user("ali"), users.user("bob"), users.user("car", admins)
        agent = str(users_file(alice, "agent.py", "def run(query):\n    return query\n"))
        # A server whose tests end at once finishes the first; the next one's tests take their time.
        quick, quick_server = start_server(users, svc, folder="quick", noop_run_s=0)
        done = agenttui_as(users, alice, quick, "submit", agent, "--query", SECRET, "--json")
        assert done.returncode == 0, done.stderr
        quick_server.terminate()
        quick_server.wait(timeout=30)
        socket_path, _server = start_server(users, svc, admin_group=admins, noop_run_s=60, max_concurrent=1)
        later = [agenttui_as(users, alice, socket_path, "submit", agent, "-q", SECRET, "--no-wait") for _ in range(2)]
        assert all(r.returncode == 0 for r in later), [r.stderr for r in later]
        yield users, socket_path, json.loads(done.stdout)["id"], dict(svc=svc, alice=alice, bob=bob, carol=carol)
    finally:
        users.cleanup()


def views(box, who: str, socket_path=None) -> dict:
    """What `who` gets from show, history and queue (--json) for Alice's tests."""
    users, default_socket, test_id, people = box
    user, socket_path = people[who], socket_path or default_socket

    def run(*args: str):
        result = agenttui_as(users, user, socket_path, *args)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    queue = run("queue", "--json")["tests"]
    return {"show": run("show", str(test_id), "--json"), "history": run("history", "--json"),
            "searched": run("history", "--json", "--search", "keeps to"), "queue": queue}


def test_others_see_metadata_only(box):
    users, socket_path, test_id, people = box
    seen = views(box, "bob")
    assert SECRET not in json.dumps(seen)  # not in show, history, the queue, nor a search's matches
    shown = seen["show"]
    assert (shown["id"], shown["owner"], shown["status"]) == (test_id, people["alice"].pw_name, "COMPLETED")
    assert shown["content_hidden"] and shown["created_at"] and shown["finished_at"]
    assert [t["id"] for t in seen["history"]] == [test_id]  # the others are running and queued
    assert seen["searched"] == []  # a search never matches another user's content
    assert seen["queue"] and all(t["owner_name"] == people["alice"].pw_name and t["query"] == "" for t in seen["queue"])
    assert any(t.get("position") == 1 for t in seen["queue"])
    text = agenttui_as(users, people["bob"], socket_path, "show", str(test_id))
    assert "(hidden: not your test)" in text.stdout and SECRET not in text.stdout


@pytest.mark.parametrize("who", ["alice", "carol", "svc"])
def test_the_owner_the_admins_and_the_servers_user_see_everything(box, who):
    seen = views(box, who)
    assert seen["show"]["query"] == SECRET and SECRET in seen["show"]["response"]
    assert not seen["show"]["content_hidden"]
    assert [t["query"] for t in seen["searched"]] == [SECRET]
    assert [t["query"] for t in seen["queue"]] == [SECRET, SECRET]


def test_an_admin_may_share_the_content_with_everyone(box):
    users, _socket_path, test_id, people = box
    shared, _server = start_server(users, people["svc"], folder="sock2", share_test_content="true", max_concurrent=1)
    seen = views(box, "bob", shared)
    assert seen["show"]["query"] == SECRET and not seen["show"]["content_hidden"]
    assert [t["id"] for t in seen["searched"]] == [test_id]
