"""The recorder reads Bedrock: the bytes of real exchanges with the fake Bedrock runtime (signed by
botocore's SigV4 signer, verified by the fake), fed to a ConnectionRecorder cut anywhere."""

import json
import socket
import ssl

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.eventstream import EventStreamBuffer

from agenttui.core.prices import PriceTable
from agenttui.sandbox.bedrock_format import (
    BedrockResponseReader,
    bedrock_operation,
    encode_message,
    split_messages,
)
from agenttui.sandbox.model_formats import HEAD_BYTES, model_api
from agenttui.sandbox.recorder import ConnectionRecorder
from tests.providers.fake_bedrock import EVENTSTREAM, FakeBedrock, TestCA, event
from tests.providers.fakes import answer, answer_tokens, prompt_tokens

KEY, SECRET = "AKIAFAKEBEDROCK00002", "fake/secret/key/for/the/bedrock/test/0002"
HAIKU = "anthropic.claude-3-5-haiku-20241022-v1:0"
TOOLS = {"tools": [{"toolSpec": {"name": "lookup", "inputSchema": {"json": {"type": "object"}}}}]}


class Sink:
    def __init__(self):
        self.calls = []

    def add(self, call):
        self.calls.append(call)


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    ca = TestCA(tmp_path_factory.mktemp("ca"))
    with FakeBedrock(ca, {KEY: SECRET}) as server:
        yield server


@pytest.fixture(scope="module")
def stream_error_fake(tmp_path_factory):
    ca = TestCA(tmp_path_factory.mktemp("ca"))
    with FakeBedrock(ca, {KEY: SECRET}, stream_error="Too many requests, please wait") as server:
        yield server


def exchange(fake, model, operation, body, secret=SECRET, key=KEY, token=None) -> tuple[bytes, bytes]:
    """One signed request to the fake over TLS, as bytes, and its whole raw answer."""
    host = f"localhost:{fake.port}"
    path = f"/model/{model.replace(':', '%3A')}/{operation}"
    data = json.dumps(body).encode()
    request = AWSRequest("POST", f"https://{host}{path}", data=data,
                         headers={"Content-Type": "application/json", "Host": host})
    SigV4Auth(Credentials(key, secret, token), "bedrock", "us-east-1").add_auth(request)
    head = f"POST {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in request.headers.items())
    raw = (head + f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n").encode() + data
    context = ssl.create_default_context(cafile=str(fake.ca.bundle))
    with socket.create_connection(("127.0.0.1", fake.port)) as plain, \
            context.wrap_socket(plain, server_hostname="localhost") as tls:
        tls.sendall(raw)
        answer_bytes = b""
        while chunk := tls.recv(65536):
            answer_bytes += chunk
    return raw, answer_bytes


def recorded(request: bytes, response: bytes, cut: int | None = None):
    sink = Sink()
    seen = ConnectionRecorder("bedrock", sink)
    seen.from_agent(request)
    for piece in ([response] if cut is None else [response[:cut], response[cut:]]):
        seen.from_endpoint(piece)
    seen.closed()
    assert len(sink.calls) == 1
    return sink.calls[0]


def ask(text):
    return {"messages": [{"role": "user", "content": [{"text": text}]}], "system": [{"text": "be brief"}],
            "toolConfig": TOOLS}


def test_bedrock_paths_are_model_calls_and_name_the_model():
    assert model_api("POST", "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse") == "bedrock"
    assert model_api("POST", "/model/x/invoke-with-response-stream") == "bedrock"
    assert model_api("GET", "/model/x/converse") is None
    arn = "arn%3Aaws%3Abedrock%3Aus-east-1%3A123%3Ainference-profile%2Fus.anthropic.claude-3-5-haiku-v1%3A0"
    assert bedrock_operation(f"/model/{arn}/converse-stream") == (
        "arn:aws:bedrock:us-east-1:123:inference-profile/us.anthropic.claude-3-5-haiku-v1:0", "converse-stream")


def test_a_converse_call(fake):
    request, response = exchange(fake, HAIKU, "converse", ask("name a quiet bird"))
    assert b" 200 OK" in response.split(b"\r\n", 1)[0]
    call = recorded(request, response)
    text = answer(HAIKU, "name a quiet bird")
    assert (call.model, call.status, call.streamed, call.error) == (HAIKU, 200, False, None)
    assert call.response == text
    assert (call.tokens_in, call.tokens_out) == (prompt_tokens("name a quiet bird"), answer_tokens(text) + 7)
    assert call.tool_calls == [{"id": "tooluse_1", "name": "lookup", "arguments": '{"query":"name a quiet bird"}'}]
    assert call.request == {"system": [{"text": "be brief"}], "messages": ask("name a quiet bird")["messages"]}
    assert PriceTable().price_of("bedrock", call.model).input_per_m == 0.80


def test_a_converse_stream_cut_anywhere(fake):
    request, response = exchange(fake, HAIKU, "converse-stream", ask("name a loud bird"))
    assert EVENTSTREAM.encode() in response
    text = answer(HAIKU, "name a loud bird")
    body_start = response.index(b"\r\n\r\n") + 4
    for cut in range(body_start, len(response), 29):
        call = recorded(request, response, cut)
        assert (call.model, call.streamed, call.response, call.error) == (HAIKU, True, text, None), cut
        assert (call.tokens_in, call.tokens_out) == (prompt_tokens("name a loud bird"), answer_tokens(text) + 7)
        assert call.tool_calls == [{"id": "tooluse_1", "name": "lookup", "arguments": '{"query": "name a loud bird"}'}]


ANTHROPIC = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 50,
             "messages": [{"role": "user", "content": "hello there"}], "tools": [{"name": "lookup", "input_schema": {}}]}


