"""Bedrock through the recorder (issues 18 and 19), end to end: real containers under provider-only
egress, boto3's bedrock-runtime client installed through --requirements, its endpoint
(AWS_ENDPOINT_URL_BEDROCK_RUNTIME) routed through the forwarder, which intercepts its TLS, and the
fake Bedrock runtime of tests/providers/fake_bedrock.py over HTTPS with a CA this test makes
(trusted on the host through extra_ca_bundle), which verifies every request's SigV4 signature.

The agent, with no tracing code, makes a Converse call that offers a tool, a ConverseStream call,
an InvokeModel call (Anthropic's body) and an InvokeModelWithResponseStream call (Titan's): the
fake accepts every signed request as they went through the recorder, the agent gets the
fake's answers, and the trace has every call with the model, the tool call, the usage the fake
reported (a stream's from its event stream's metadata event or last chunk) and the price
table's cost.
Recorded with `submit --record`, then replayed with `--replay`: the same output byte for byte (the
fake answers with random words), both streams read again as event streams by boto3, and 0
connections to the fake. No AWS key, secret or session token is stored in the trace, the store
or the cassette."""

from __future__ import annotations

import json

import pytest

from agenttui.core.prices import load_price_table

from ..providers.fake_bedrock import FakeBedrock, TestCA
from ..providers.fakes import answer, answer_tokens, prompt_tokens
from .test_recorder_docker import run_cli

pytestmark = pytest.mark.docker

REQUIREMENTS = "boto3\n"
MODEL = "anthropic.claude-3-5-haiku-20241022-v1:0"
TITAN = "amazon.titan-text-express-v1"
QUERY = "name a quiet bird"
KEY_ID = "AKIAIOSFODNN7BEDROCK"
SECRET = "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"
TOKEN = "FwoGZXIvYXdzEBedrockCanarySessionToken0123456789abcdef"

AGENT = '''import json, os
import boto3

TOOLS = {"tools": [{"toolSpec": {"name": "lookup", "description": "look a word up",
                                 "inputSchema": {"json": {"type": "object"}}}}]}


def run(query):
    client = boto3.client("bedrock-runtime")  # region, endpoint, keys and CA bundle from the environment
    model = os.environ["MODEL_ID"]
    first = client.converse(modelId=model, messages=[{"role": "user", "content": [{"text": "say hello"}]}],
                            toolConfig=TOOLS)
    blocks = first["output"]["message"]["content"]
    events = list(client.converse_stream(modelId=model, messages=[{"role": "user", "content": [{"text": query}]}])["stream"])
    # InvokeModel, in the model's own body: Anthropic's messages, then Titan's text streamed.
    invoked = json.loads(client.invoke_model(modelId=model, body=json.dumps({
        "anthropic_version": "bedrock-2023-05-31", "max_tokens": 50,
        "messages": [{"role": "user", "content": "hello there"}]}))["body"].read())
    chunks = [json.loads(e["chunk"]["bytes"]) for e in client.invoke_model_with_response_stream(
        modelId="amazon.titan-text-express-v1", body=json.dumps({"inputText": query}))["body"]]
    return json.dumps({
        "first": blocks[0]["text"],
        "tools": [[b["toolUse"]["name"], b["toolUse"]["input"]] for b in blocks if "toolUse" in b],
        "kinds": [next(iter(event)) for event in events],
        "streamed": "".join(e["contentBlockDelta"]["delta"].get("text", "") for e in events if "contentBlockDelta" in e),
        "usage": [e["metadata"]["usage"] for e in events if "metadata" in e],
        "invoked": invoked["content"][0]["text"],
        "invoke_streamed": "".join(c["outputText"] for c in chunks),
    })
'''


@pytest.fixture
def bedrock(tmp_path, monkeypatch):
    ca = TestCA(tmp_path / "test-ca")
    monkeypatch.setenv("AGENTTUI_EXTRA_CA_BUNDLE", str(ca.bundle))  # the forwarder's upstream trusts the fake
    (tmp_path / "agent.py").write_text(AGENT)
    (tmp_path / "requirements.txt").write_text(REQUIREMENTS)
    with FakeBedrock(ca, {KEY_ID: SECRET}, random=True) as fake:
        yield fake


