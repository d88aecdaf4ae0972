"""The fake Bedrock runtime, driven by boto3's real bedrock-runtime client over HTTPS: it serves
Converse, ConverseStream (event stream decoded by botocore), InvokeModel and its stream, and
refuses what a wrong key, an unknown key or a body changed after signing would send."""

import json

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.providers.fake_bedrock import FakeBedrock, TestCA
from tests.providers.fakes import answer, answer_tokens, prompt_tokens

KEY, SECRET = "AKIAFAKEBEDROCK00001", "fake/secret/key/for/the/bedrock/test/0001"
HAIKU = "anthropic.claude-3-5-haiku-20241022-v1:0"


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    ca = TestCA(tmp_path_factory.mktemp("ca"))
    with FakeBedrock(ca, {KEY: SECRET}) as server:
        yield server


def client(fake, secret=SECRET, key=KEY, token=None):
    return boto3.client(
        "bedrock-runtime", region_name="us-east-1", endpoint_url=fake.url, verify=str(fake.ca.bundle),
        aws_access_key_id=key, aws_secret_access_key=secret, aws_session_token=token,
        config=Config(retries={"total_max_attempts": 1}),
    )


def ask(text):
    return [{"role": "user", "content": [{"text": text}]}]


TOOLS = {"tools": [{"toolSpec": {"name": "lookup", "description": "find", "inputSchema": {"json": {"type": "object"}}}}]}


def test_converse_answers_with_usage_and_a_tool_call(fake):
    reply = client(fake).converse(modelId=HAIKU, messages=ask("name a quiet bird"), toolConfig=TOOLS)
    content = reply["output"]["message"]["content"]
    assert content[0]["text"] == answer(HAIKU, "name a quiet bird")
    assert content[1]["toolUse"] == {"toolUseId": "tooluse_1", "name": "lookup", "input": {"query": "name a quiet bird"}}
    assert reply["usage"]["inputTokens"] == prompt_tokens("name a quiet bird")
    assert reply["stopReason"] == "tool_use"
    sent = fake.requests[-1]
    assert (sent["model"], sent["operation"], sent["path"]) == (HAIKU, "converse", f"/model/{HAIKU.replace(':', '%3A')}/converse")


def test_converse_stream_is_an_event_stream_botocore_decodes(fake):
    reply = client(fake, token="FakeSessionToken0001").converse_stream(
        modelId=HAIKU, messages=ask("name a loud bird"), toolConfig=TOOLS)
    events = list(reply["stream"])
    kinds = [next(iter(e)) for e in events]
    assert kinds[0] == "messageStart" and kinds[-2:] == ["messageStop", "metadata"]
    text = "".join(e["contentBlockDelta"]["delta"].get("text", "") for e in events if "contentBlockDelta" in e)
    tool_input = "".join(e["contentBlockDelta"]["delta"]["toolUse"]["input"] for e in events
                         if "contentBlockDelta" in e and "toolUse" in e["contentBlockDelta"]["delta"])
    assert text == answer(HAIKU, "name a loud bird")
    assert json.loads(tool_input) == {"query": "name a loud bird"}
    usage = events[-1]["metadata"]["usage"]
    assert usage["inputTokens"] == prompt_tokens("name a loud bird")
    assert usage["outputTokens"] == answer_tokens(text) + 7


@pytest.mark.parametrize(("model", "body", "read"), [
    (HAIKU, {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 50,
             "messages": [{"role": "user", "content": "hello there"}]},
     lambda b: (b["content"][0]["text"], b["usage"]["input_tokens"], b["usage"]["output_tokens"])),
    ("amazon.titan-text-express-v1", {"inputText": "hello there", "textGenerationConfig": {"maxTokenCount": 50}},
     lambda b: (b["results"][0]["outputText"], b["inputTextTokenCount"], b["results"][0]["tokenCount"])),
    ("meta.llama3-1-8b-instruct-v1:0", {"prompt": "hello there"},
     lambda b: (b["generation"], b["prompt_token_count"], b["generation_token_count"])),
])
def test_invoke_model_answers_in_each_vendors_body(fake, model, body, read):
    reply = client(fake).invoke_model(modelId=model, body=json.dumps(body))
    text = answer(model, "hello there")
    assert read(json.loads(reply["body"].read())) == (text, prompt_tokens("hello there"), answer_tokens(text))
    headers = reply["ResponseMetadata"]["HTTPHeaders"]
    assert headers["x-amzn-bedrock-input-token-count"] == str(prompt_tokens("hello there"))


@pytest.mark.parametrize("model", [HAIKU, "amazon.titan-text-express-v1"])
def test_invoke_model_with_response_stream_ends_with_invocation_metrics(fake, model):
    body = ({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 50, "messages": [{"role": "user", "content": "hi you"}]}
            if "anthropic" in model else {"inputText": "hi you"})
    reply = client(fake).invoke_model_with_response_stream(modelId=model, body=json.dumps(body))
    chunks = [json.loads(e["chunk"]["bytes"]) for e in reply["body"]]
    text = "".join(c.get("outputText") or (c.get("delta") or {}).get("text", "") for c in chunks)
    assert text.strip() == answer(model, "hi you")
    assert chunks[-1]["amazon-bedrock-invocationMetrics"]["inputTokenCount"] == prompt_tokens("hi you")


def test_a_wrong_secret_an_unknown_key_and_a_body_changed_after_signing_are_refused(fake):
    connections = fake.connections
    with pytest.raises(ClientError) as wrong:
        client(fake, secret="not-the-secret").converse(modelId=HAIKU, messages=ask("hi"))
    assert wrong.value.response["Error"]["Code"] == "InvalidSignatureException"
    assert wrong.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    with pytest.raises(ClientError) as unknown:
        client(fake, key="AKIANOBODYKNOWS00000").converse(modelId=HAIKU, messages=ask("hi"))
    assert unknown.value.response["Error"]["Code"] == "UnrecognizedClientException"

    tampered = client(fake)

    def change_body(request, **_):  # after the signer has run, as a man in the middle would
        request.body = request.body.replace(b"hi", b"yo")

    tampered.meta.events.register("before-send.bedrock-runtime.Converse", change_body)
    with pytest.raises(ClientError) as changed:
        tampered.converse(modelId=HAIKU, messages=ask("hi"))
    assert changed.value.response["Error"]["Code"] == "InvalidSignatureException"
    assert fake.rejected[-3:] == ["InvalidSignatureException", "UnrecognizedClientException", "InvalidSignatureException"]
    assert fake.connections == connections + 3  # one TLS connection per client, each counted
