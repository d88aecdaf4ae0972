"""Reading ECS's description of a task: its id, tags and phases, and once STOPPED the attempt's outcome (R-8)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from agenttui.backends.base import ExitInfo, InfraError

DESCRIBE_BATCH = 100  # DescribeTasks takes at most 100 tasks
# ECS's lastStatus values in the order a task goes through them.
TASK_PHASES = (
    "PROVISIONING", "PENDING", "ACTIVATING", "RUNNING", "DEACTIVATING", "STOPPING", "DEPROVISIONING", "STOPPED"
)
RUNNING_PHASE = TASK_PHASES.index("RUNNING")

# Runner exit codes (templates/ecs/entrypoint)
EXIT_REQUIREMENTS = 3
EXIT_BUNDLE = 4

# Reasons that mean the task never got to run the agent: infrastructure, retried.
INFRA_STOP_CODES = frozenset({"TaskFailedToStart", "SpotInterruption", "TerminationNotice"})
INFRA_REASON_MARKERS = (
    "CannotPullContainerError",
    "ResourceInitializationError",
    "CannotStartContainerError",
    "CannotCreateVolumeError",
    "CannotInspectContainerError",
    "ContainerRuntimeError",
    "ContainerRuntimeTimeoutError",
    "InternalError",
    "TaskFailedToStart",
)


def task_id_of(arn_or_id: str) -> str:
    return arn_or_id.rsplit("/", 1)[-1]


def tags_of(task: dict[str, Any]) -> dict[str, str]:
    return {t.get("key", ""): t.get("value", "") for t in task.get("tags") or []}


def stopped_by_agenttui(task: dict[str, Any]) -> bool:
    return (task.get("stoppedReason") or "").startswith("agenttui:")


def _epoch(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, (int, float)):
        return float(value)
    return None


def _container(task: dict[str, Any], name: str) -> dict[str, Any]:
    containers = task.get("containers") or []
    for container in containers:
        if container.get("name") == name:
            return container
    return containers[0] if containers else {}


def exit_info_from_task(task: dict[str, Any], container_name: str, *, stopped_by_us: bool = False) -> ExitInfo:
    """The outcome of a STOPPED task, or InfraError when the infrastructure is to blame (R-8).

    OOM: the container's reason says OutOfMemoryError (exit 137). Failed to start:
    stopCode TaskFailedToStart or a Cannot*/ResourceInitialization error. Our own StopTask
    (cancel/timeout) returns what ECS reports; the orchestrator knows why it stopped it.
    """
    stop_code = task.get("stopCode") or ""
    reason = task.get("stoppedReason") or ""
    container = _container(task, container_name)
    exit_code = container.get("exitCode")
    container_reason = container.get("reason") or ""
    started = _epoch(task.get("startedAt"))
    finished = _epoch(task.get("stoppedAt") or task.get("executionStoppedAt"))
    task_id = task_id_of(task.get("taskArn", "?"))

    def info(code: int | None, why: str = "", oom: bool = False) -> ExitInfo:
        return ExitInfo(exit_code=code, oom_killed=oom, reason=why, started_at=started, finished_at=finished)

    if "OutOfMemoryError" in container_reason or "OutOfMemoryError" in reason:
        return info(exit_code if exit_code is not None else 137, container_reason or reason, oom=True)
    if stopped_by_us or stopped_by_agenttui(task):
        return info(exit_code, reason)
    text = f"{stop_code} {reason} {container_reason}"
    if stop_code in INFRA_STOP_CODES or any(marker in text for marker in INFRA_REASON_MARKERS):
        detail = "; ".join(part for part in (stop_code, reason, container_reason) if part)
        raise InfraError(f"ECS task {task_id} failed to start or was interrupted by AWS: {detail}")
    if stop_code == "UserInitiated":
        return info(exit_code, f"the task was stopped outside agenttui: {reason or 'no reason given'}")
    if exit_code is None:
        detail = "; ".join(part for part in (stop_code, reason, container_reason) if part) or "no reason given"
        raise InfraError(f"ECS task {task_id} stopped without an exit code from the runner: {detail}")
    if exit_code == EXIT_BUNDLE:
        raise InfraError(f"ECS task {task_id}: the runner could not fetch the agent bundle from S3 (see the log)")
    if exit_code == EXIT_REQUIREMENTS:
        # An outcome, not an exception: the log is drained first, and pip's output is the point.
        return info(exit_code, "pip could not install the requirements in the task; pip's output is in the log")
    if exit_code == 137 and not container_reason:
        return info(137, "killed by SIGKILL (exit 137) without a stop from agenttui")
    return info(exit_code, container_reason or (reason if exit_code else ""))
