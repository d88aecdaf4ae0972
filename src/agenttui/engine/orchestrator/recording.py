"""The recorder's sink for a test being executed (docs/recorder.md): attached under the test's
container name before its container starts or is adopted, closed once the container has ended
and before the test's end is written, so whoever sees the end sees every stored call."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import agenttui.sandbox.cassette as cassette
import agenttui.sandbox.recorder as recorder
from agenttui.backends.base import RunSpec
from agenttui.core.config import Settings
from agenttui.core.errors import ConfigurationError, SettingsError
from agenttui.core.prices import PriceTable, load_price_table
from agenttui.engine.orchestrator.run import Run
from agenttui.engine.store import Store
from agenttui.engine.otlp import export_later
from agenttui.engine.store.calls import CallLimits, CallWriter
from agenttui.sandbox.budget import BudgetGate

log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=1)
def price_table() -> PriceTable:
    """The prices, read once a process (config.toml's [prices] over the built-in table)."""
    try:
        return load_price_table()
    except SettingsError as exc:
        log.error("%s; the built-in prices are used", exc)
        return PriceTable()


async def start_recording(store: Store, settings: Settings, run: Run, spec: RunSpec) -> CallWriter | None:
    """None when the test has no tunnel (egress none): no call can pass the forwarder."""
    if spec.network is None or not spec.network.tunnels:
        return None
    test = run.test
    assert test.id is not None
    test_id = test.id

    async def write(rows: list) -> None:
        await store.add_model_calls(test_id, rows)

    writer_first_seq = await store.next_model_call_seq(test_id)
    writer = CallWriter(
        write, test_id, test.attempt, run.redact, price_table(),
        CallLimits(settings.model_calls_max, settings.model_call_text_max),
        first_seq=writer_first_seq,
    )
    sink: recorder.CallSink = writer
    budget = test.request.budget
    if budget.any():  # the gate in front of the writer: the forwarder asks it (sandbox/budget.py)
        gate = BudgetGate(budget.model_dump(), price_table().cost, writer,
                          on_used_up=lambda reason: setattr(run, "budget_used_up", reason))
        spent = await store.model_call_totals(test_id) if writer_first_seq > 1 else None
        if spent:  # an adopted attempt, or one after an infrastructure retry: the budget is the test's
            gate.seed(spent["calls"], (spent["tokens_in"] or 0) + (spent["tokens_out"] or 0), spent["cost_usd"] or 0.0)
        _gates[id(writer)] = sink = gate
    recorder.attach(spec.name, sink)
    _export_when_ended(store, settings, writer)
    return writer


async def stop_recording(container_name: str, writer: CallWriter | None) -> None:
    """Detach and write what is pending (safe to call twice: the orchestrator stops it before the
    test's end is written, and again once the attempt is over, when its trace is exported)."""
    if writer is None:
        return
    recorder.detach(container_name, _gates.pop(id(writer), None) or writer)
    await recorder.settled()  # the answers that have ended are read and added
    await writer.close()
    export = _exports.pop(id(writer), None)
    if export is not None:
        await export()


_gates: dict[int, BudgetGate] = {}  # a writer's id → the budget gate attached in front of it
_exports: dict[int, Callable[[], Awaitable[None]]] = {}  # a writer's id → the export of its test's trace


def _export_when_ended(store: Store, settings: Settings, writer: CallWriter) -> None:
    """Once the attempt is over and its test has ended, its trace goes to the OTLP collector (setting
    otlp_endpoint), in the background (agenttui.engine.otlp)."""
    if not settings.otlp_endpoint:
        return

    stops = 0

    async def export() -> None:
        nonlocal stops
        stops += 1
        test = await store.get(writer.test_id)
        if test is None or not test.status.is_terminal:
            if stops == 1:  # the stop before its end is written: ask again at the last one
                _exports[id(writer)] = export
            return  # else the attempt ended without ending the test (an infrastructure retry)
        export_later(store, settings.otlp_endpoint, settings.otlp_headers, test)

    _exports[id(writer)] = export


class CassetteUse:
    """A test's `--record` or `--replay` (docs/replay.md): the tape or the replayer attached under
    its container name for the forwarder, and what the test's metrics keep of it."""

    def __init__(self, name: str, tape: cassette.Tape | None, replayer: cassette.Replayer | None):
        self.name, self.tape, self.replayer = name, tape, replayer

    def miss(self) -> str | None:
        """The first call a strict replay could not answer."""
        return self.replayer.first_miss() if self.replayer is not None else None

    def metrics(self) -> dict[str, Any]:
        """Kept in the test's metrics: how its model traffic ran, and the cassette's exchanges that
        its owner's `submit` writes to the file (served by `trace`, never in the test's view)."""
        if self.tape is not None:
            return {"model_traffic": "recorded", "cassette": self.tape.document(), "cassette_cut": self.tape.cut}
        assert self.replayer is not None
        kept: dict[str, Any] = {"model_traffic": "replayed", "replay_mode": self.replayer.mode}
        if self.replayer.added:
            kept["cassette"] = cassette.cassette_document(
                self.replayer.exchanges + self.replayer.added, self.replayer.match or None)
            kept["cassette_added"] = len(self.replayer.added)
        return kept

    def close(self) -> None:
        cassette.detach(self.name)


def start_cassette(run: Run, spec: RunSpec) -> CassetteUse | None:
    """None when the test neither records nor replays. Either needs the test's model calls to
    pass the forwarder: a test without tunnels is refused (it would reach its endpoint directly)."""
    request = run.test.request
    if not request.record and request.replay is None:
        return None
    if spec.network is None or not spec.network.tunnels:
        raise ConfigurationError(
            "--record and --replay need egress provider-only (the model calls pass agenttui's forwarder); "
            f"this test's egress is {(request.egress.value if request.egress else 'the server default')}")
    if request.replay is not None:
        replay = request.replay
        use = CassetteUse(spec.name, None, cassette.Replayer(
            cassette.check_document(replay.cassette, "the cassette"), replay.mode, run.redact, replay.realtime))
        cassette.attach_replayer(spec.name, use.replayer)  # type: ignore[arg-type]
    else:
        use = CassetteUse(spec.name, cassette.Tape(run.redact), None)
        cassette.attach_tape(spec.name, use.tape)  # type: ignore[arg-type]
    return use
