"""The recorder's sink for a test being executed (docs/recorder.md): attached under the test's
container name before its container starts or is adopted, closed once the container has ended
and before the test's end is written, so whoever sees the end sees every stored call."""

from __future__ import annotations

import functools
import logging

import agenttui.sandbox.recorder as recorder
from agenttui.backends.base import RunSpec
from agenttui.core.config import Settings
from agenttui.core.errors import SettingsError
from agenttui.core.prices import PriceTable, load_price_table
from agenttui.engine.orchestrator.run import Run
from agenttui.engine.store import Store
from agenttui.engine.store.calls import CallLimits, CallWriter

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

    writer = CallWriter(
        write, test_id, test.attempt, run.redact, price_table(),
        CallLimits(settings.model_calls_max, settings.model_call_text_max),
        first_seq=await store.next_model_call_seq(test_id),
    )
    recorder.attach(spec.name, writer)
    return writer


async def stop_recording(container_name: str, writer: CallWriter | None) -> None:
    """Detach and write what is pending (safe to call twice)."""
    if writer is None:
        return
    recorder.detach(container_name, writer)
    await recorder.settled()  # the answers that have ended are read and added
    await writer.close()
