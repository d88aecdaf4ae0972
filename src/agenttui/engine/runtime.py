"""The engine's one composition root: the store, the backend, the orchestrator and the service,
opened together and closed in reverse order. The server and the in-process client both run
their engine through it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import agenttui.engine.otlp as otlp
from agenttui.backends import make_backend
from agenttui.backends.base import Backend
from agenttui.core.config import Settings
from agenttui.engine.orchestrator import Orchestrator
from agenttui.engine.service import Service
from agenttui.engine.store import Owner, Store

log = logging.getLogger(__name__)
EXPORTS_WAIT_S = 15.0  # at most this long for OTLP exports under way when the engine closes


class Engine:
    """A running engine. `whole_queue` engines (the server, the TUI without a server) work
    every queued test; the others (a one-shot command) claim and adopt only the tests they are
    handed, so a short-lived process never walks away holding someone else's test."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        backend: Backend,
        *,
        whole_queue: bool = True,
        is_admin: Callable[[Owner], bool] | None = None,
    ):
        self.store = store
        self.backend = backend
        self.orchestrator = Orchestrator(store, backend, settings, only_ids=None if whole_queue else set())
        admin = {} if is_admin is None else {"is_admin": is_admin}  # else the service's own rule
        self.service = Service(
            store, settings, on_submit=self.take_charge, on_orphan=self.take_charge, capacity=backend.capacity, **admin
        )
        self._work: asyncio.Task[None] | None = None

    @classmethod
    async def open(
        cls,
        settings: Settings,
        *,
        whole_queue: bool = True,
        backend: Backend | None = None,
        is_admin: Callable[[Owner], bool] | None = None,
    ) -> Engine:
        """Open the store and the backend (unless given one). The orchestrator's loop starts
        with start(), or with the first test handed over."""
        store = await Store.open(settings.resolved_db_url, log_max_bytes=settings.log_max_bytes)
        try:
            if backend is None:
                # One that runs only the tests it is handed has no next test to start ahead
                # of time (the warm pool).
                backend = make_backend(settings if whole_queue else settings.model_copy(update={"warm_pool": 0}))
        except BaseException:
            await store.close()
            raise
        return cls(settings, store, backend, whole_queue=whole_queue, is_admin=is_admin)

    def start(self) -> None:
        """Run the orchestrator's loop (again, if it has ended)."""
        if self._work is None or self._work.done():
            self._work = asyncio.create_task(self.orchestrator.run(), name="orchestrator")

    def take_charge(self, test_id: int) -> None:
        """Have the orchestrator claim (or adopt) the test now; one that runs only the tests
        it is handed adds it to them and runs its loop."""
        if self.orchestrator.only_ids is not None:
            self.orchestrator.only_ids.add(test_id)
            self.start()
        self.orchestrator.wake()

    async def stop(self) -> None:
        """Stop claiming and wait for the loop to let go of its tests (running containers
        stay: their leases expire and the next orchestrator adopts them)."""
        self.orchestrator.stop()
        if self._work is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._work

    async def close(self) -> None:
        """Stop, then close the backend and the store."""
        await self.stop()
        with contextlib.suppress(asyncio.TimeoutError):  # traces of tests that just ended reach their collector
            await asyncio.wait_for(otlp.exported(), EXPORTS_WAIT_S)
        try:
            await self.backend.close()
        except Exception as exc:  # the store is closed all the same
            log.warning("closing the backend: %s", exc)
        await self.store.close()

    async def __aenter__(self) -> Engine:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
