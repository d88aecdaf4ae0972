"""A test's budgets on the egress path (docs/recorder.md): the gate that keeps the running totals of
its model calls, and the agent-side pipe that asks it before it lets a model request's head through.

When a budget is used up the gate's pipe answers the request itself: an HTTP 429 in the provider's
own error shape (Ollama `{"error": "..."}`, OpenAI `{"error": {"message", "type", "code"}}`, Bedrock
`{"message": ...}`) with `x-should-retry: false` (the openai and anthropic libraries would retry a
429 otherwise), so the agent's client library raises it at once and plainly. The request goes no
further; the connection is closed after the answer. The gate keeps the first refusal's reason,
which the orchestrator makes the test's outcome (FailureKind.BUDGET, exit 7).

Only a test with a budget pays for the gate: its pipe frames the agent's requests with h11 (the
recorder frames a copy after the bytes were written on; the gate must see a head before it goes).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import h11

import agenttui.core.budget as budgets
import agenttui.sandbox.recorder as recorder
from agenttui.sandbox.model_formats import model_api

log = logging.getLogger(__name__)

CHUNK = 64 * 1024
REFUSED_PREFIX = "refused by agenttui: "
Price = Callable[[str, "str | None", "int | None", "int | None"], "float | None"]


class BudgetGate:
    """The running totals of one attempt's model calls against its budgets. Attached as the test's
    call sink in front of its writer (`add` counts each call the recorder hands over, then passes
    it on); `admit` is asked before a model request goes upstream."""

    def __init__(self, limits: dict[str, Any], price: Price | None = None, sink: recorder.CallSink | None = None,
                 on_used_up: Callable[[str], None] | None = None):
        self.limits = {name: value for name, value in limits.items() if value is not None}
        self.price = price
        self.sink = sink  # the test's call writer: every call goes on to it, refused ones too
        self.on_used_up = on_used_up  # told the first refusal's reason (the test's outcome)
        self.admitted = 0  # model requests let through (this attempt and, seeded, earlier ones)
        self.counted = 0  # ... of which the recorder has handed over the ended call
        self.tokens = 0
        self.cost_usd = 0.0
        self.refused = 0
        self.used_up: str | None = None  # the first refusal's reason: the test's outcome
        self._own: set[int] = set()  # the refusal records this gate added (not counted)

    def seed(self, calls: int, tokens: int, cost_usd: float) -> None:
        """An adopted or resumed attempt starts from what its test already spent."""
        self.admitted = self.counted = calls
        self.tokens, self.cost_usd = tokens, cost_usd

    def add(self, call: recorder.ModelCall) -> None:
        self.count(call)
        if self.sink is not None:
            self.sink.add(call)

    def count(self, call: recorder.ModelCall) -> None:
        if call.kind != "call" or id(call) in self._own:
            return
        self.counted += 1
        self.tokens += (call.tokens_in or 0) + (call.tokens_out or 0)
        if "max_cost_usd" in self.limits and self.price is not None:
            self.cost_usd += self.price(call.provider, call.model, call.tokens_in, call.tokens_out) or 0.0

    def spent(self) -> str | None:
        """The reason a next call would be refused (the first budget reached), or None."""
        nth = budgets.ordinal(self.admitted + self.refused + 1)
        calls = self.limits.get("max_model_calls")
        if calls is not None and self.admitted >= calls:
            return f"budget used up: {budgets.describe('max_model_calls', calls)} reached ({nth} call refused)"
        tokens = self.limits.get("max_tokens")
        if tokens is not None and self.tokens >= tokens:
            return (f"budget used up: {budgets.describe('max_tokens', tokens)} reached "
                    f"({self.tokens} tokens used; {nth} call refused)")
        cost = self.limits.get("max_cost_usd")
        if cost is not None and self.cost_usd >= cost:
            return (f"budget used up: {budgets.describe('max_cost_usd', cost)} reached "
                    f"(${self.cost_usd:.6g} spent; {nth} call refused)")
        return None

    async def admit(self) -> str | None:
        """None: let the request through (it is counted now); else the reason it is refused."""
        if self.counted < self.admitted and ("max_tokens" in self.limits or "max_cost_usd" in self.limits):
            # Calls that ended are read in the recorder's thread: wait for their counts.
            await recorder.settled()
        reason = self.spent()
        if reason is None:
            self.admitted += 1
            return None
        self.refused += 1
        if self.used_up is None:
            self.used_up = reason
            if self.on_used_up is not None:
                self.on_used_up(reason)
        return reason

    def record_refusal(self, provider: str, method: str, path: str, reason: str) -> None:
        if self.sink is None:
            return
        now = time.time()
        call = recorder.ModelCall(provider, "call", now, ended_at=now, first_byte_at=now, method=method, path=path,
                                  status=429, tokens_in=0, tokens_out=0, error=REFUSED_PREFIX + reason)
        self._own.add(id(call))
        self.sink.add(call)


def gate_of(sink: Any) -> BudgetGate | None:
    """The gate of a test's call sink, when the test has a budget (the gate is then its sink)."""
    return sink if isinstance(sink, BudgetGate) else None


