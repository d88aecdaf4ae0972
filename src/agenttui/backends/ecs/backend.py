"""EcsBackend: the Backend protocol on Fargate, one task per attempt, built on the modules beside it."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

from agenttui.backends.base import (
    Backend,
    BuildError,
    BuildLog,
    Capacity,
    ExitInfo,
    HandleState,
    InfraError,
    LogBatch,
    RunSpec,
    Stats,
)
from agenttui.backends.ecs.aws import AwsClients, RateLimiter, describe_error, error_code
from agenttui.backends.ecs.bundles import BundleStore, build_bundle
from agenttui.backends.ecs.description import exit_info_from_task, stopped_by_agenttui, tags_of, task_id_of
from agenttui.backends.ecs.insights import ContainerInsights
from agenttui.backends.ecs.logs import LOG_PAGE_LIMIT, LOGS_RATE, StreamFollower
from agenttui.backends.ecs.maintenance import stop_orphans
from agenttui.backends.ecs.poller import TaskPoller, TaskWatch
from agenttui.backends.ecs.task import (
    RUN_TASK_RATE,
    check_overrides,
    run_task,
    run_task_params,
    started_by,
    task_overrides,
)
from agenttui.core.config import Settings

STOP_WAIT_BOUND_S = 60.0  # after our StopTask, stop waiting for ECS to say STOPPED
DRAIN_WAIT_S = 8.0  # an infrastructure failure waits this long for the log to be drained


class EcsBackend(Backend):
    name = "ecs"

    def __init__(self, settings: Settings, *, aws: AwsClients | None = None):
        self.settings = settings
        self.aws = aws or AwsClients(settings)
        self.poller = TaskPoller(self)
        self.bundles = BundleStore(self.aws, settings)
        self.insights = ContainerInsights(self.aws, settings)
        self.run_task_limiter = RateLimiter(RUN_TASK_RATE)
        self.logs_limiter = RateLimiter(LOGS_RATE)
        self.log_page_limit = LOG_PAGE_LIMIT
        self._stopped: set[str] = set()  # tasks this process asked ECS to stop
        self._deadlines: dict[str, float] = {}  # task id -> epoch deadline (timeouts)
        self._bundles: dict[str, str] = {}  # task id -> S3 key of its bundle
        self._names: dict[str, str] = {}  # deterministic name -> task id
        self.last_overrides_chars: int | None = None  # size of the last RunTask overrides

    @property
    def runner_image(self) -> str:
        return self.settings.ecs_runner_image or f"ecs-task-definition:{self.settings.ecs_task_definition}"

    # -- protocol -------------------------------------------------------------------------
    async def capacity(self) -> Capacity | None:
        from agenttui.packaging.aws import fargate_largest

        cpus, memory_mb = fargate_largest()
        return Capacity(cpus, memory_mb, "AWS Fargate's largest task")

    async def check(self) -> None:
        s = self.settings
        problems = []
        if not s.s3_bucket:
            problems.append("setting s3_bucket is empty (agent bundles travel through S3)")
        if not s.ecs_subnets:
            problems.append("setting ecs_subnets is empty (Fargate tasks need a subnet)")
        if not problems:
            try:
                ecs = await self.aws.client("ecs")
                found = await ecs.describe_clusters(clusters=[s.ecs_cluster])
                clusters = [c for c in found.get("clusters", []) if c.get("status") == "ACTIVE"]
                if not clusters:
                    problems.append(f"ECS cluster {s.ecs_cluster!r} does not exist or is not active")
            except Exception as exc:
                problems.append(f"cannot reach ECS: {describe_error(exc)}")
        if problems:
            raise InfraError("the ecs backend is not usable: " + "; ".join(problems) + ". Run `agenttui doctor`.")

    async def prepare(self, spec: RunSpec, on_log: BuildLog) -> tuple[str, bool]:
        if spec.request.dockerfile.strip():
            raise BuildError(
                "custom Dockerfiles are not supported by the ecs backend: every task runs the runner "
                "image of the task definition. Run this test with the docker backend, or build what "
                "the Dockerfile adds into your runner image (docs/aws.md)"
            )
        on_log(
            f"ECS: task definition {self.settings.ecs_task_definition} on cluster {self.settings.ecs_cluster}; "
            "requirements are installed inside the task"
        )
        if spec.network is not None and spec.network.isolated:
            on_log(
                f"ECS: egress {spec.network.egress.value!r} is not applied per test on ECS; the task's network "
                "is what its subnets and security groups allow (docs/aws.md)"
            )
        return self.runner_image, False

    async def start(self, spec: RunSpec, image: str) -> str:
        s = self.settings
        if not s.s3_bucket or not s.ecs_subnets:
            await self.check()  # raises with what is missing
        key = self.bundles.key(spec.name)
        bundle = await asyncio.to_thread(build_bundle, spec)
        # Presigning is local: the overrides are checked before any call to AWS.
        url = await self.bundles.presign(key)
        overrides = task_overrides(s, spec, url)
        self.last_overrides_chars = check_overrides(overrides)
        await self.bundles.upload(key, bundle, spec)
        try:
            task_id = await self._run_task(spec, overrides, key)
        except BaseException:
            await asyncio.shield(self._discard_failed_start(spec.name, key))
            raise
        self._bundles[task_id] = key
        self._names[spec.name] = task_id
        self._deadlines[task_id] = time.time() + spec.request.timeout_s
        self.poller.watch(task_id)
        return task_id

    async def _run_task(self, spec: RunSpec, overrides: dict[str, Any], key: str) -> str:
        params = run_task_params(self.settings, spec, overrides, key)
        await self.run_task_limiter.acquire()
        return await run_task(self.aws, params)

    async def _discard_failed_start(self, name: str, key: str) -> None:
        """RunTask may have started the task before its error reached us (a timeout): stop it."""
        with contextlib.suppress(Exception):
            task_id = await self._task_id(name)
            if task_id is not None:
                ecs = await self.aws.client("ecs")
                await ecs.stop_task(cluster=self.settings.ecs_cluster, task=task_id, reason="agenttui: start failed")
        await self.bundles.delete(key)

    async def describe_tasks(self, task_ids: list[str]) -> dict[str, dict[str, Any]]:
        """{task id: description} of those ECS still knows (used by the shared poller)."""
        ecs = await self.aws.client("ecs")
        response = await ecs.describe_tasks(cluster=self.settings.ecs_cluster, tasks=task_ids, include=["TAGS"])
        wanted = set(task_ids)
        found = {}
        for task in response.get("tasks") or []:
            task_id = task_id_of(task.get("taskArn", ""))
            if task_id in wanted:
                found[task_id] = task
        return found

    async def _task_id(self, handle: str) -> str | None:
        """Task id of a handle: a task id, a task ARN, or the deterministic name persisted
        before RunTask answered (found again through startedBy)."""
        if handle.startswith("arn:"):
            return task_id_of(handle)
        if not handle.startswith("agenttui-"):
            return handle
        if handle in self._names:
            return self._names[handle]
        ecs = await self.aws.client("ecs")
        for desired in ("RUNNING", "STOPPED"):
            try:
                found = await ecs.list_tasks(
                    cluster=self.settings.ecs_cluster, startedBy=started_by(handle), desiredStatus=desired
                )
            except Exception as exc:
                raise InfraError(f"cannot list ECS tasks: {describe_error(exc)}") from exc
            arns = found.get("taskArns") or []
            if arns:
                self._names[handle] = task_id_of(arns[-1])
                return self._names[handle]
        return None

    def _stopped_by_us(self, task_id: str, task: dict[str, Any] | None) -> bool:
        return task_id in self._stopped or (task is not None and stopped_by_agenttui(task))
    async def wait(self, handle: str) -> ExitInfo:
        task_id = await self._task_id(handle)
        if task_id is None:
            raise InfraError(f"no ECS task was found for {handle}: it was never started")
        watch = self.poller.watch(task_id)
        while True:
            if watch.error:
                raise InfraError(watch.error)
            if watch.missing:
                raise InfraError(
                    f"ECS task {task_id} is missing from DescribeTasks (never created, or forgotten by "
                    "ECS): an infrastructure failure, not a result"
                )
            if watch.stopped and watch.task is not None:
                try:
                    return exit_info_from_task(
                        watch.task, self.settings.ecs_container_name,
                        stopped_by_us=self._stopped_by_us(task_id, watch.task),
                    )
                except InfraError:
                    # Raising ends the test at once: let the log reader store the runner's last
                    # words (why the bundle could not be fetched, ...) first.
                    if watch.readers:
                        with contextlib.suppress(asyncio.TimeoutError):
                            await asyncio.wait_for(watch.drained.wait(), DRAIN_WAIT_S)
                    raise
            if watch.stop_requested_at and time.monotonic() - watch.stop_requested_at > STOP_WAIT_BOUND_S:
                return ExitInfo(
                    exit_code=None, reason=f"stopped by agenttui; ECS had not reported STOPPED after {STOP_WAIT_BOUND_S:.0f} s"
                )
            await self.poller.next_round()

    async def logs(self, handle: str, cursor: str | None) -> AsyncIterator[LogBatch]:
        task_id = await self._task_id(handle)
        if task_id is None:
            return
        watch = self.poller.watch(task_id)
        watch.readers += 1
        watch.drained.clear()
        try:
            async for batch in self._follow(task_id, watch, cursor):
                yield batch
        finally:
            watch.readers -= 1
            if not watch.readers:
                watch.drained.set()

    async def _follow(self, task_id: str, watch: TaskWatch, cursor: str | None) -> AsyncIterator[LogBatch]:
        logs = await self.aws.client("logs")
        follower = StreamFollower(logs, self.settings, self.logs_limiter, self.log_page_limit, task_id, watch, cursor)
        if cursor is None and not await self.insights.enabled():
            follower.note_insights_off()
        async for batch in follower.batches():
            yield batch

    async def stats(self, handle: str) -> Stats | None:
        """Memory from Container Insights' performance log, when the cluster has it on."""
        task_id = await self._task_id(handle)
        if task_id is None or not await self.insights.enabled():
            return None
        return await self.insights.stats(task_id)

    def _stop_reason(self, task_id: str, watch: TaskWatch) -> str:
        deadline = self._deadlines.get(task_id)
        tags = tags_of(watch.task) if watch.task else {}
        if deadline is None and tags.get("agenttui.deadline", "").isdigit():
            deadline = float(tags["agenttui.deadline"])
        timeout = tags.get("agenttui.timeout_s")
        if deadline is not None and time.time() >= deadline - 1.0:
            return f"agenttui: timeout{f' of {timeout} s' if timeout else ''} reached"
        return "agenttui: cancelled by request"

    async def stop(self, handle: str, grace_s: float, reason: str | None = None) -> None:
        """StopTask with a reason (timeout or cancel). ECS sends SIGTERM, then SIGKILL after the
        task definition's stopTimeout (grace_s cannot be set per call on ECS)."""
        task_id = await self._task_id(handle)
        if task_id is None:
            return
        watch = self.poller.watch(task_id)
        if watch.stopped or watch.missing:
            return
        why = reason or self._stop_reason(task_id, watch)
        self._stopped.add(task_id)
        try:
            ecs = await self.aws.client("ecs")
            await ecs.stop_task(cluster=self.settings.ecs_cluster, task=task_id, reason=why[:255])
        except Exception as exc:
            if error_code(exc) == "InvalidParameterException" and "not found" in str(exc).lower():
                return
            raise InfraError(f"ECS StopTask failed for task {task_id}: {describe_error(exc)}") from exc
        watch.stop_requested_at = time.monotonic()
        self.poller.kick()

    async def remove(self, handle: str) -> None:
        """ECS forgets stopped tasks by itself (about an hour later); this stops one still
        running and deletes its bundle from S3 (it holds the test's environment)."""
        task_id = await self._task_id(handle)
        if task_id is None:
            return
        watch = self.poller.watches.get(task_id)
        if watch is not None and not watch.terminal and task_id not in self._stopped:
            with contextlib.suppress(Exception):
                await self.stop(task_id, 0, reason="agenttui: cleanup after the test ended")
        key = self._bundles.pop(task_id, None)
        if key is None and watch is not None and watch.task is not None:
            key = tags_of(watch.task).get("agenttui.bundle")
        if key:
            await self.bundles.delete(key)
        self.poller.forget(task_id)
        self.insights.forget(task_id)
        self._deadlines.pop(task_id, None)
        self._stopped.discard(task_id)
    async def inspect(self, handle: str) -> HandleState | None:
        task_id = await self._task_id(handle)
        if task_id is None:
            return None
        try:
            task = (await self.describe_tasks([task_id])).get(task_id)
        except Exception as exc:
            raise InfraError(f"cannot describe ECS task {task_id}: {describe_error(exc)}") from exc
        if task is None:
            return None
        watch = self.poller.watch(task_id)
        watch.task = task
        if task.get("lastStatus") != "STOPPED":
            return HandleState(running=True, exit=None)
        try:
            exit_info = exit_info_from_task(task, self.settings.ecs_container_name)
        except (InfraError, BuildError) as exc:
            exit_info = ExitInfo(exit_code=None, reason=str(exc))
        return HandleState(running=False, exit=exit_info)

    async def close(self) -> None:
        await self.poller.close()
        await self.aws.close()

    # -- maintenance ----------------------------------------------------------------------
    async def maintain(self, now: float | None = None) -> dict[str, int]:
        """Stop orphaned tasks (agenttui tasks well past their deadline: every orchestrator
        stops its tests at the deadline) and delete leftover bundles. Returns counts."""
        now = time.time() if now is None else now
        stopped = await stop_orphans(self.aws, self.settings, self.describe_tasks, now)
        deleted = await self.bundles.delete_expired(now)
        return {"orphans_stopped": stopped, "bundles_deleted": deleted}
