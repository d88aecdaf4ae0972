"""The Client API, once, against both implementations: in-process (LocalClient) and over the
server's socket (SocketClient, with the personal server it starts). Noop backend: these are the
API's semantics; the Docker suites prove execution."""

import asyncio

import pytest

from agenttui.core.errors import NotActionable, NotFound
from agenttui.client.local import LocalClient
from agenttui.client.remote import SocketClient
from agenttui.core.config import load_settings
from agenttui.core.domain import InvalidRequest, Status, TestRequest


def request(query="hello", **extra):
    return TestRequest.parse(agent_code="def run(q):\n    return q\n", query=query, egress="none", **extra)


@pytest.fixture(params=["local", "socket"])
async def client(noop_backend, request):
    settings = load_settings()
    impl = LocalClient(settings, work_whole_queue=True) if request.param == "local" else SocketClient(settings)
    await impl.open()
    yield impl
    await impl.close()


@pytest.fixture
def noop_backend(monkeypatch):
    monkeypatch.setenv("AGENTTUI_BACKEND", "noop")
    monkeypatch.setenv("AGENTTUI_NOOP_RUN_S", "0.3")


async def test_submit_show_wait_logs(client):
    view = await client.submit(request("first"))
    assert view.status in (Status.QUEUED, Status.BUILDING, Status.RUNNING) and view.query == "first"
    done = await asyncio.wait_for(client.wait(view.id), 30)
    assert done.status is Status.COMPLETED and done.response == "noop: first"
    lines = [entry.text for entry in await client.logs(view.id)]
    assert "noop agent for test %d" % view.id in lines and lines[-1] == "[agenttui] COMPLETED"
    assert [e.seq for e in await client.logs(view.id, after_seq=2)][0] == 3
    shown = await client.show(view.id)
    assert shown.to_json() == done.to_json() | {"packages": shown.packages}


async def test_follow_logs_from_a_position_until_the_end(client):
    view = await client.submit(request())
    followed = [entry async for batch in client.follow_logs(view.id) for entry in batch]
    assert [e.seq for e in followed] == list(range(1, len(followed) + 1))
    assert followed[-1].text == "[agenttui] COMPLETED"
    later = [entry async for batch in client.follow_logs(view.id, after_seq=3) for entry in batch]
    assert later == followed[3:]


async def test_queue_history_and_search(client):
    ids = [(await client.submit(request(f"needle-{i}"))).id for i in range(3)]
    queue = await client.queue()
    listed = {t.id: t for t in queue.tests}
    assert queue.cap == 10 and queue.running + queue.queued == len(listed)
    for test_id in ids:  # each one is either in the queue or already finished
        assert test_id in listed or (await client.show(test_id)).status.is_terminal
    assert all(t.position is not None for t in queue.tests if t.status is Status.QUEUED)
    for test_id in ids:
        await asyncio.wait_for(client.wait(test_id), 30)
    found = await client.history(search="needle-1")
    assert [v.id for v in found] == [ids[1]]
    assert {v.id for v in await client.history(mine=True)} >= set(ids)


async def test_cancel_and_retry(client):
    view = await client.submit(request("to cancel", timeout_s=60))
    await client.cancel(view.id)
    cancelled = await asyncio.wait_for(client.wait(view.id), 30)
    assert cancelled.status is Status.CANCELLED
    with pytest.raises(NotActionable):
        await client.cancel(view.id)
    retried = await client.retry(view.id, query="second try")
    assert retried.parent_id == view.id and retried.id != view.id
    done = await asyncio.wait_for(client.wait(retried.id), 30)
    assert done.response == "noop: second try"
    assert (await client.show(view.id)).status is Status.CANCELLED  # the original is untouched
    assert (await client.request(retried.id)).query == "second try"


async def test_errors_are_the_same_exceptions(client):
    with pytest.raises(NotFound, match="no test with id 424242"):
        await client.show(424242)
    with pytest.raises(InvalidRequest) as info:
        await client.retry((await client.submit(request())).id, query="")
    assert "query" in info.value.errors


async def test_budgets_are_kept_with_the_request_and_a_retry_lays_its_own_over_them(client, monkeypatch):
    view = await client.submit(request("budgeted", budget={"max_tokens": 100}))
    stored = await client.request(view.id)
    assert stored.budget.model_dump() == {"max_cost_usd": None, "max_tokens": 100, "max_model_calls": None}
    retried = await client.retry(view.id, budget={"max_model_calls": 2})
    assert (await client.request(retried.id)).budget.model_dump() == {
        "max_cost_usd": None, "max_tokens": 100, "max_model_calls": 2}
    with pytest.raises(InvalidRequest) as info:
        await client.retry(view.id, budget={"max_model_calls": -1})
    assert info.value.errors == {"budget.max_model_calls": "must be between 0 and 1,000,000,000; it is -1"}
    for test_id in (view.id, retried.id):
        await asyncio.wait_for(client.wait(test_id), 30)


async def test_a_budget_the_request_leaves_unset_is_the_servers_setting(noop_backend, monkeypatch):
    monkeypatch.setenv("AGENTTUI_DEFAULT_MAX_MODEL_CALLS", "3")
    impl = LocalClient(load_settings(), work_whole_queue=True)
    await impl.open()
    try:
        view = await impl.submit(request("defaults", budget={"max_cost_usd": 0.5}))
        assert (await impl.request(view.id)).budget.model_dump() == {
            "max_cost_usd": 0.5, "max_tokens": None, "max_model_calls": 3}
        await asyncio.wait_for(impl.wait(view.id), 30)
    finally:
        await impl.close()


async def test_a_budget_nothing_would_keep_is_refused_not_ignored(client):
    full = TestRequest.parse(agent_code="def run(q):\n    return q\n", query="spend", egress="full",
                             budget={"max_model_calls": 1, "max_cost_usd": 0.5})
    with pytest.raises(InvalidRequest) as info:
        await client.submit(full)
    why = "needs egress provider-only (under full the model calls do not pass agenttui's forwarder)"
    assert info.value.errors == {"budget.max_model_calls": why, "budget.max_cost_usd": why}
    assert (await client.queue()).tests == []  # nothing was queued
