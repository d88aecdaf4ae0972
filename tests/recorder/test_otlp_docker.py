"""OTLP export (issue 18, point 6): a real test's model calls reach a collector the user configures
(the setting otlp_endpoint) as one trace, a CLIENT span per call with its real times and the
OpenTelemetry GenAI attributes; the API key (a canary, sent in a header and pasted into a message)
is in nothing the collector received.

The collector is a small HTTP server on loopback that decodes each ExportTraceServiceRequest with
opentelemetry-proto, as a real collector does. Real container, the real `openai` package (the same
requirements as test_recorder_docker.py, so the image is cached), the installed `agenttui` command."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from agenttui.core.prices import load_price_table

from ..providers.fakes import FakeOpenAI, answer, answer_tokens, prompt_tokens
from .otlp_receiver import Collector, attributes
from .test_recorder_docker import CANARY, OPENAI_AGENT, QUERY, REQUIREMENTS

pytestmark = pytest.mark.docker

WAIT_S = 60.0  # the export runs after the test's end is written: a generous bound, never a timing assert


def test_a_tests_calls_are_exported_over_otlp_with_gen_ai_attributes_and_no_secret(
        agenttui_cmd, tmp_path, monkeypatch):
    with Collector() as collector, FakeOpenAI(api_key=CANARY) as fake:
        monkeypatch.setenv("AGENTTUI_OTLP_ENDPOINT", collector.url)
        (tmp_path / "agent.py").write_text(OPENAI_AGENT)
        (tmp_path / "requirements.txt").write_text(REQUIREMENTS)
        done = subprocess.run(
            [*agenttui_cmd, "submit", str(tmp_path / "agent.py"), "--query", QUERY, "--requirements",
             str(tmp_path / "requirements.txt"), "--egress", "provider-only", "--timeout", "300", "--json",
             "--provider", "openai", "--model", "gpt-4o-mini", "-o", f"OPENAI_BASE_URL={fake.url}/v1",
             "-o", f"OPENAI_API_KEY={CANARY}"], capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
        view = json.loads(done.stdout)
        deadline = time.monotonic() + WAIT_S
        while len(collector.spans) < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
        traced = subprocess.run([*agenttui_cmd, "trace", str(view["id"]), "--json"], capture_output=True, text=True,
                                timeout=60)
    assert traced.returncode == 0, traced.stderr
    stored = json.loads(traced.stdout)["calls"]
    spans = [span for _, span in collector.spans]
    assert len(spans) == 3, f"the test and its two calls, got {[s.name for s in spans]}"
    assert {resource["service.name"] for resource, _ in collector.spans} == {"agenttui"}
    assert len({span.trace_id for span in spans}) == 1, "one trace per test"
    root = next(span for span in spans if not span.parent_span_id)
    calls = sorted((span for span in spans if span.parent_span_id), key=lambda span: span.start_time_unix_nano)
    assert all(span.parent_span_id == root.span_id for span in calls)
    assert attributes(root)["agenttui.test.id"] == view["id"]
    assert attributes(root)["agenttui.test.status"] == "COMPLETED"
    assert attributes(root)["gen_ai.operation.name"] == "invoke_agent"

    text = answer("gpt-4o-mini", QUERY)
    expected_tokens = [(prompt_tokens(QUERY), 7), (prompt_tokens(QUERY), answer_tokens(text))]
    prices = load_price_table({})
    for span, stored_call, (tokens_in, tokens_out) in zip(calls, stored, expected_tokens):
        found = attributes(span)
        assert span.name == "chat gpt-4o-mini" and span.kind == span.SPAN_KIND_CLIENT
        assert {key: found[key] for key in (
            "gen_ai.operation.name", "gen_ai.provider.name", "gen_ai.system", "gen_ai.request.model",
            "gen_ai.response.model", "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens",
            "http.response.status_code")} == {
            "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.system": "openai",
            "gen_ai.request.model": "gpt-4o-mini", "gen_ai.response.model": "gpt-4o-mini",
            "gen_ai.usage.input_tokens": tokens_in, "gen_ai.usage.output_tokens": tokens_out,
            "http.response.status_code": 200}
        assert found["agenttui.call.cost_usd"] == pytest.approx(prices.cost("openai", "gpt-4o-mini", tokens_in, tokens_out))
        # The span's times are the call's own, as stored (to the microsecond).
        assert abs(span.start_time_unix_nano / 1e9 - stored_call["started_at"]) < 1e-5
        assert span.end_time_unix_nano >= span.start_time_unix_nano
    assert [attributes(span)["agenttui.call.streamed"] for span in calls] == [False, True]
    assert root.start_time_unix_nano <= calls[0].start_time_unix_nano
    assert root.end_time_unix_nano >= calls[-1].end_time_unix_nano
    received = b"".join(collector.bodies) + json.dumps(collector.headers).encode()
    assert collector.bodies and CANARY.encode() not in received