@pytest.mark.parametrize(("model", "body"), [
    (HAIKU, ANTHROPIC),
    ("amazon.titan-text-express-v1", {"inputText": "hello there"}),
    ("us.meta.llama3-1-8b-instruct-v1:0", {"prompt": "hello there"}),
])
@pytest.mark.parametrize("operation", ["invoke", "invoke-with-response-stream"])
def test_invoke_model_in_each_vendors_shape(fake, model, body, operation):
    request, response = exchange(fake, model, operation, body)
    call = recorded(request, response, len(response) - 100)
    text = answer(model, "hello there")
    assert call.model == model and call.error is None and call.streamed == (operation != "invoke")
    assert call.response.strip() == text
    assert (call.tokens_in, call.tokens_out) == (prompt_tokens("hello there"), answer_tokens(text))
    if "anthropic" in model:
        assert call.request == ANTHROPIC["messages"]
        assert [(t["name"], json.loads(t["arguments"])) for t in call.tool_calls] == [("lookup", {"query": "hello there"})]
    else:
        assert call.request == "hello there"


def test_a_refused_signature_is_the_calls_error(fake):
    request, response = exchange(fake, HAIKU, "converse", ask("hi"), secret="not-the-secret")
    call = recorded(request, response)
    assert call.status == 403
    assert call.error.startswith("InvalidSignatureException: The request signature we calculated does not match")
    assert call.tokens_in is None and call.tokens_out is None  # unknown, never 0


def test_an_exception_inside_a_stream_is_the_calls_error(stream_error_fake):
    request, response = exchange(stream_error_fake, HAIKU, "converse-stream", ask("hi"))
    call = recorded(request, response)
    assert call.status == 200
    assert call.error == "throttlingException: Too many requests, please wait"
    assert call.tokens_in is None


def long_stream(words: int) -> bytes:
    deltas = b"".join(event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": f"w{i} "}})
                      for i in range(words))
    return (event("messageStart", {"role": "assistant"}) + deltas
            + event("metadata", {"usage": {"inputTokens": 11, "outputTokens": words}}))


def test_a_stream_longer_than_the_head_keeps_its_counts_from_the_tail():
    body = long_stream(20_000)
    assert len(body) > HEAD_BYTES + 200_000
    reader = BedrockResponseReader(EVENTSTREAM, {})
    for at in range(0, len(body), 4093):  # chunks that cut messages anywhere
        reader.feed(body[at:at + 4093])
    summary = reader.end()
    assert (summary.tokens_in, summary.tokens_out) == (11, 20_000)
    assert summary.text.startswith("w0 w1 ") and summary.unread


def test_a_damaged_message_stops_reading_without_raising():
    body = bytearray(long_stream(3))
    body[40] ^= 0xFF  # inside the first message's payload: its CRC no longer matches
    reader = BedrockResponseReader(EVENTSTREAM, {})
    reader.feed(bytes(body))
    summary = reader.end()
    assert summary.unread and summary.tokens_out is None


def test_encoded_messages_are_what_botocore_decodes():
    data = encode_message({":event-type": "contentBlockDelta", ":message-type": "event"}, b'{"delta":{"text":"hi"}}')
    buffer = EventStreamBuffer()
    buffer.add_data(data)
    (message,) = list(buffer)
    assert message.headers[":event-type"] == "contentBlockDelta" and message.payload == b'{"delta":{"text":"hi"}}'
    assert split_messages(data) == ([({":event-type": "contentBlockDelta", ":message-type": "event"},
                                      b'{"delta":{"text":"hi"}}')], len(data), False)


@pytest.mark.parametrize(("model", "price"), [
    ("amazon.titan-text-express-v1", (0.20, 0.60)),
    ("us.anthropic.claude-3-7-sonnet-20250219-v1:0", (3.00, 15.00)),
    ("anthropic.claude-3-haiku-20240307-v1:0", (0.25, 1.25)),
    ("meta.llama3-1-70b-instruct-v1:0", (0.72, 0.72)),
])
def test_bedrock_models_the_fake_serves_have_prices(model, price):
    found = PriceTable().price_of("bedrock", model)
    assert (found.input_per_m, found.output_per_m) == price