def submit(agenttui_cmd, tmp_path, fake, *options):
    done = run_cli(agenttui_cmd, "submit", str(tmp_path / "agent.py"), "--query", QUERY, "--requirements",
                   str(tmp_path / "requirements.txt"), "--egress", "provider-only", "--timeout", "300", "--json",
                   "--provider", "bedrock", "--model", MODEL, "-o", "AWS_REGION=us-east-1",
                   "-o", f"AWS_ENDPOINT_URL_BEDROCK_RUNTIME=https://127.0.0.1:{fake.port}",
                   "-o", f"AWS_ACCESS_KEY_ID={KEY_ID}", "-o", f"AWS_SECRET_ACCESS_KEY={SECRET}",
                   "-o", f"AWS_SESSION_TOKEN={TOKEN}", *options, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return json.loads(done.stdout)


def no_canary(*texts: str) -> None:
    for secret in (KEY_ID, SECRET, TOKEN):
        assert not any(secret in text for text in texts), secret


def test_signed_bedrock_calls_pass_the_recorder_and_replay_as_a_stream_with_nothing_upstream(
        agenttui_cmd, tmp_path, bedrock):
    tape = tmp_path / "bedrock.cassette.json"
    view = submit(agenttui_cmd, tmp_path, bedrock, "--record", str(tape))
    assert bedrock.rejected == [], "the fake refused a signature that went through the recorder"
    assert [(r["operation"], r["model"]) for r in bedrock.requests] == [
        ("converse", MODEL), ("converse-stream", MODEL), ("invoke", MODEL), ("invoke-with-response-stream", TITAN)]
    assert bedrock.requests[-1]["headers"]["X-Amz-Security-Token"] == TOKEN  # the signed request reached the fake
    result = json.loads(view["response"])
    assert result["first"].startswith(answer(MODEL, "say hello") + " ")  # the fake's random word follows
    assert result["tools"] == [["lookup", {"query": "say hello"}]]
    assert result["kinds"][0] == "messageStart" and result["kinds"][-2:] == ["messageStop", "metadata"]
    assert result["streamed"].startswith(answer(MODEL, QUERY) + " ")
    assert result["invoked"].startswith(answer(MODEL, "hello there") + " ")
    assert result["invoke_streamed"].startswith(answer(TITAN, QUERY) + " ")

    # The trace: every call, with the usage the fake reported (the stream's from its metadata event).
    traced = run_cli(agenttui_cmd, "trace", str(view["id"]), "--json")
    assert traced.returncode == 0, traced.stderr
    calls = [c for c in json.loads(traced.stdout)["calls"] if c["kind"] == "call"]
    quoted = MODEL.replace(":", "%3A")
    assert [(c["provider"], c["model"], c["path"], c["status"], c["streamed"]) for c in calls] == [
        ("bedrock", MODEL, f"/model/{quoted}/converse", 200, False),
        ("bedrock", MODEL, f"/model/{quoted}/converse-stream", 200, True),
        ("bedrock", MODEL, f"/model/{quoted}/invoke", 200, False),
        ("bedrock", TITAN, f"/model/{TITAN}/invoke-with-response-stream", 200, True)]
    expected = [(prompt_tokens("say hello"), answer_tokens(result["first"]) + 7),
                (prompt_tokens(QUERY), answer_tokens(result["streamed"])),
                (prompt_tokens("hello there"), answer_tokens(result["invoked"])),
                (prompt_tokens(QUERY), answer_tokens(result["invoke_streamed"]))]
    assert [(c["tokens_in"], c["tokens_out"]) for c in calls] == expected
    assert result["usage"] == [{"inputTokens": expected[1][0], "outputTokens": expected[1][1],
                                "totalTokens": sum(expected[1])}]
    prices = load_price_table({})
    models = [MODEL, MODEL, MODEL, TITAN]
    assert [c["cost_usd"] for c in calls] == [prices.cost("bedrock", m, *t) for m, t in zip(models, expected)]
    assert all(cost > 0 for cost in (c["cost_usd"] for c in calls))  # each model is in the price table
    assert calls[0]["tool_calls"] == [{"id": "tooluse_1", "name": "lookup", "arguments": '{"query":"say hello"}'}]
    assert calls[1]["response"] == result["streamed"]
    assert [c["response"].strip() for c in calls[2:]] == [result["invoked"], result["invoke_streamed"]]

    # The cassette keeps the stream's messages, and no key, secret, token or signature.
    text = tape.read_text()
    document = json.loads(text)
    streamed = next(e for e in document["exchanges"] if e["path"].endswith("/converse-stream"))
    assert [e["headers"][":event-type"] for e in streamed["response"]["events"]] == result["kinds"]
    shown = run_cli(agenttui_cmd, "show", str(view["id"]), "--json")
    stored = [path.read_bytes().decode("latin-1") for path in (tmp_path / "home").rglob("*.db*") if path.is_file()]
    assert stored
    no_canary(text, traced.stdout, shown.stdout, *stored)
    assert "Signature=" not in text and "x-amz-date" not in text.lower()

    # Replayed: the same output byte for byte, the stream read again by boto3, nothing upstream.
    before = bedrock.connections
    again = submit(agenttui_cmd, tmp_path, bedrock, "--replay", str(tape))
    assert again["response"] == view["response"]
    assert bedrock.connections == before, "a strict replay opened nothing upstream"
    assert again["model_traffic"] == "replayed"
