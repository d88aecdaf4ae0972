"""A follower in the process that stores the lines (the server) is woken by the write itself,
not by its next poll."""

from __future__ import annotations

import asyncio

from agenttui.engine import service as service_module
from agenttui.engine.service import Service
from agenttui.core.config import load_settings
from agenttui.core.domain import Status, TestRequest
from agenttui.engine.store import Fence, Owner, Store

OWNER = Owner(1000, "alice")


async def test_next_change_is_set_by_the_next_committed_write(tmp_path):
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 's.db'}")
    try:
        change = store.next_change()
        await store.list_tests()  # a read is no change
        assert not change.is_set()
        await store.submit(TestRequest.parse(agent_code="def run(q): return q", query="q"), OWNER)
        assert change.is_set()
        assert not store.next_change().is_set()  # a fresh one for the write after
    finally:
        await store.close()


async def test_a_follower_gets_lines_when_they_are_stored_not_at_its_next_poll(tmp_path, monkeypatch):
    monkeypatch.setattr(service_module, "FOLLOW_POLL_S", 60.0)  # a poll would take a minute
    settings = load_settings(db_url=f"sqlite+aiosqlite:///{tmp_path / 's.db'}", backend="noop")
    store = await Store.open(settings.resolved_db_url)
    try:
        service = Service(store, settings)
        view = await service.submit(OWNER, TestRequest.parse(agent_code="def run(q): return q", query="q"))
        (test,) = await store.claim("w", cap=1, lease_s=60)
        fence = Fence("w", test.attempt)
        follow = service.follow_logs(OWNER, view.id, after_seq=test.log_seq)  # after the claim's own line
        first = asyncio.ensure_future(follow.__anext__())
        await asyncio.sleep(0.3)  # the follower has read nothing and waits
        assert not first.done()
        await store.append_logs(view.id, [(0.0, "stdout", "hello")], fence=fence)
        batch = await asyncio.wait_for(first, 10)
        assert [line.text for line in batch] == ["hello"]
        await store.transition(view.id, Status.RUNNING, fence=fence)
        await store.transition(view.id, Status.COMPLETED, fence=fence)
        rest = [line async for batch in follow for line in batch]  # ends with the test, at once
        assert rest == []
    finally:
        await store.close()
