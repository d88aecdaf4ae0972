"""Bedrock in cassettes (docs/replay.md): a recorded ConverseStream keeps its event-stream messages
(readable, redacted) and no AWS key, session token or signature; replayed through the real
forwarder it is an event stream again that boto3's bedrock-runtime client reads as the live one,
with no connection to the fake; a changed prompt is a miss botocore raises with its JSON path."""

import asyncio
import contextlib
import json
import threading

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from agenttui.core.domain import Egress
from agenttui.core.redact import Redactor
from agenttui.sandbox import cassette
from agenttui.sandbox.egress import NetworkPlan, Tunnel
from agenttui.sandbox.forwarder import TunnelHost
from agenttui.sandbox.recorder import ConnectionRecorder
from tests.providers.fake_bedrock import FakeBedrock, TestCA
from tests.providers.fakes import answer, prompt_tokens
from tests.recorder.test_bedrock_parsing import HAIKU, TOOLS, Sink, exchange

# Canaries: an access key id and a session token the fake accepts, and a secret never sent anywhere.
KEY, SECRET = "AKIACANARYBEDROCK777", "canary/secret/Bedrock0000000000000000777"
TOKEN = "CanarySessionToken0777" + "x" * 40


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    ca = TestCA(tmp_path_factory.mktemp("ca"))
    with FakeBedrock(ca, {KEY: SECRET}) as server:
        yield server


def converse_body(text):
    """The JSON body boto3 sends for converse(modelId, messages, toolConfig) (same keys, same order)."""
    return {"messages": [{"role": "user", "content": [{"text": text}]}], "toolConfig": TOOLS}


def record(fake, calls) -> tuple[dict, list[bytes]]:
    """Each (operation, body) sent to the fake, its bytes read by a recorder with a tape."""
    tape = cassette.Tape(Redactor([SECRET, TOKEN, KEY]))
    answers = []
    for model, operation, body in calls:
        request, response = exchange(fake, model, operation, body, secret=SECRET, key=KEY, token=TOKEN)
        seen = ConnectionRecorder("bedrock", Sink(), tape=tape)
        seen.from_agent(request)
        head_end = response.index(b"\r\n\r\n") + 4
        for at in range(0, len(response), 97):  # as the endpoint's chunks arrive, cut anywhere
            seen.from_endpoint(response[at:at + 97])
        seen.closed()
        answers.append(response[head_end:])
    return json.loads(cassette.dumps(tape.document())), answers


def test_a_recorded_converse_stream_keeps_readable_messages_and_no_secret(fake):
    document, _ = record(fake, [(HAIKU, "converse-stream", converse_body(f"my key is {KEY}, name a bird")),
                                ("amazon.titan-text-express-v1", "invoke-with-response-stream", {"inputText": "hi"})])
    text = cassette.dumps(document)
    for secret in (KEY, SECRET, TOKEN, "Signature=", "AWS4-HMAC-SHA256", "X-Amz-Date", "x-amz-date"):
        assert secret not in text, secret
    stream, titan = (entry["response"] for entry in document["exchanges"])
    assert stream["headers"]["content-type"] == "application/vnd.amazon.eventstream"
    kinds = [event["headers"][":event-type"] for event in stream["events"]]
    assert kinds[0] == "messageStart" and kinds[-2:] == ["messageStop", "metadata"]
    assert stream["events"][-1]["payload"]["usage"]["inputTokens"] > 0
    assert len(stream["offsets_s"]) == len(stream["events"])
    spoken = "".join(e["payload"]["delta"].get("text", "") for e in stream["events"] if "delta" in e.get("payload", {}))
    assert spoken == answer(HAIKU, f"my key is {KEY}, name a bird")  # readable text, not base64 or binary
    assert titan["events"][0]["payload"]["bytes_json"]["outputText"]  # a chunk's model JSON, readable
    asked = document["exchanges"][0]["request"]["body"]["messages"][0]["content"][0]["text"]
    assert asked.startswith("my key is ") and "[redacted]" in asked


