"""A test's model calls in the store (SQLite and PostgreSQL): written in batches, redacted, capped,
priced, summed, removed with the test's archive; and a store the previous version wrote gains the
table without losing anything."""

import asyncio
import time

from alembic.config import Config
from alembic.script import ScriptDirectory

from agenttui.core.domain import TestRequest
from agenttui.core.prices import PriceTable
from agenttui.core.redact import Redactor
from agenttui.engine.store import MIGRATIONS_DIR, Owner, Store
from agenttui.engine.store.calls import CallLimits, CallWriter
from agenttui.sandbox.recorder import ModelCall

from .test_migrations import _fill_with_async

ALICE = Owner(1000, "alice")
CANARY = "canary-secret-4f9a2b"


def call(model="gpt-4o-mini", tokens=(1000, 500), text="an answer", **fields):
    now = time.time()
    return ModelCall("openai", "call", now, ended_at=now + 0.5, first_byte_at=now + 0.1, method="POST",
                     path="/v1/chat/completions", status=200, model=model, tokens_in=tokens[0], tokens_out=tokens[1],
                     request=[{"role": "user", "content": f"key {CANARY}"}], response=text, **fields)


async def writer_for(store, test_id, max_calls=100, text_max=1000):
    writes = []

    async def write(rows):
        writes.append(len(rows))
        await store.add_model_calls(test_id, rows)

    writer = CallWriter(write, test_id, 1, Redactor([CANARY]), PriceTable(), CallLimits(max_calls, text_max),
                        first_seq=await store.next_model_call_seq(test_id))
    return writer, writes


async def test_calls_are_batched_redacted_priced_and_summed(store):
    test = await store.submit(TestRequest.parse(agent_code="def run(q): return q", query="q"), ALICE)
    token = await store.change_token()
    writer, writes = await writer_for(store, test.id)
    for _ in range(3):
        writer.add(call(tool_calls=[{"id": "c1", "name": "lookup", "arguments": '{"q": 1}'}]))
    writer.add(call(model="unknown-model", tokens=(None, None)))
    await asyncio.sleep(0.4)  # the batch's delay
    assert writes == [4]  # one transaction for the burst
    rows = await store.model_calls(test.id)
    assert [r.seq for r in rows] == [1, 2, 3, 4]
    assert CANARY not in rows[0].request_text and "[redacted]" in rows[0].request_text
    assert rows[0].cost_usd == (1000 * 0.15 + 500 * 0.60) / 1_000_000
    assert rows[0].first_byte_s == 0.1 or abs(rows[0].first_byte_s - 0.1) < 1e-6
    assert rows[3].cost_usd is None and rows[3].tokens_in is None  # unmeasured, never 0
    totals = await store.model_call_totals(test.id)
    assert totals["calls"] == 4 and totals["tokens_in"] == 3000 and totals["tokens_out"] == 1500
    assert totals["unmeasured"] == 1 and abs(totals["cost_usd"] - 3 * rows[0].cost_usd) < 1e-9
    assert totals["model_s"] == 2.0
    assert await store.change_token() != token  # followers see calls arrive
    await writer.close()
    other = await store.submit(TestRequest.parse(agent_code="def run(q): return q", query="q"), ALICE)
    assert await store.model_call_totals_for([test.id, other.id]) == {test.id: totals}  # a history page's, at once


async def test_the_cap_stores_a_notice_and_archive_removes_the_calls(store):
    test = await store.submit(TestRequest.parse(agent_code="def run(q): return q", query="q"), ALICE)
    writer, _ = await writer_for(store, test.id, max_calls=2, text_max=300)
    for _ in range(5):
        writer.add(call(text="x" * 1000))
    await writer.close()
    writer.add(call())  # after the attempt: ignored
    rows = await store.model_calls(test.id)
    assert [r.kind for r in rows] == ["call", "call", "truncated"]
    assert "3 more came" in rows[2].error
    assert rows[0].response_text.startswith("x" * 300) and "cut at 300 characters" in rows[0].response_text
    assert (await store.model_call_totals(test.id))["truncated"] is True
    second, _ = await writer_for(store, test.id)  # a retry continues the numbering
    assert second._seq == 3
    await store.request_cancel(test.id)
    assert await store.archive_older_than(-1) == 1
    assert await store.model_calls(test.id) == [] and await store.model_call_totals(test.id) is None


def test_a_store_of_the_previous_version_gains_the_calls_table(store_url):
    script = ScriptDirectory.from_config(_config())
    mine = next(r for r in script.walk_revisions() if (r.doc or "").startswith("model calls"))
    asyncio.run(_fill_with_async(store_url, mine.down_revision))

    async def check():
        store = await Store.open(store_url)
        try:
            assert (await store.get(1)).response == "old answer"
            assert await store.model_calls(1) == [] and await store.model_call_totals(1) is None
            writer, _ = await writer_for(store, 1)
            writer.add(call())
            await writer.close()
            assert [(r.seq, r.model) for r in await store.model_calls(1)] == [(1, "gpt-4o-mini")]
        finally:
            await store.close()

    asyncio.run(check())


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config
