"""A backend that runs nothing: every "container" answers at once (or after `run_s`).

For pure orchestration work where a real engine would only measure Docker: the store's
claim rate, the claim race between processes, benchmarks of the queue. Never the default.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

from agenttui.backends.base import Backend, ExitInfo, HandleState, LogBatch, LogLine, RunSpec, Stats
from agenttui.harness import RESULT_TAG


class NoopBackend(Backend):
    name = "noop"

    def __init__(self, run_s: float = 0.0):
        self.run_s = run_s
        self._runs: dict[str, tuple[RunSpec, float, asyncio.Event]] = {}

    async def check(self) -> None:
        return None

    async def prepare(self, spec: RunSpec, on_log) -> tuple[str, bool]:
        return "noop", False

    async def start(self, spec: RunSpec, image: str) -> str:
        self._runs[spec.name] = (spec, time.time(), asyncio.Event())
        return spec.name

    async def logs(self, handle: str, cursor: str | None) -> AsyncIterator[LogBatch]:
        if cursor == "end" or handle not in self._runs:
            return
        spec, _started, _stopped = self._runs[handle]
        await self.wait(handle)
        record = {"success": True, "response": f"noop: {spec.request.query}", "error": None}
        nonce = spec.env.get("AGENTTUI_RESULT_NONCE", "")
        yield LogBatch(
            [
                LogLine(time.time(), "stdout", f"noop agent for test {spec.test_id}"),
                LogLine(time.time(), "stdout", f"{RESULT_TAG} {nonce} {json.dumps(record)}"),
            ],
            cursor="end",
        )

    async def wait(self, handle: str) -> ExitInfo:
        if handle not in self._runs:
            return ExitInfo(exit_code=None, reason="gone")
        _spec, started, stopped = self._runs[handle]
        remaining = started + self.run_s - time.time()
        if remaining > 0:
            try:
                await asyncio.wait_for(stopped.wait(), remaining)
                return ExitInfo(exit_code=137, reason="stopped", started_at=started, finished_at=time.time())
            except asyncio.TimeoutError:
                pass
        return ExitInfo(exit_code=0, started_at=started, finished_at=time.time())

    async def stats(self, handle: str) -> Stats | None:
        return None

    async def stop(self, handle: str, grace_s: float) -> None:
        if handle in self._runs:
            self._runs[handle][2].set()

    async def remove(self, handle: str) -> None:
        self._runs.pop(handle, None)

    async def inspect(self, handle: str) -> HandleState | None:
        if handle not in self._runs:
            return None
        return HandleState(running=True, exit=None)

    async def close(self) -> None:
        self._runs.clear()
