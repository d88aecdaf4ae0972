"""Bulk submit (issue 17): one request queues many tests, all checked before any is queued.
Through the installed command and a real server (noop backend: what is measured is the queue)."""

from __future__ import annotations

import json
import subprocess

import pytest


@pytest.fixture
def agenttui(agenttui_cmd, monkeypatch):
    monkeypatch.setenv("AGENTTUI_BACKEND", "noop")
    monkeypatch.setenv("AGENTTUI_NOOP_RUN_S", "60")  # they stay queued or running while looked at
    monkeypatch.setenv("AGENTTUI_MAX_CONCURRENT", "1")

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*agenttui_cmd, *args], capture_output=True, text=True, timeout=120)

    return run


def test_a_file_of_queries_is_queued_in_one_request(agenttui, tmp_path):
    agent = tmp_path / "agent.py"
    agent.write_text("def run(query):\n    return query\n")
    queries = tmp_path / "queries.txt"
    queries.write_text("first\n\nsecond question\nthird\n")  # a blank line is no query
    done = agenttui("submit", str(agent), "--queries", str(queries), "--priority", "low")
    assert done.returncode == 0, done.stderr
    ids = [int(line) for line in done.stdout.split()]
    assert len(ids) == 3 and ids == sorted(ids), done.stdout
    shown = [json.loads(agenttui("show", str(test_id), "--json").stdout) for test_id in ids]
    assert [view["query"] for view in shown] == ["first", "second question", "third"]
    assert {view["priority"] for view in shown} == {"low"}  # the common flags apply to each
    queue = json.loads(agenttui("queue", "--json").stdout)
    assert queue["running"] + queue["queued"] == 3, queue


def test_one_bad_query_queues_none_and_names_its_line(agenttui, tmp_path):
    agent = tmp_path / "agent.py"
    agent.write_text("def run(query):\n    return query\n")
    queries = tmp_path / "queries.txt"
    queries.write_text("fine\n" + "x" * 5000 + "\nalso fine\n")
    done = agenttui("submit", str(agent), "--queries", str(queries))
    assert done.returncode == 2, done.stderr
    assert f"--queries {queries} line 2: must be 1–2000 characters" in done.stderr, done.stderr
    assert "nothing was queued" in done.stderr and "Traceback" not in done.stderr
    queue = json.loads(agenttui("queue", "--json").stdout)
    assert queue["running"] + queue["queued"] == 0, queue
    both = agenttui("submit", str(agent), "--queries", str(queries), "--query", "x")
    assert both.returncode == 2 and "not both" in both.stderr


async def test_the_store_queues_all_or_none(tmp_path):
    from agenttui.core.domain import TestRequest
    from agenttui.engine.store import Owner, Store

    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 's.db'}")
    try:
        requests = [(TestRequest.parse(agent_code="def run(q):\n    return q\n", query=f"q{n}"), None) for n in range(3)]
        tests = await store.submit_many(requests, Owner(1000, "alice"))
        assert [t.query for t in tests] == ["q0", "q1", "q2"] and len({t.id for t in tests}) == 3
        # A failure inside the transaction (here: a sealed-secrets row for a test id that the
        # unique key refuses) leaves nothing of the batch behind.
        before = len(await store.list_tests(limit=100))
        with pytest.raises(Exception):
            await store.submit_many([(requests[0][0], "sealed"), (requests[1][0], object())], Owner(1000, "alice"))
        assert len(await store.list_tests(limit=100)) == before
    finally:
        await store.close()
