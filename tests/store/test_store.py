import time

import pytest

from agenttui.core.domain import IllegalTransition, Status, TestRequest
from agenttui.engine.store import Fence, Owner, Store, count_into_cap

ALICE = Owner(1001, "alice")


def request(query="q", priority="normal"):
    return TestRequest.parse(agent_code="def run(q): return q", query=query, priority=priority)


async def test_sqlite_runs_in_wal_with_a_busy_timeout(sqlite_store):
    async with sqlite_store.engine.connect() as conn:
        mode = (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar()
        timeout = (await conn.exec_driver_sql("PRAGMA busy_timeout")).scalar()
    assert mode == "wal" and timeout >= 5000


async def test_sqlite_writers_take_turns_on_the_lock_file(sqlite_store, tmp_path):
    """Another process holding the writers' lock holds back this one's writes (they queue on
    it rather than polling SQLite's busy handler) and they proceed the moment it is free."""
    import asyncio
    import fcntl
    import os

    await sqlite_store.submit(request("first"), ALICE)
    lock_file = tmp_path / "store.db-writers.lock"
    assert lock_file.exists()
    fd = os.open(lock_file, os.O_RDWR)  # its own open file: conflicts like another process's
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        blocked = asyncio.ensure_future(sqlite_store.submit(request("second"), ALICE))
        await asyncio.sleep(0.5)
        assert not blocked.done()
        assert [t.query for t in await sqlite_store.list_tests()] == ["first"]  # reads go on
        fcntl.flock(fd, fcntl.LOCK_UN)
        second = await asyncio.wait_for(blocked, 10)
        assert second.query == "second"
    finally:
        os.close(fd)


async def test_submit_persists_owner_and_request(store):
    test = await store.submit(request("hello"), ALICE)
    assert test.status is Status.QUEUED and test.owner_name == "alice" and test.owner_uid == 1001
    # The row is really stored, readable by any process.
    other = await Store.open(store.url)
    try:
        assert [(t.query, t.status) for t in await other.list_tests()] == [("hello", "QUEUED")]
    finally:
        await other.close()
    assert (await store.get(test.id)).request.query == "hello"


async def test_claims_follow_priority_then_fifo(store):
    low = await store.submit(request("low", "low"), ALICE)
    first = await store.submit(request("first"), ALICE)
    high = await store.submit(request("high", "high"), ALICE)
    second = await store.submit(request("second"), ALICE)
    claimed = await store.claim("w", cap=10, lease_s=5)
    assert [t.id for t in claimed] == [high.id, first.id, second.id, low.id]
    assert all(t.status is Status.BUILDING and t.attempt == 1 and t.lease_owner == "w" for t in claimed)


async def test_cap_counts_building_and_running(store):
    for i in range(5):
        await store.submit(request(str(i)), ALICE)
    first = await store.claim("a", cap=3, lease_s=5)
    assert len(first) == 3
    await store.transition(first[0].id, Status.RUNNING, fence=Fence("a", 1))
    assert await store.claim("b", cap=3, lease_s=5) == []  # 1 RUNNING + 2 BUILDING
    await store.transition(first[0].id, Status.COMPLETED, fence=Fence("a", 1))
    assert len(await store.claim("b", cap=3, lease_s=5)) == 1
    audit = await store.claims()
    assert max(c.active_after for c in audit) == 3


async def test_completion_is_fenced_by_owner_and_attempt(store):
    test = await store.submit(request(), ALICE)
    (claimed,) = await store.claim("old", cap=1, lease_s=0.01)
    time.sleep(0.02)
    adopted = await store.take_over(claimed, "new", lease_s=5)
    assert adopted is not None and adopted.lease_owner == "new"
    # The stale owner can neither finish it nor append to its log.
    assert await store.transition(test.id, Status.COMPLETED, fence=Fence("old", 1), response="stale") is None
    assert await store.append_logs(test.id, [(time.time(), "stdout", "stale")], fence=Fence("old", 1)) is False
    assert await store.update_fenced(test.id, Fence("old", 1), response="stale") is False
    await store.transition(test.id, Status.RUNNING, fence=Fence("new", 1))
    done = await store.transition(test.id, Status.COMPLETED, fence=Fence("new", 1), response="fresh")
    assert done.response == "fresh" and done.lease_owner is None


async def test_take_over_only_once(store):
    await store.submit(request(), ALICE)
    (claimed,) = await store.claim("old", cap=1, lease_s=0.01)
    time.sleep(0.02)
    assert await store.take_over(claimed, "x", lease_s=5) is not None
    assert await store.take_over(claimed, "y", lease_s=5) is None


async def test_live_lease_is_not_taken_over(store):
    await store.submit(request(), ALICE)
    (claimed,) = await store.claim("owner", cap=1, lease_s=30)
    assert await store.expired_leases() == []
    assert await store.take_over(claimed, "thief", lease_s=5) is None


async def test_illegal_transition_is_refused_and_nothing_changes(store, caplog):
    test = await store.submit(request(), ALICE)
    with pytest.raises(IllegalTransition):
        await store.transition(test.id, Status.COMPLETED)
    assert (await store.get(test.id)).status is Status.QUEUED
    assert "refused illegal transition" in caplog.text


async def test_cancel_of_a_queued_test_dequeues_it(store):
    test = await store.submit(request(), ALICE)
    cancelled = await store.request_cancel(test.id)
    assert cancelled.status is Status.CANCELLED
    assert await store.claim("w", cap=5, lease_s=5) == []


async def test_cancel_of_an_active_test_flags_it_for_its_owner(store):
    test = await store.submit(request(), ALICE)
    await store.claim("w", cap=5, lease_s=5)
    flagged = await store.request_cancel(test.id)
    assert flagged.status is Status.BUILDING and flagged.cancel_requested
    assert await store.cancel_requested("w") == [test.id]


async def test_logs_are_ordered_resumable_and_capped(store):
    test = await store.submit(request(), ALICE)
    lines = [(time.time(), "stdout", f"line {i:04d} " + "x" * 40) for i in range(100)]
    assert await store.append_logs(test.id, lines[:10], cursor="c10")
    assert await store.append_logs(test.id, lines[10:], cursor="c100")
    stored = await store.logs(test.id)
    record = await store.get(test.id)
    # Cap is 2000 bytes in this fixture: some lines kept, then exactly one notice.
    assert record.log_truncated and record.log_cursor == "c100"
    assert [r.seq for r in stored] == list(range(1, len(stored) + 1))
    assert stored[-1].stream == "system" and "log truncated" in stored[-1].text
    assert sum(1 for r in stored if "log truncated" in r.text) == 1
    kept = [r.text for r in stored[:-1]]
    assert kept == [text for _, _, text in lines[: len(kept)]]
    assert [r.seq for r in await store.logs(test.id, after_seq=5, limit=3)] == [6, 7, 8]


async def test_heartbeat_renews_only_own_leases(store):
    a = await store.submit(request(), ALICE)
    await store.claim("w", cap=5, lease_s=1)
    assert await store.heartbeat("w", [a.id], lease_s=60) == {a.id}
    assert await store.heartbeat("other", [a.id], lease_s=60) == set()
    assert (await store.get(a.id)).lease_expires_at > time.time() + 50


async def test_archive_purges_logs_of_old_finished_tests(store):
    test = await store.submit(request(), ALICE)
    await store.request_cancel(test.id)
    await store.system_log(test.id, "hello")
    assert await store.archive_older_than(-1) == 1
    assert (await store.get(test.id)).status is Status.ARCHIVED
    assert await store.logs(test.id) == []


async def test_queue_status_and_change_token(store):
    before = await store.change_token()
    await store.submit(request(), ALICE)
    await store.submit(request(), ALICE)
    await store.claim("w", cap=5, lease_s=5, limit=1)
    status = await store.queue_status(cap=4)
    assert (status.running, status.queued, status.utilization) == (1, 1, 25.0)
    assert await store.change_token() != before
    # The queue pane's read: counts and lists from one transaction, so they always agree.
    urgent = await store.submit(request(priority="high"), ALICE)
    snapshot, active, queued = await store.queue_snapshot(cap=4)
    assert (snapshot.running, snapshot.queued) == (len(active), len(queued)) == (1, 2)
    assert queued[0].id == urgent.id and active[0].status is Status.BUILDING


async def test_fair_share_between_users_within_a_priority(store):
    bob = Owner(1002, "bob")
    alice_ids = [(await store.submit(request(f"a{i}"), ALICE)).id for i in range(10)]
    (first,) = await store.claim("w", cap=1, lease_s=5)
    assert first.id == alice_ids[0]
    bobs = await store.submit(request("b"), bob)
    # Alice already runs one test; Bob's single test goes before her remaining nine.
    assert [t.id for t in await store.queued_in_order()][:2] == [bobs.id, alice_ids[1]]
    await store.transition(first.id, Status.RUNNING, fence=Fence("w", 1))
    await store.transition(first.id, Status.COMPLETED, fence=Fence("w", 1))
    (next_claimed,) = await store.claim("w", cap=1, lease_s=5)
    assert next_claimed.id == bobs.id


async def test_priority_still_beats_fair_share(store):
    bob = Owner(1002, "bob")
    await store.submit(request("a-low"), ALICE)
    urgent = await store.submit(request("a-high", "high"), ALICE)
    await store.submit(request("b-normal"), bob)
    assert (await store.queued_in_order())[0].id == urgent.id


async def test_a_small_claim_takes_the_same_tests_as_ranking_the_whole_queue(store):
    """The claim reads only each user's first few waiting tests; it must pick exactly what
    ranking every queued test by the documented rule would pick."""
    import random

    rng = random.Random(7)
    users = [Owner(2000 + i, f"user{i}") for i in range(4)]
    for i in range(60):
        await store.submit(request(f"t{i}", rng.choice(["low", "normal", "high"])), rng.choice(users))
    await store.claim("w", cap=5, lease_s=60)  # some users now have tests running
    for take in (1, 3, 7):
        queued = [t for t in await store.list_tests(statuses=[Status.QUEUED], limit=1000)]
        tests = await store.list_tests(limit=1000)
        running = {u.uid: sum(t.owner_uid == u.uid and t.status in (Status.BUILDING, Status.RUNNING) for t in tests)
                   for u in users}
        served = {u.uid: max([t.claimed_at or 0 for t in tests if t.owner_uid == u.uid], default=0) for u in users}
        ranked = []
        for uid in running:
            mine = sorted((t for t in queued if t.owner_uid == uid), key=lambda t: (t.priority, t.queued_at, t.id))
            ranked += [(t.priority, place + running[uid], served[uid], t.queued_at, t.id)
                       for place, t in enumerate(mine, start=1)]
        expected = [entry[-1] for entry in sorted(ranked)[:take]]
        claimed = await store.claim("w", cap=100, lease_s=60, limit=take)
        assert [t.id for t in claimed] == expected


async def test_engine_notes_ride_on_the_write_they_describe(store):
    test = await store.submit(request(), ALICE)
    (claimed,) = await store.claim("w", cap=5, lease_s=60)
    nonce = claimed.result_nonce
    assert nonce and claimed.log_seq == 1  # the claim wrote both
    fence = Fence("w", claimed.attempt)
    assert await store.update_fenced(test.id, fence, note="preparing", image="img")
    moved = await store.transition(test.id, Status.RUNNING, fence=fence, notes=["started", "running"], handle="h")
    assert moved.status is Status.RUNNING and moved.handle == "h" and moved.result_nonce == nonce
    assert moved.image == "img"
    assert await store.append_logs(test.id, [(0.0, "stdout", "out")], fence=fence, result_json='{"ok": true}')
    assert (await store.get(test.id)).result_json == '{"ok": true}'
    # A writer that lost the test writes neither its note nor its change.
    stale = Fence("someone-else", claimed.attempt)
    assert not await store.update_fenced(test.id, stale, note="stale", handle="other")
    assert await store.transition(test.id, Status.COMPLETED, fence=stale, notes=["stale end"]) is None
    ended = await store.transition(test.id, Status.COMPLETED, fence=fence, notes=["COMPLETED"])
    assert ended.status is Status.COMPLETED and ended.handle == "h"
    assert [(line.seq, line.stream, line.text) for line in await store.logs(test.id)] == [
        (1, "system", "[agenttui] preparing image (owner w)"), (2, "system", "preparing"),
        (3, "system", "started"), (4, "system", "running"), (5, "stdout", "out"), (6, "system", "COMPLETED"),
    ]


async def test_a_transition_returns_the_test_as_a_fresh_read_has_it(store):
    """Transitions write through the driver's own SQL; what they return is typed like a read
    (SQLite keeps booleans as 0/1) and an unknown field is refused by name."""
    test = await store.submit(request(), ALICE)
    (claimed,) = await store.claim("w", cap=5, lease_s=60)
    fence = Fence("w", claimed.attempt)
    await store.transition(test.id, Status.RUNNING, fence=fence, handle="h", running_at=time.time())
    ended = await store.transition(test.id, Status.FAILED, fence=fence, notes=["OOM"], oom_killed=True, exit_code=137)
    assert ended.oom_killed is True and ended.cancel_requested is False and ended.log_truncated is False
    assert ended.model_dump() == (await store.get(test.id)).model_dump()
    with pytest.raises(KeyError, match="no_such_field"):
        await store.update_fenced(test.id, fence, no_such_field=1)


async def test_every_claim_gives_its_attempt_a_fresh_nonce_and_first_line(store):
    test = await store.submit(request(), ALICE)
    (first,) = await store.claim("w", cap=5, lease_s=60)
    await store.transition(test.id, Status.QUEUED, fence=Fence("w", first.attempt))  # an infrastructure retry
    (second,) = await store.claim("v", cap=5, lease_s=60)
    assert second.attempt == 2 and second.result_nonce and second.result_nonce != first.result_nonce
    assert [(line.seq, line.text) for line in await store.logs(test.id)] == [
        (1, "[agenttui] preparing image (owner w)"), (2, "[agenttui] attempt 2: preparing image (owner v)"),
    ]
    stored = await store.get(test.id)
    assert stored.log_seq == 2 and stored.log_bytes == sum(len(line.text) + 1 for line in await store.logs(test.id))


async def test_a_status_changes_only_through_the_transition_gate(store):
    test = await store.submit(request(), ALICE)
    (claimed,) = await store.claim("w", cap=5, lease_s=60)
    fence = Fence("w", claimed.attempt)
    with pytest.raises(ValueError, match="transition"):
        await store.update_fenced(test.id, fence, status=Status.COMPLETED.value)
    with pytest.raises(ValueError, match="transition"):
        await store.append_logs(test.id, [], fence=fence, status=Status.COMPLETED.value)
    with pytest.raises(IllegalTransition):
        await store.transition(test.id, Status.ARCHIVED, fence=fence)
    assert (await store.get(test.id)).status is Status.BUILDING


@pytest.mark.parametrize(
    ("lines", "used", "expected"),
    [
        ([], 5, (5, None)),
        ([(0.0, "stdout", "abc"), (0.0, "stdout", "é")], 0, (7, None)),  # 3+1 and 2+1 bytes
        ([(0.0, "stdout", "abc"), (0.0, "stdout", "defgh")], 5, (9, 1)),  # the second passes 10
        ([(0.0, "system", "abcdefgh"), (0.0, "stdout", "a")], 5, (14, 1)),  # engine lines never pass it
        ([(0.0, "stdout", "abcdefghijk")], 0, (0, 0)),
    ],
)
def test_the_log_cap_counts_each_line_and_finds_the_first_agent_line_past_it(lines, used, expected):
    assert count_into_cap(lines, used, 10) == expected



async def test_servers_opening_a_new_store_at_once_all_open_it_and_agree_on_its_id(store_url):
    """Several servers started together on a store with no identity yet: none fails writing it."""
    import asyncio

    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    for _round in range(12):  # each round races on a store whose identity is not written yet
        stores = await asyncio.gather(*(Store.open(store_url) for _ in range(8)))
        try:
            assert len({store.store_id for store in stores}) == 1
        finally:
            await asyncio.gather(*(store.close() for store in stores))
        engine = create_async_engine(store_url)
        async with engine.begin() as conn:
            await conn.execute(text("DELETE FROM store_meta WHERE key = 'store_id'"))
        await engine.dispose()
