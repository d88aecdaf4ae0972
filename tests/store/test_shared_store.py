"""Several processes ("servers" with distinct identities) on one store: no double claim, the cap
holds (recorded inside each claim transaction), everything finishes — SQLite and PostgreSQL."""

import asyncio
import os
import subprocess
import sys
from collections import Counter

import pytest

from agenttui.core.domain import Status, TestRequest
from agenttui.engine.store import Owner, Store

COUNTS = {"sqlite": (2, 300), "postgresql": (3, 2000)}  # (servers, tests); 3 × 2000 on PostgreSQL


async def seed(url: str, count: int) -> None:
    store = await Store.open(url)
    request = TestRequest.parse(agent_code="def run(q): return q", query="race")
    try:
        for _ in range(count):
            await store.submit(request, Owner(1000 + _ % 3, f"user{_ % 3}"))
    finally:
        await store.close()


async def outcome(url: str):
    store = await Store.open(url)
    try:
        return await store.claims(), await store.list_tests(limit=100_000)
    finally:
        await store.close()


def test_servers_sharing_a_store_never_double_claim_and_hold_the_cap(store_url, request):
    kind = "sqlite" if store_url.startswith("sqlite") else "postgresql"
    servers, tests = COUNTS[kind]
    asyncio.run(seed(store_url, tests))
    env = {**os.environ, "AGENTTUI_DB_URL": store_url, "AGENTTUI_BACKEND": "noop",
           "AGENTTUI_MAX_CONCURRENT": "5", "AGENTTUI_POLL_S": "0.05"}
    workers = [
        subprocess.Popen([sys.executable, "-m", "agenttui", "worker", "--idle-exit"], env=env,
                         stderr=subprocess.PIPE, text=True)
        for _ in range(servers)
    ]
    for worker in workers:
        _, err = worker.communicate(timeout=600)
        assert worker.returncode == 0, err
    claims, finished = asyncio.run(outcome(store_url))
    assert Counter(t.status for t in finished) == {Status.COMPLETED.value: tests}
    per_test = Counter(c.test_id for c in claims)
    assert len(per_test) == tests and set(per_test.values()) == {1}  # 0 double claims
    assert max(c.active_after for c in claims) <= 5  # seen inside the claim transaction
    assert len({c.owner for c in claims}) == servers  # every server took part
