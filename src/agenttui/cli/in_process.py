"""--in-process for the commands written against the blocking client: the engine runs in this
command (LocalClient, asyncio) on an event loop of its own, each call run to its end on it."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Iterator
from typing import Any


class EngineHere:
    """A LocalClient behind the blocking client's calls: a coroutine's result is returned, an
    async iterator is handed out as an iterator."""

    def __init__(self, settings: Any):
        from agenttui.client.local import LocalClient

        self._runner = asyncio.Runner()
        self._client = LocalClient(settings)

    def __enter__(self) -> EngineHere:
        self._run(self._client.open())
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._run(self._client.close())
        finally:
            self._runner.close()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)
        if not callable(method):
            return method

        def call(*args: Any, **kwargs: Any) -> Any:
            result = method(*args, **kwargs)
            if inspect.isawaitable(result):
                return self._run(result)
            if isinstance(result, AsyncIterator):
                return self._iterate(result)
            return result

        return call

    def _iterate(self, batches: AsyncIterator[Any]) -> Iterator[Any]:
        while True:
            try:
                batch = self._run(anext(batches))
            except StopAsyncIteration:
                return
            try:
                yield batch
            except GeneratorExit:  # left early, between two batches: the iterator ends here too
                if hasattr(batches, "aclose"):
                    self._run(batches.aclose())
                raise

    def _run(self, awaitable: Any) -> Any:
        async def awaited() -> Any:  # Runner.run takes coroutines only
            return await awaitable

        return self._runner.run(awaited())
