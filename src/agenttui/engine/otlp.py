"""A finished test's model calls exported as one OpenTelemetry trace over OTLP/HTTP (protobuf), to
the collector the setting `otlp_endpoint` names (docs/recorder.md): Jaeger, Grafana Tempo,
Langfuse, Phoenix and the OpenTelemetry Collector all take it.

From the stored calls, after the test's end is written (never on the recording path): a root
span for the test, and a CLIENT span per model call with its real start and end and the GenAI
semantic conventions' attributes (`gen_ai.operation.name`, `gen_ai.provider.name`,
`gen_ai.request.model`, `gen_ai.usage.input_tokens`, ...). Messages and answers are not exported
(they stay with `agenttui trace`, behind its access rules); an error is exported as stored, i.e.
redacted. The OpenTelemetry SDK builds and encodes the spans; its exporter sends them.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
from typing import Any

from agenttui.engine.store.tables import ModelCallRecord, TestRecord

log = logging.getLogger(__name__)

EXPORT_TIMEOUT_S = 10.0
SERVICE_NAME = "agenttui"
# gen_ai.provider.name's well-known values (and the older gen_ai.system's) for our endpoints.
PROVIDER_NAMES = {"openai": "openai", "bedrock": "aws.bedrock", "ollama": "ollama"}
_lock = threading.Lock()  # one export at a time through a provider: force_flush covers whole tests


def operation_of(call: ModelCallRecord) -> str:
    """gen_ai.operation.name from the call's path."""
    path = (call.path or "").lower()
    if path.endswith("/api/generate") or (path.endswith("/completions") and "chat" not in path):
        return "text_completion"
    if path.endswith("/embeddings") or path.endswith("/api/embed"):
        return "embeddings"
    return "chat"  # /chat/completions, /api/chat, Bedrock's converse and invoke


def call_attributes(call: ModelCallRecord, test_id: int) -> dict[str, Any]:
    provider = PROVIDER_NAMES.get(call.provider, call.provider)
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": operation_of(call),
        "gen_ai.provider.name": provider,
        "gen_ai.system": provider,
        "agenttui.test.id": test_id,
        "agenttui.call.seq": call.seq,
        "agenttui.call.streamed": bool(call.streamed),
    }
    optional = {
        "gen_ai.request.model": call.model,
        "gen_ai.response.model": call.model,  # the answer's model when it named one, else the request's
        "gen_ai.usage.input_tokens": call.tokens_in,
        "gen_ai.usage.output_tokens": call.tokens_out,
        "http.request.method": call.method,
        "url.path": call.path,
        "http.response.status_code": call.status,
        "agenttui.call.cost_usd": call.cost_usd,
        "agenttui.call.first_byte_s": call.first_byte_s,
    }
    attributes.update({name: value for name, value in optional.items() if value is not None})
    if call.error:
        attributes["error.type"] = str(call.status) if call.status and call.status >= 400 else "error"
    return attributes


def _ns(seconds: float) -> int:
    return int(seconds * 1_000_000_000)


@functools.lru_cache(maxsize=4)
def _tracer(endpoint: str, headers: tuple[tuple[str, str], ...]) -> tuple[Any, Any]:
    """(the provider, its tracer) for a collector: made once a process, its exporter's session reused."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": SERVICE_NAME}))
    exporter = OTLPSpanExporter(endpoint=endpoint, headers=dict(headers), timeout=EXPORT_TIMEOUT_S)
    provider.add_span_processor(BatchSpanProcessor(exporter, max_export_batch_size=512))
    return provider, provider.get_tracer("agenttui.recorder")


def export_trace(endpoint: str, headers: dict[str, str], test: TestRecord, calls: list[ModelCallRecord]) -> bool:
    """Blocking (run it in a thread): the test's trace is sent; False when the collector did not take it."""
    from opentelemetry import trace
    from opentelemetry.trace import SpanKind, Status, StatusCode

    provider, tracer = _tracer(endpoint, tuple(sorted(headers.items())))
    recorded = [call for call in calls if call.kind in ("call", "judge", "connection")]
    started = min([test.running_at or test.claimed_at or test.created_at, *(c.started_at for c in recorded)])
    ended = max([test.finished_at or test.updated_at, *(c.ended_at for c in recorded)])
    status = test.status.value if hasattr(test.status, "value") else str(test.status)
    with _lock:
        root = tracer.start_span(
            f"invoke_agent test {test.id}", kind=SpanKind.INTERNAL, start_time=_ns(started),
            attributes={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": test.request.agent_filename,
                        "agenttui.test.id": test.id, "agenttui.test.status": status,
                        "agenttui.test.attempt": test.attempt,
                        **({"agenttui.test.failure_kind": test.failure_kind} if test.failure_kind else {})})
        if test.error:
            root.set_status(Status(StatusCode.ERROR, test.error[:500]))
        parent = trace.set_span_in_context(root)
        for call in recorded:
            if call.kind == "connection":
                name = f"connection {call.provider}"
                attributes: dict[str, Any] = {"agenttui.test.id": test.id, "agenttui.call.seq": call.seq,
                                              "agenttui.bytes_up": call.bytes_up, "agenttui.bytes_down": call.bytes_down}
            else:
                attributes = call_attributes(call, test.id or 0)
                name = f"{attributes['gen_ai.operation.name']} {call.model or call.provider}"
            span = tracer.start_span(name, context=parent, kind=SpanKind.CLIENT, start_time=_ns(call.started_at),
                                     attributes=attributes)
            if call.error:
                span.set_status(Status(StatusCode.ERROR, call.error[:500]))
            span.end(end_time=_ns(max(call.ended_at, call.started_at)))
        root.end(end_time=_ns(ended))
        return bool(provider.force_flush(int(EXPORT_TIMEOUT_S * 1000) + 1000))


_pending: set[asyncio.Task[None]] = set()  # held so a running export is not collected


def export_later(store: Any, endpoint: str, headers: dict[str, str], test: TestRecord) -> None:
    """Export the ended test's trace in the background: the store's read and the send never hold
    up the orchestrator; a collector that is down costs a warning in the server's log."""
    if not endpoint or test.id is None:
        return
    task = asyncio.ensure_future(_export(store, endpoint, headers, test))
    _pending.add(task)
    task.add_done_callback(_pending.discard)


async def _export(store: Any, endpoint: str, headers: dict[str, str], test: TestRecord) -> None:
    try:
        calls = await store.model_calls(test.id, limit=100_000)
        if not calls:
            return
        if not await asyncio.to_thread(export_trace, endpoint, headers, test, calls):
            log.warning("test %s: its trace was not taken by the OTLP collector at %s", test.id, endpoint)
    except Exception as exc:  # never the test's trouble
        log.warning("test %s: its trace could not be exported to %s: %s", test.id, endpoint, exc)


async def exported() -> None:
    """Every export started so far has ended (tests; the engine's close)."""
    while _pending:
        await asyncio.gather(*list(_pending), return_exceptions=True)
