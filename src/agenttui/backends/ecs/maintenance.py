"""Maintenance: stop agenttui's tasks abandoned well past their deadline (every orchestrator stops its own at it)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from agenttui.backends.ecs.aws import AwsClients
from agenttui.backends.ecs.description import DESCRIBE_BATCH, tags_of, task_id_of
from agenttui.backends.ecs.task import PROJECT_TAG
from agenttui.core.config import Settings

log = logging.getLogger(__name__)

ORPHAN_GRACE_S = 300.0  # a task this long past its deadline was abandoned: stop it

DescribeTasks = Callable[[list[str]], Awaitable[dict[str, dict[str, Any]]]]


async def running_task_arns(aws: AwsClients, settings: Settings) -> list[str]:
    ecs = await aws.client("ecs")
    arns: list[str] = []
    token: str | None = None
    while True:
        params: dict[str, Any] = dict(cluster=settings.ecs_cluster, desiredStatus="RUNNING")
        if token:
            params["nextToken"] = token
        page = await ecs.list_tasks(**params)
        arns += page.get("taskArns") or []
        token = page.get("nextToken")
        if not token:
            return arns


async def stop_orphans(aws: AwsClients, settings: Settings, describe_tasks: DescribeTasks, now: float) -> int:
    """Stop the cluster's agenttui tasks ORPHAN_GRACE_S past the deadline in their tags; how many."""
    arns = await running_task_arns(aws, settings)
    ecs = await aws.client("ecs")
    stopped = 0
    for start in range(0, len(arns), DESCRIBE_BATCH):
        tasks = await describe_tasks([task_id_of(a) for a in arns[start : start + DESCRIBE_BATCH]])
        for task_id, task in tasks.items():
            tags = tags_of(task)
            deadline = tags.get("agenttui.deadline", "")
            if tags.get(PROJECT_TAG) != "1" or not deadline.isdigit() or task.get("lastStatus") == "STOPPED":
                continue
            if now > int(deadline) + ORPHAN_GRACE_S:
                log.warning("stopping orphaned ECS task %s (test %s)", task_id, tags.get("agenttui.test_id"))
                with contextlib.suppress(Exception):
                    await ecs.stop_task(
                        cluster=settings.ecs_cluster,
                        task=task_id,
                        reason="agenttui: orphan past its deadline",
                    )
                    stopped += 1
    return stopped
