"""HTTPS model calls read at the forwarder (issue 18, TLS interception), with real containers under
provider-only egress, the real `openai` package (the requirements of test_recorder_docker.py, so the
image is cached) and the OpenAI-compatible fake serving HTTPS with a CA this test makes (trusted on
the host through extra_ca_bundle, as a corporate CA would be).

With interception on, an agent with no tracing code makes two calls (one streamed) to
https://127.0.0.1:PORT/v1 and gets the fake's exact answers; the trace has both calls with the fake's
token counts and model; the server's CA key is 0600 and nowhere in the container's mounts; the API
key is stored nowhere. With the setting tls_interception off, HTTPS still works end to end and the
call is recorded as bytes and timing."""

from __future__ import annotations

import json
import stat

import pytest

from agenttui.core.prices import load_price_table

from ..providers.fakes import FakeOpenAI, TestCA, answer, answer_tokens, prompt_tokens
from .test_recorder_docker import CANARY, OPENAI_AGENT, QUERY, REQUIREMENTS, run_cli, submit_and_read

pytestmark = pytest.mark.docker

CA_VARIABLES = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "AWS_CA_BUNDLE")

# The agent of the plain-HTTP test, plus what it can see of its own mounts and trust.
INSPECTING_AGENT = OPENAI_AGENT.replace("def run(query):", "def calls(query):") + f'''

def run(query):
    result = json.loads(calls(query))
    seen = []
    for root in ("/agenttui", "/etc/ssl/certs"):
        for folder, _, files in os.walk(root):
            for name in files:
                try:
                    with open(os.path.join(folder, name), "rb") as file:
                        if b"PRIVATE" + b" KEY" in file.read():  # (this file says it once)
                            seen.append(os.path.join(folder, name))
                except OSError:
                    pass
    result["keys_seen"] = seen
    with open("/proc/self/mountinfo") as file:
        result["mounts"] = file.read()
    result["ca_files"] = sorted({{os.environ.get(name) for name in {CA_VARIABLES!r}}})
    with open("/etc/ssl/certs/ca-certificates.crt") as file:
        result["system_bundle_is_ours"] = file.read() == open(result["ca_files"][0]).read()
    return json.dumps(result)
'''

ONE_CALL_AGENT = '''import os
from openai import OpenAI


def run(query):
    answer = OpenAI().chat.completions.create(model=os.environ["MODEL_ID"], messages=[{"role": "user", "content": query}])
    return answer.choices[0].message.content
'''


