"""RunTask for one attempt: the overrides (within ECS's 8 KiB), the tags, the call and what its failures mean."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from agenttui.backends.base import InfraError, RunSpec
from agenttui.backends.ecs.aws import AwsClients, describe_error, error_code
from agenttui.backends.ecs.description import task_id_of
from agenttui.core.config import Settings

OVERRIDES_MAX_CHARS = 8192  # ECS: "a total of 8192 characters are allowed for overrides"
RUN_TASK_RATE = 10.0  # RunTask calls per second (ECS allows bursts of 100, 20-40/s sustained)
PROJECT_TAG = "agenttui"


class OverridesTooLarge(InfraError):
    """The RunTask overrides would exceed ECS's 8192-character limit."""


def check_overrides(overrides: dict[str, Any]) -> int:
    """The serialized size of `overrides`; OverridesTooLarge when ECS would refuse it."""
    size = len(json.dumps(overrides, separators=(",", ":")))
    if size >= OVERRIDES_MAX_CHARS:
        raise OverridesTooLarge(
            f"the RunTask overrides would be {size} characters; ECS allows fewer than "
            f"{OVERRIDES_MAX_CHARS}. The agent already travels through S3: shorten the container "
            "name or the extra labels, or sign with credentials that have a shorter session token"
        )
    return size


def started_by(name: str) -> str:
    """RunTask's startedBy (at most 36 characters) for a deterministic task name."""
    if len(name) <= 36:
        return name
    return "agenttui-" + hashlib.sha256(name.encode()).hexdigest()[:27]


def task_overrides(settings: Settings, spec: RunSpec, bundle_url: str) -> dict[str, Any]:
    """The container's environment (the bundle's URL, the test and attempt) and the Fargate size."""
    from agenttui.packaging import fargate_size

    limits = spec.request.limits
    cpu, memory = fargate_size(limits.cpus, limits.memory_mb)
    environment = [
        {"name": "AGENTTUI_BUNDLE_URL", "value": bundle_url},
        {"name": "AGENTTUI_TEST_ID", "value": str(spec.test_id)},
        {"name": "AGENTTUI_ATTEMPT", "value": str(spec.attempt)},
    ]
    return {
        "containerOverrides": [
            {"name": settings.ecs_container_name, "environment": environment, "memory": limits.memory_mb}
        ],
        "cpu": str(cpu),
        "memory": str(memory),
    }


def task_tags(settings: Settings, spec: RunSpec, bundle_key: str) -> list[dict[str, str]]:
    """The task's tags: the labels, then what maintenance and an adopting process read back."""
    tags = {**settings.extra_labels, **spec.labels}
    tags.update(
        {
            PROJECT_TAG: "1",
            "agenttui.store": spec.store_id,
            "agenttui.test_id": str(spec.test_id),
            "agenttui.attempt": str(spec.attempt),
            "agenttui.timeout_s": str(spec.request.timeout_s),
            "agenttui.deadline": str(int(time.time() + spec.request.timeout_s)),
            "agenttui.bundle": bundle_key,
        }
    )
    return [{"key": k[:128], "value": str(v)[:256]} for k, v in list(tags.items())[-50:]]


def run_task_params(settings: Settings, spec: RunSpec, overrides: dict[str, Any], bundle_key: str) -> dict[str, Any]:
    s = settings
    params: dict[str, Any] = dict(
        cluster=s.ecs_cluster,
        taskDefinition=s.ecs_task_definition,
        launchType="FARGATE",
        count=1,
        startedBy=started_by(spec.name),
        clientToken=spec.name[:64],  # idempotent: a retried call never starts a second task
        networkConfiguration={
            "awsvpcConfiguration": {
                "subnets": list(s.ecs_subnets),
                "securityGroups": list(s.ecs_security_groups),
                "assignPublicIp": "ENABLED" if s.ecs_assign_public_ip else "DISABLED",
            }
        },
        overrides=overrides,
        tags=task_tags(s, spec, bundle_key),
    )
    if not s.ecs_security_groups:
        del params["networkConfiguration"]["awsvpcConfiguration"]["securityGroups"]
    return params


async def run_task(aws: AwsClients, params: dict[str, Any]) -> str:
    """RunTask; the new task's id, or InfraError naming why ECS did not start it."""
    try:
        ecs = await aws.client("ecs")
        response = await ecs.run_task(**params)
    except Exception as exc:
        hint = " (run `agenttui doctor`)" if error_code(exc) in (
            "ClusterNotFoundException", "InvalidParameterException", "ClientException", "AccessDeniedException"
        ) else ""
        raise InfraError(f"ECS RunTask failed: {describe_error(exc)}{hint}") from exc
    failures = response.get("failures") or []
    tasks = response.get("tasks") or []
    if failures or not tasks:
        detail = "; ".join(
            f"{f.get('reason', '?')}" + (f" ({f['detail']})" if f.get("detail") else "") for f in failures
        )
        raise InfraError(f"ECS could not place the task: {detail or 'no task returned'}")
    return task_id_of(tasks[0]["taskArn"])
