"""A suite rubric's judge calls (docs/suites.md): recorded through the same sink as the agent's,
stored as kind "judge", priced, and left out of the test's totals (SQLite and PostgreSQL)."""

import asyncio

from agenttui.core.domain import TestRequest
from agenttui.harness import JUDGE_MARK

from .test_model_calls import ALICE, call, writer_for


def with_messages(messages, **fields):
    made = call(**fields)
    made.request = messages
    return made


async def test_a_judge_call_is_priced_on_its_own_row_and_not_in_the_agents_totals(store):
    test = await store.submit(TestRequest.parse(agent_code="def run(q): return q", query="q"), ALICE)
    writer, _writes = await writer_for(store, test.id)
    writer.add(call())  # the agent's
    judge_messages = [{"role": "system", "content": JUDGE_MARK + " You grade ..."},
                      {"role": "user", "content": "RUBRIC:\nx"}]
    writer.add(with_messages(judge_messages, model="gpt-4o", tokens=(2000, 10), text="PASS"))
    # An agent's own system prompt that merely mentions a judge is the agent's.
    writer.add(with_messages([{"role": "system", "content": "Ask " + JUDGE_MARK}]))
    await asyncio.sleep(0.4)
    await writer.close()
    rows = await store.model_calls(test.id)
    assert [r.kind for r in rows] == ["call", "judge", "call"]
    assert rows[1].cost_usd is not None and rows[1].cost_usd > 0 and rows[1].tokens_in == 2000
    totals = await store.model_call_totals(test.id)
    assert totals["calls"] == 2 and totals["tokens_in"] == 2000 and totals["tokens_out"] == 1000
    assert abs(totals["cost_usd"] - rows[0].cost_usd - rows[2].cost_usd) < 1e-12
