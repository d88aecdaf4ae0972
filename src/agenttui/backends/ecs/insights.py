"""Container Insights: whether the cluster publishes task metrics, and a task's memory read from them."""

from __future__ import annotations

import json
import logging
import time

from agenttui.backends.base import Stats
from agenttui.backends.ecs.aws import AwsClients, describe_error
from agenttui.core.config import Settings

log = logging.getLogger(__name__)

INSIGHTS_INTERVAL_S = 30.0  # Container Insights publishes one sample a minute


class ContainerInsights:
    """The cluster's Container Insights setting (asked once) and the last sample read per task."""

    def __init__(self, aws: AwsClients, settings: Settings):
        self.aws = aws
        self.settings = settings
        self._enabled: bool | None = None
        self.samples: dict[str, tuple[float, Stats]] = {}  # task id -> (monotonic time read, stats)

    async def enabled(self) -> bool:
        if self._enabled is None:
            try:
                ecs = await self.aws.client("ecs")
                found = await ecs.describe_clusters(clusters=[self.settings.ecs_cluster], include=["SETTINGS"])
                settings = (found.get("clusters") or [{}])[0].get("settings") or []
                self._enabled = any(
                    x.get("name") == "containerInsights" and x.get("value") in ("enabled", "enhanced") for x in settings
                )
            except Exception:
                return False  # ask again next time
        return self._enabled

    async def stats(self, task_id: str) -> Stats | None:
        """Memory of `task_id` from the cluster's performance log (call only when enabled())."""
        cached = self.samples.get(task_id)
        now = time.monotonic()
        # A sample a minute is all Container Insights has; until the first, look more often.
        interval = INSIGHTS_INTERVAL_S if cached and cached[1].peak_memory_bytes else self.settings.ecs_poll_s * 5
        if cached is not None and now - cached[0] < interval:
            return cached[1] if cached[1].peak_memory_bytes else None
        peak = cached[1].peak_memory_bytes if cached else None
        latest = cached[1].memory_bytes if cached else None
        try:
            logs = await self.aws.client("logs")
            response = await logs.filter_log_events(
                logGroupName=f"/aws/ecs/containerinsights/{self.settings.ecs_cluster}/performance",
                filterPattern=f'"{task_id}"',
                startTime=int((time.time() - 3 * 3600) * 1000),
            )
        except Exception as exc:
            log.debug("Container Insights read failed: %s", describe_error(exc))
            self.samples[task_id] = (now, cached[1] if cached else Stats())
            return cached[1] if cached else None
        for event in response.get("events") or []:
            try:
                sample = json.loads(event.get("message") or "")
            except ValueError:
                continue
            if not isinstance(sample, dict) or sample.get("TaskId") != task_id or sample.get("Type") != "Task":
                continue
            used = sample.get("MemoryUtilized")
            if isinstance(used, (int, float)):
                latest = int(used * 1024 * 1024)
                peak = max(peak or 0, latest)
        stats = Stats(memory_bytes=latest, peak_memory_bytes=peak)
        self.samples[task_id] = (now, stats)
        return stats if peak is not None else None

    def forget(self, task_id: str) -> None:
        self.samples.pop(task_id, None)