def test_https_calls_are_read_inside_tls_with_the_ca_key_kept_out_of_the_container(agenttui_cmd, tmp_path,
                                                                                 monkeypatch):
    test_ca = TestCA(tmp_path / "test-ca")
    monkeypatch.setenv("AGENTTUI_EXTRA_CA_BUNDLE", str(test_ca.cert_path))
    with FakeOpenAI(api_key=CANARY, hold_last=True, tls=test_ca) as fake:
        assert fake.url.startswith("https://127.0.0.1:")
        view, shown, trace_json, human = submit_and_read(
            agenttui_cmd, tmp_path, INSPECTING_AGENT, "--provider", "openai", "--model", "gpt-4o-mini",
            "-o", f"OPENAI_BASE_URL={fake.url}/v1", "-o", f"OPENAI_API_KEY={CANARY}")
        assert fake.released_in_time == [True], "the stream's first chunk reached the agent while the fake held its last"
        assert fake.requests[-1]["headers"]["Authorization"] == f"Bearer {CANARY}"  # the key reached the endpoint
    result = json.loads(view["response"])
    text = answer("gpt-4o-mini", QUERY)
    assert {key: result[key] for key in ("tools", "first", "streamed")} == {
        "tools": [["lookup", {"query": QUERY}]], "first": None, "streamed": " ".join(text.split(" ")) + " "}

    trace = json.loads(trace_json)
    calls = trace["calls"]
    assert [(c["kind"], c["provider"], c["model"], c["path"], c["status"], c["streamed"]) for c in calls] == [
        ("call", "openai", "gpt-4o-mini", "/v1/chat/completions", 200, False),
        ("call", "openai", "gpt-4o-mini", "/v1/chat/completions", 200, True),
    ]
    expected = [(prompt_tokens(QUERY), 7), (prompt_tokens(QUERY), answer_tokens(text))]
    assert [(c["tokens_in"], c["tokens_out"]) for c in calls] == expected
    prices = load_price_table({})
    assert [c["cost_usd"] for c in calls] == [prices.cost("openai", "gpt-4o-mini", *t) for t in expected]
    assert calls[0]["tool_calls"] == [{"id": "call_1", "name": "lookup", "arguments": json.dumps({"query": QUERY})}]

    # The server's CA: its key 0600 in the state dir, never mounted, never readable in the container.
    keys = list((tmp_path / "home").rglob("ca-key.pem"))
    assert len(keys) == 1 and stat.S_IMODE(keys[0].stat().st_mode) == 0o600
    assert result["keys_seen"] == []
    assert "tls-ca" not in result["mounts"] and keys[0].parent.name == "tls-ca"
    assert result["ca_files"] == ["/agenttui/agenttui-tls-bundle.pem"] and result["system_bundle_is_ours"]

    # The API key, sent in a header and pasted into a message, is stored nowhere.
    assert CANARY not in trace_json and CANARY not in json.dumps(shown) and CANARY not in human
    stored = [path for path in (tmp_path / "home").rglob("*.db*") if path.is_file()]
    assert stored and not any(CANARY.encode() in path.read_bytes() for path in stored)


def test_with_interception_off_https_works_and_is_recorded_as_bytes_and_timing(agenttui_cmd, tmp_path, monkeypatch):
    test_ca = TestCA(tmp_path / "test-ca")
    monkeypatch.setenv("AGENTTUI_EXTRA_CA_BUNDLE", str(test_ca.cert_path))  # the agent trusts the fake itself
    monkeypatch.setenv("AGENTTUI_TLS_INTERCEPTION", "false")
    (tmp_path / "agent.py").write_text(ONE_CALL_AGENT)
    (tmp_path / "requirements.txt").write_text(REQUIREMENTS)
    with FakeOpenAI(api_key=CANARY, tls=test_ca) as fake:
        done = run_cli(agenttui_cmd, "submit", str(tmp_path / "agent.py"), "--query", QUERY, "--requirements",
                       str(tmp_path / "requirements.txt"), "--egress", "provider-only", "--timeout", "300", "--json",
                       "--provider", "openai", "--model", "gpt-4o-mini", "-o", f"OPENAI_BASE_URL={fake.url}/v1",
                       "-o", f"OPENAI_API_KEY={CANARY}", timeout=900)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
        chat_requests = [r for r in fake.requests if r["path"].endswith("/chat/completions")]
    view = json.loads(done.stdout)
    assert view["response"] == answer("gpt-4o-mini", QUERY)
    assert len(chat_requests) == 1
    traced = run_cli(agenttui_cmd, "trace", str(view["id"]), "--json")
    assert traced.returncode == 0, traced.stderr
    calls = json.loads(traced.stdout)["calls"]
    assert calls and all((c["kind"], c["provider"], c["model"], c["tokens_in"]) == ("connection", "openai", None, None)
                         for c in calls)
    agent_call = max(calls, key=lambda c: c["bytes_up"])  # the agent's call (the preflight's probe is smaller)
    assert agent_call["bytes_up"] > len(QUERY) and agent_call["bytes_down"] > len(view["response"])
    assert agent_call["first_byte_s"] is not None and agent_call["duration_s"] >= agent_call["first_byte_s"]
    assert not list((tmp_path / "home").rglob("ca-key.pem")), "no CA is made while interception is off"
    assert CANARY not in traced.stdout
