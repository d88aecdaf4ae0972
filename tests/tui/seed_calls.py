"""Recorded model calls for the calls view's tests, written through the recorder's own sink
(CallWriter: redacted, capped, priced and stored by Store.add_model_calls), as a test's run does."""

from __future__ import annotations

import json

from agenttui.core.config import Settings
from agenttui.core.prices import PriceTable
from agenttui.core.redact import Redactor
from agenttui.engine.store import Store
from agenttui.engine.store.calls import CallLimits, CallWriter
from agenttui.sandbox.recorder import ModelCall

from .seed import T0

CANARY_KEY = "sk-canary-0123456789abcdef"  # the test's secret: never on screen

MESSAGES = [
    {"role": "system", "content": "You answer in one word."},
    {"role": "user", "content": "What is the capital of France?"},
]


def seeded_calls(start: float = T0 + 1) -> list[ModelCall]:
    """Three calls (one streamed with a tool call, one local, one refused with 401) and one
    connection the recorder could not read."""
    return [
        ModelCall("openai", "call", start, ended_at=start + 1.25, first_byte_at=start + 0.41, method="POST",
                  path="/v1/chat/completions", status=200, model="gpt-4o-mini", streamed=True, request=MESSAGES,
                  response="Paris.", tokens_in=1200, tokens_out=85,
                  tool_calls=[{"id": "call_1", "name": "get_weather", "arguments": json.dumps({"city": "Paris"})}],
                  bytes_up=512, bytes_down=2048),
        ModelCall("ollama", "call", start + 2, ended_at=start + 2.3, first_byte_at=start + 2.1, method="POST",
                  path="/api/chat", status=200, model="llama3.2", request=[{"role": "user", "content": "Say hi"}],
                  response="Hi! \x1b[31mred\x1b[0m", tokens_in=30, tokens_out=12, bytes_up=100, bytes_down=300),
        ModelCall("openai", "call", start + 3, ended_at=start + 3.05, first_byte_at=start + 3.04, method="POST",
                  path="/v1/chat/completions", status=401, model="gpt-4o-mini", request=MESSAGES,
                  error=f"Incorrect API key provided: {CANARY_KEY}", bytes_up=400, bytes_down=200),
        ModelCall("openai", "connection", start + 4, ended_at=start + 4.5, bytes_up=700, bytes_down=5000),
    ]


async def write_calls(settings: Settings, test_id: int, calls: list[ModelCall], *, attempt: int = 1) -> None:
    """Store `calls` as the recorder's sink does for a running test (one batch)."""
    store = await Store.open(settings.resolved_db_url, log_max_bytes=settings.log_max_bytes)
    try:
        first = await store.next_model_call_seq(test_id)
        writer = CallWriter(lambda rows: store.add_model_calls(test_id, rows), test_id, attempt,
                            Redactor([CANARY_KEY]), PriceTable(), CallLimits(1000, 65536), first_seq=first)
        for call in calls:
            writer.add(call)
        await writer.close()
    finally:
        await store.close()
