"""engine/otlp.py without a container: stored calls → one trace at a receiver on loopback (a
receiver decoding with opentelemetry-proto), errors and connections included."""

from __future__ import annotations

from types import SimpleNamespace

from agenttui.core.lifecycle import Status
from agenttui.engine.otlp import export_trace
from agenttui.engine.store.tables import ModelCallRecord

from .otlp_receiver import Collector, attributes


def call(seq: int, **fields) -> ModelCallRecord:
    base = dict(test_id=7, seq=seq, attempt=1, kind="call", provider="ollama", method="POST", path="/api/generate",
                model="llama3.2", status=200, started_at=1000.0 + seq, ended_at=1000.5 + seq, tokens_in=3,
                tokens_out=4, cost_usd=0.0)
    return ModelCallRecord(**{**base, **fields})


def test_stored_calls_become_one_trace_with_their_times_errors_and_connections() -> None:
    test = SimpleNamespace(id=7, running_at=999.0, claimed_at=998.0, created_at=997.0, finished_at=1010.0,
                           updated_at=1010.0, status=Status.FAILED, attempt=1, failure_kind="budget",
                           error="budget used up: max-model-calls 1 reached (2nd call refused)",
                           request=SimpleNamespace(agent_filename="agent.py"))
    calls = [call(1), call(2, status=429, tokens_in=0, tokens_out=0, error="refused by agenttui: budget used up"),
             call(3, kind="connection", provider="openai", model=None, bytes_up=10, bytes_down=20)]
    with Collector() as collector:
        assert export_trace(collector.url, {"x-team": "qa"}, test, calls)
    spans = {span.name: span for _, span in collector.spans}
    assert set(spans) == {"invoke_agent test 7", "text_completion llama3.2", "connection openai"}
    assert collector.headers[0]["x-team"] == "qa"
    root = spans["invoke_agent test 7"]
    assert root.status.code == root.status.STATUS_CODE_ERROR and attributes(root)["agenttui.test.failure_kind"] == "budget"
    assert root.start_time_unix_nano == 999 * 10**9 and root.end_time_unix_nano == 1010 * 10**9
    first, refused = sorted((s for s in collector.spans if s[1].name.startswith("text")), key=lambda s: s[1].start_time_unix_nano)
    assert first[1].start_time_unix_nano == 1001 * 10**9 and first[1].end_time_unix_nano == int(1001.5 * 10**9)
    assert attributes(first[1])["gen_ai.usage.output_tokens"] == 4
    assert attributes(refused[1])["error.type"] == "429" and refused[1].status.message == "refused by agenttui: budget used up"
    assert attributes(spans["connection openai"])["agenttui.bytes_down"] == 20