class Relay:
    """What the net sidecar does: a TCP listener on loopback whose connections go to a tunnel's socket."""

    def __init__(self, socket_path):
        self.socket_path = socket_path
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    async def _pipe(self, reader, writer):
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        with contextlib.suppress(OSError):
            writer.write_eof()

    async def _serve(self, reader, writer):
        up_reader, up_writer = await asyncio.open_unix_connection(str(self.socket_path))
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        writer.close()
        up_writer.close()

    def run(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(30)

    def __enter__(self):
        self.thread.start()

        async def start():
            server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
            return server, server.sockets[0].getsockname()[1]

        self.server, self.port = self.run(start())
        return self

    def __exit__(self, *exc):
        self.server.close()

        async def cancel_the_rest():
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        self.run(cancel_the_rest())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def client(port):
    return boto3.client("bedrock-runtime", region_name="us-east-1", endpoint_url=f"http://127.0.0.1:{port}",
                        aws_access_key_id=KEY, aws_secret_access_key=SECRET, aws_session_token=TOKEN,
                        config=Config(retries={"total_max_attempts": 1}))


def test_a_converse_stream_replays_as_an_event_stream_through_boto3_with_nothing_upstream(fake, tmp_path):
    live = boto3.client("bedrock-runtime", region_name="us-east-1", endpoint_url=fake.url, verify=str(fake.ca.bundle),
                        aws_access_key_id=KEY, aws_secret_access_key=SECRET, aws_session_token=TOKEN)
    live_events = list(live.converse_stream(modelId=HAIKU, messages=converse_body("name a quiet bird")["messages"],
                                            toolConfig=TOOLS)["stream"])
    document, _ = record(fake, [(HAIKU, "converse-stream", converse_body("name a quiet bird")),
                                (HAIKU, "converse", converse_body("name a loud bird"))])
    tunnel = Tunnel("bedrock", "0.sock", "127.0.0.2", 443, "bedrock-runtime.us-east-1.amazonaws.com", "127.0.0.1",
                    fake.port, "https", None, fake.url, "https://bedrock-runtime.us-east-1.amazonaws.com")
    replayer = cassette.Replayer(document, "strict", Redactor([SECRET, TOKEN]))
    connections = fake.connections
    cassette.attach_replayer("bedrock-replay", replayer)
    with Relay(tmp_path / "0.sock") as relay:
        host = TunnelHost(tmp_path, NetworkPlan(Egress.PROVIDER_ONLY, (tunnel,)), "bedrock-replay")
        relay.run(host.start())
        try:
            replayed = client(relay.port).converse_stream(
                modelId=HAIKU, messages=converse_body("name a quiet bird")["messages"], toolConfig=TOOLS)
            events = list(replayed["stream"])
            with pytest.raises(ClientError) as miss:
                client(relay.port).converse(modelId=HAIKU, messages=converse_body("name a shy bird")["messages"],
                                            toolConfig=TOOLS)
            whole = client(relay.port).converse(modelId=HAIKU, messages=converse_body("name a loud bird")["messages"],
                                                toolConfig=TOOLS)
        finally:
            relay.run(host.close())
            cassette.detach("bedrock-replay")
    assert fake.connections == connections  # nothing upstream during the replay
    assert events == live_events and len(events) > 5
    assert whole["usage"]["inputTokens"] == prompt_tokens("name a loud bird")
    assert whole["output"]["message"]["content"][1]["toolUse"]["input"] == {"query": "name a loud bird"}
    error = miss.value.response["Error"]
    assert error["Code"] == "ReplayMiss" and miss.value.response["ResponseMetadata"]["HTTPStatusCode"] == 409
    assert 'messages[0].content[0].text: recorded "name a loud bird", now "name a shy bird"' in error["Message"]


def test_cassette_show_reads_bedrock_exchanges(fake):
    from agenttui.cli.cassettes import show_lines

    document, _ = record(fake, [
        (HAIKU, "converse-stream", converse_body("name a quiet bird")),
        (HAIKU, "converse", {"messages": [{"role": "user", "content": [{"text": "hi"}]}]}),
        ("amazon.titan-text-express-v1", "invoke-with-response-stream", {"inputText": "hello there"}),
        (HAIKU, "invoke", {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 9,
                           "messages": [{"role": "user", "content": "hey"}]}),
    ])
    quoted = HAIKU.replace(":", "%3A")
    assert show_lines(document) == [
        f"#1 bedrock POST /model/{quoted}/converse-stream {HAIKU} [200 streamed] asks: 'name a quiet bird' → "
        "'anthropic.claude-3-5-haiku-20241022-v1:0 says: drib teiuq a eman [tool call]'",
        f"#2 bedrock POST /model/{quoted}/converse {HAIKU} [200 whole] asks: 'hi' → "
        "'anthropic.claude-3-5-haiku-20241022-v1:0 says: ih'",
        "#3 bedrock POST /model/amazon.titan-text-express-v1/invoke-with-response-stream amazon.titan-text-express-v1 "
        "[200 streamed] asks: 'hello there' → 'amazon.titan-text-express-v1 says: ereht olleh'",
        f"#4 bedrock POST /model/{quoted}/invoke {HAIKU} [200 whole] asks: 'hey' → "
        "'anthropic.claude-3-5-haiku-20241022-v1:0 says: yeh'",
    ]