def refusal(provider: str, reason: str) -> bytes:
    """The whole HTTP answer to a refused request, in the provider's error shape."""
    message = f"agenttui {reason}"
    headers = [("content-type", "application/json"), ("x-should-retry", "false"), ("connection", "close")]
    if provider == "ollama":
        body: dict[str, Any] = {"error": message}
    elif provider == "bedrock":
        body = {"message": message}
        headers.append(("x-amzn-errortype", "ServiceQuotaExceededException"))
    else:
        body = {"error": {"message": message, "type": "budget_exhausted", "code": "budget_exhausted", "param": None}}
    data = json.dumps(body).encode()
    head = "HTTP/1.1 429 Too Many Requests\r\n" + "".join(f"{n}: {v}\r\n" for n, v in headers)
    return (head + f"content-length: {len(data)}\r\n\r\n").encode("latin-1") + data


async def gated_pipe(reader: asyncio.StreamReader, upstream: asyncio.StreamWriter, agent: asyncio.StreamWriter,
                     gate: BudgetGate, provider: str, copy_to: Callable[[bytes], None] | None = None) -> None:
    """The agent's side of a connection (the forwarder's `_pipe` otherwise): the bytes of a request's
    head are held until the head is whole and the gate has let it through; the rest passes as it
    comes. What h11 cannot read (TLS while interception is off) passes ungated."""
    requests: h11.Connection | None = h11.Connection(h11.SERVER)
    held = bytearray()
    try:
        while True:
            data = await reader.read(CHUNK)
            if not data:
                break
            pending, held = bytes(held) + data, bytearray()
            if requests is not None:
                try:
                    refused = await _read(requests, data, gate, provider)
                except h11.ProtocolError:
                    requests, refused = None, None
                if refused is not None:
                    agent.write(refusal(provider, refused))
                    with contextlib.suppress(OSError, RuntimeError):
                        await agent.drain()
                    upstream.close()  # the request goes no further; the endpoint's side ends too
                    return
                unread = requests.trailing_data[0] if requests is not None and requests.their_state is h11.IDLE else b""
                if unread:
                    # The start of a head not yet whole (h11's unread bytes, the end of what came): held
                    # until the gate has seen it; what came before it goes on.
                    cut = len(pending) - len(unread)
                    pending, held = pending[:cut], bytearray(pending[cut:])
                    if not pending:
                        continue
            data = pending
            upstream.write(data)
            if copy_to is not None:
                copy_to(data)
            await upstream.drain()
    except (OSError, asyncio.IncompleteReadError):
        pass
    finally:
        with contextlib.suppress(OSError, RuntimeError):
            if upstream.can_write_eof():
                upstream.write_eof()
            else:  # TLS cannot half-close (as the forwarder's own pipe does)
                upstream.close()


async def _read(requests: h11.Connection, data: bytes, gate: BudgetGate, provider: str) -> str | None:
    """Frame `data`; ask the gate of each model request whose head it completes."""
    requests.receive_data(data)
    while True:
        event = requests.next_event()
        if event is h11.NEED_DATA or event is h11.PAUSED or isinstance(event, h11.ConnectionClosed):
            return None
        if isinstance(event, h11.Request):
            method, target = event.method.decode("ascii", "replace"), event.target.decode("ascii", "replace")
            if model_api(method, target) is not None:
                reason = await gate.admit()
                if reason is not None:
                    gate.record_refusal(provider, method, target.split("?", 1)[0], reason)
                    return reason
        elif isinstance(event, h11.EndOfMessage):
            # The parser waits for our answer before it reads the next request: give it one (its
            # bytes go nowhere; the endpoint's answer passes on the other side untouched).
            requests.send(h11.Response(status_code=200, headers=[("content-length", "0")]))
            requests.send(h11.EndOfMessage())
            if requests.states != {h11.CLIENT: h11.DONE, h11.SERVER: h11.DONE}:
                raise h11.LocalProtocolError("the connection ends after this request")  # read no further
            requests.start_next_cycle()
