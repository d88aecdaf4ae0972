"""The budget gate on the agent's side of a tunnel connection (agenttui.sandbox.budget), over real
loopback sockets: a model request's head is held until whole and asked about; a refused one never
reaches the endpoint and is answered with a 429 in the provider's shape."""

from __future__ import annotations

import asyncio
import json

import pytest

from agenttui.sandbox.budget import BudgetGate, gated_pipe, refusal
from agenttui.sandbox.recorder import ModelCall


class Sink:
    """The test's call writer behind the gate."""

    def __init__(self) -> None:
        self.calls: list[ModelCall] = []

    def add(self, call: ModelCall) -> None:
        self.calls.append(call)


def request(path: str, body: bytes = b'{"model": "m"}') -> bytes:
    return (f"POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\n\r\n").encode() + body


async def through_gate(gate: BudgetGate, pieces: list[bytes], provider: str = "openai") -> tuple[bytes, bytes]:
    """What the endpoint received and what the agent got back, the agent sending `pieces` one write each."""
    received = bytearray()

    async def endpoint(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            received.extend(data)
        writer.close()

    upstream_server = await asyncio.start_server(endpoint, "127.0.0.1", 0)
    port = upstream_server.sockets[0].getsockname()[1]

    async def forwarder(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
        await gated_pipe(reader, up_writer, writer, gate, provider)
        up_writer.close()
        writer.close()

    front = await asyncio.start_server(forwarder, "127.0.0.1", 0)
    reader, writer = await asyncio.open_connection("127.0.0.1", front.sockets[0].getsockname()[1])
    for piece in pieces:
        writer.write(piece)
        await writer.drain()
        await asyncio.sleep(0.05)  # separate reads on the forwarder's side (order, not timing, is tested)
    writer.write_eof()
    answer = await reader.read()
    writer.close()
    for server in (front, upstream_server):
        server.close()
        await server.wait_closed()
    return bytes(received), answer


SECOND = request("/v1/chat/completions")


@pytest.mark.parametrize("pieces", [
    [request("/v1/chat/completions"), SECOND[:20], SECOND[20:]],
    [request("/v1/chat/completions") + SECOND[:20], SECOND[20:]],  # the first's end and the second's start
], ids=["apart", "in one read"])
async def test_the_second_call_is_refused_even_when_its_head_comes_in_pieces(pieces) -> None:
    sink = Sink()
    told: list[str] = []
    gate = BudgetGate({"max_model_calls": 1}, sink=sink, on_used_up=told.append)
    received, answer = await through_gate(gate, pieces)
    assert received == request("/v1/chat/completions"), "the first went on whole, nothing of the second"
    reason = "budget used up: max-model-calls 1 reached (2nd call refused)"
    head, body = answer.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 429 ") and b"x-should-retry: false" in head
    assert json.loads(body) == {"error": {"message": "agenttui " + reason, "type": "budget_exhausted",
                                          "code": "budget_exhausted", "param": None}}
    assert gate.used_up == reason and told == [reason]
    assert [(c.status, c.error) for c in sink.calls] == [(429, "refused by agenttui: " + reason)]


async def test_other_requests_pass_and_tokens_are_counted_from_the_calls_handed_over() -> None:
    sink = Sink()
    gate = BudgetGate({"max_tokens": 10}, sink=sink)
    tags = b"GET /api/tags HTTP/1.1\r\nhost: x\r\n\r\n"
    received, answer = await through_gate(gate, [tags, request("/api/chat")], "ollama")
    assert received == tags + request("/api/chat") and answer == b""
    gate.add(ModelCall("ollama", "call", 0.0, tokens_in=8, tokens_out=4))  # the recorder hands the call over
    assert len(sink.calls) == 1  # and the gate passes it on
    received, answer = await through_gate(gate, [request("/api/chat")], "ollama")
    assert received == b""
    reason = "budget used up: max-tokens 10 reached (12 tokens used; 2nd call refused)"
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1]) == {"error": "agenttui " + reason}


@pytest.mark.parametrize(("limits", "spent", "reason"), [
    ({"max_model_calls": 0}, (0, 0, 0.0), "budget used up: max-model-calls 0 reached (1st call refused)"),
    ({"max_cost_usd": 0.01}, (3, 100, 0.0125), "budget used up: max-cost $0.01 reached ($0.0125 spent; 4th call refused)"),
    ({"max_tokens": 100, "max_model_calls": 5}, (2, 99, 0.0), None),
])
def test_the_reason_names_the_budget_and_the_figure_reached(limits, spent, reason) -> None:
    gate = BudgetGate(limits)
    gate.seed(*spent)
    assert gate.spent() == reason


def test_bedrock_is_refused_in_its_own_error_shape() -> None:
    head, body = refusal("bedrock", "budget used up: x").split(b"\r\n\r\n", 1)
    assert b"x-amzn-errortype: ServiceQuotaExceededException" in head
    assert json.loads(body) == {"message": "agenttui budget used up: x"}
