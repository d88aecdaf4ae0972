"""When an agent fails, the reason says what went wrong with its model calls (issue 18, point 5):
the recorder's errors reach the outcome; a refused connection is one of them."""

import asyncio
import socket

from agenttui.backends.base import ExitInfo
from agenttui.core.domain import Status
from agenttui.core.prices import PriceTable
from agenttui.core.redact import Redactor
from agenttui.engine.orchestrator.outcome import RunFacts, classify
from agenttui.engine.store.calls import CallLimits, CallWriter
from agenttui.sandbox import recorder
from agenttui.sandbox.forwarder import TunnelHost
from agenttui.sandbox.recorder import ModelCall

from .test_forwarder import plan_for

ERRORS = ["openai gpt-4o-mini: HTTP 401: Incorrect API key provided"]


def test_a_failed_agent_names_its_model_calls_errors_and_a_completed_one_does_not():
    failed = classify(ExitInfo(exit_code=1), {"success": False, "error": "AuthenticationError: 401"},
                      RunFacts(memory_mb=512, timeout_s=30, model_call_errors=ERRORS))
    assert failed.status is Status.FAILED
    assert failed.error.endswith("; its model calls failed: openai gpt-4o-mini: HTTP 401: Incorrect API key provided")
    done = classify(ExitInfo(exit_code=0), {"success": True, "response": "fine"},
                    RunFacts(memory_mb=512, timeout_s=30, model_call_errors=ERRORS))
    assert done.status is Status.COMPLETED and done.error is None


def test_the_writer_keeps_the_calls_distinct_errors_redacted():
    async def main():
        writer = CallWriter(_ignore, 1, 1, Redactor(["sk-secret-value"]), PriceTable(), CallLimits(10, 1000))
        for _ in range(3):
            writer.add(ModelCall("openai", "call", 1.0, ended_at=2.0, model="gpt-4o-mini", status=401,
                                 error="Incorrect API key provided: sk-secret-value"))
        writer.add(ModelCall("openai", "call", 1.0, ended_at=2.0, status=200))
        await writer.close()
        return writer.errors

    assert asyncio.run(main()) == ["openai gpt-4o-mini: HTTP 401: Incorrect API key provided: sk…[redacted]"]


async def _ignore(rows):
    return None


def test_a_refused_connection_is_recorded_with_its_reason(tmp_path):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    class Sink:
        calls = []

        def add(self, call):
            self.calls.append(call)

    async def main():
        sink = Sink()
        recorder.attach("refused", sink)
        host = TunnelHost(tmp_path, plan_for(port), "refused")
        await host.start()
        try:
            reader, writer = await asyncio.open_unix_connection(str(tmp_path / "0.sock"))
            assert await reader.read() == b""  # closed: nothing to carry it to
            writer.close()
        finally:
            await host.close()
            recorder.detach("refused", sink)
        return sink.calls

    calls = asyncio.run(main())
    assert [(c.kind, c.provider, c.error) for c in calls] == [
        ("connection", "ollama", f"connection refused at 127.0.0.1:{port}")]
