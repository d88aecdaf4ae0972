"""The ECS backend: each test attempt is one Fargate task running the generic runner image.

- The agent travels through S3: its code, requirements, the harness and the test's environment
  are zipped and put in the bucket; the task gets only a presigned URL in its overrides
  (ECS caps overrides at 8 KiB; checked here before RunTask is called).
- One shared poller describes every watched task in batches of 100 (DescribeTasks) each
  `ecs_poll_s`; wait(), logs(), stop() and inspect() read what it last saw.
- Logs come from CloudWatch Logs (GetLogEvents on `prefix/container/task-id`) with the forward
  token as the resumable cursor. A missing stream means "not started yet"; after STOPPED the
  stream is drained until its token stops moving. Calls are spaced by a shared rate limiter.
- Outcomes come from stopCode / the container's exitCode and reason: OOM, failed to start
  (InfraError: retried), a task missing from DescribeTasks (InfraError), our own StopTask.

See docs/aws.md for the AWS set-up and templates/ecs/ for the runner image.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import io
import json
import logging
import re
import time
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from agenttui.backends.ecs.aws import AwsClients, RateLimiter, describe_error, error_code
from agenttui.backends.base import (
    Backend,
    BuildError,
    BuildLog,
    ExitInfo,
    HandleState,
    InfraError,
    LogBatch,
    LogLine,
    RunSpec,
    Stats,
)
from agenttui.core.config import Settings
from agenttui.harness import RUNNER_FILENAME, runner_source

log = logging.getLogger(__name__)

OVERRIDES_MAX_CHARS = 8192  # ECS: "a total of 8192 characters are allowed for overrides"
BUNDLE_URL_TTL_S = 2 * 3600  # only needed until the task has started and fetched it
BUNDLE_MAX_AGE_S = 24 * 3600  # maintenance deletes bundles older than this
DESCRIBE_BATCH = 100  # DescribeTasks takes at most 100 tasks
RUN_TASK_RATE = 10.0  # RunTask calls per second (ECS allows bursts of 100, 20-40/s sustained)
LOGS_RATE = 20.0  # GetLogEvents calls per second, shared (account quota: 25/s per region)
LOG_PAGE_LIMIT = 10_000  # events per GetLogEvents page (the API's maximum)
QUIET_FETCHES = 2  # empty fetches after STOPPED before the stream counts as drained
# ECS's lastStatus values in the order a task goes through them.
TASK_PHASES = (
    "PROVISIONING", "PENDING", "ACTIVATING", "RUNNING", "DEACTIVATING", "STOPPING", "DEPROVISIONING", "STOPPED"
)
RUNNING_PHASE = TASK_PHASES.index("RUNNING")
MISSING_GRACE_S = 30.0  # a task never seen yet may lag behind RunTask (eventual consistency)
MISSING_CONFIRM_POLLS = 2
STOP_WAIT_BOUND_S = 60.0  # after our StopTask, stop waiting for ECS to say STOPPED
DRAIN_WAIT_S = 8.0  # an infrastructure failure waits this long for the log to be drained
ERROR_BUDGET_S = 300.0  # AWS errors tolerated this long before a test is given up
INSIGHTS_INTERVAL_S = 30.0  # Container Insights publishes one sample a minute
MAINTENANCE_FIRST_S = 60.0
MAINTENANCE_INTERVAL_S = 600.0
ORPHAN_GRACE_S = 300.0  # a task this long past its deadline was abandoned: stop it

PROJECT_TAG = "agenttui"
# Runner exit codes (templates/ecs/entrypoint)
EXIT_REQUIREMENTS = 3
EXIT_BUNDLE = 4
PART_RE = re.compile(r"^@@agenttui-part (\d+)/(\d+) ([A-Za-z0-9+/=]*)$")
MAX_HELD_CHARS = 64 * 1024 * 1024

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


class OverridesTooLarge(InfraError):
    """The RunTask overrides would exceed ECS's 8192-character limit."""


# --------------------------------------------------------------------------------------
# Pure helpers (unit-tested without AWS)
# --------------------------------------------------------------------------------------


def task_env(spec: RunSpec) -> dict[str, str]:
    """The test's environment for a task: endpoint URLs as configured, not as the Docker
    sandbox's tunnels would present them (a task reaches endpoints over its own network)."""
    tunnels = spec.network.tunnels if spec.network is not None else ()
    untunnel = {t.sandbox_url: t.url for t in tunnels}
    return {key: untunnel.get(value, value) for key, value in spec.env.items()}


def build_bundle(spec: RunSpec) -> bytes:
    """The zip the runner fetches: agent, requirements, harness and the test's environment."""
    files = {
        "agent.py": spec.request.agent_code,
        "requirements.txt": spec.request.requirements,
        RUNNER_FILENAME: runner_source(),
        "env.json": json.dumps(task_env(spec), sort_keys=True),
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, text in files.items():
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = (0o644 | 0o100000) << 16
            archive.writestr(info, text.encode("utf-8"))
    return buffer.getvalue()


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


def task_id_of(arn_or_id: str) -> str:
    return arn_or_id.rsplit("/", 1)[-1]


def _epoch(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, (int, float)):
        return float(value)
    return None


def _tags(task: dict[str, Any]) -> dict[str, str]:
    return {t.get("key", ""): t.get("value", "") for t in task.get("tags") or []}


def _container(task: dict[str, Any], name: str) -> dict[str, Any]:
    containers = task.get("containers") or []
    for container in containers:
        if container.get("name") == name:
            return container
    return containers[0] if containers else {}


def stopped_by_agenttui(task: dict[str, Any]) -> bool:
    return (task.get("stoppedReason") or "").startswith("agenttui:")


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


@dataclass(frozen=True)
class LogCursor:
    """Where to resume a CloudWatch stream: a forward token (None: the head) and how many
    events after it were already consumed."""

    token: str | None = None
    skip: int = 0

    def dump(self) -> str:
        return json.dumps({"t": self.token, "s": self.skip}, separators=(",", ":"))

    @classmethod
    def load(cls, text: str | None) -> LogCursor:
        if not text:
            return cls()
        try:
            data = json.loads(text)
            return cls(data.get("t"), int(data.get("s") or 0))
        except (ValueError, TypeError, AttributeError):
            log.warning("unreadable ECS log cursor %r; reading the stream from its start", text[:80])
            return cls()


class PartJoiner:
    """Joins the runner's `@@agenttui-part i/n <base64>` lines back into the result record.

    While parts are pending, every later line is held too (order is kept) and `hold_cursor`
    is where a resumed reader must start so nothing held is lost."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self.hold_cursor: LogCursor | None = None
        self.raw: list[LogLine] = []
        self.held: list[LogLine] = []
        self.parts: list[str] = []
        self.total = 0
        self.size = 0

    @property
    def holding(self) -> bool:
        return self.hold_cursor is not None

    def feed(self, line: LogLine, position: LogCursor) -> list[LogLine]:
        match = PART_RE.match(line.text)
        if match:
            number, total, chunk = int(match.group(1)), int(match.group(2)), match.group(3)
            if not self.holding:
                if number != 1 or total < 1:
                    return [line]
                self.hold_cursor, self.total, self.parts, self.raw = position, total, [chunk], [line]
                self.size = len(chunk)
                return self._complete() if total == 1 else []
            if number == len(self.parts) + 1 and total == self.total:
                self.parts.append(chunk)
                self.raw.append(line)
                self.size += len(chunk)
                return self._complete() if number == total else []
            # Out of order: give the lines back as they were, then look at this one afresh.
            return self.release() + self.feed(line, position)
        if not self.holding:
            return [line]
        self.raw.append(line)
        self.held.append(line)
        self.size += len(line.text)
        if self.size > MAX_HELD_CHARS:
            return self.release()
        return []

    def _complete(self) -> list[LogLine]:
        first = self.raw[0]
        try:
            text = base64.b64decode("".join(self.parts), validate=True).decode("utf-8", errors="replace")
        except (ValueError, TypeError):
            return self.release()
        out = [LogLine(first.ts, "stdout", text), *self.held]
        self._reset()
        return out

    def release(self) -> list[LogLine]:
        out = list(self.raw)
        self._reset()
        return out


# --------------------------------------------------------------------------------------
# The shared task poller
# --------------------------------------------------------------------------------------


@dataclass
class _Watch:
    task_id: str
    since: float = field(default_factory=time.monotonic)
    task: dict[str, Any] | None = None
    absent_polls: int = 0
    missing: bool = False
    error: str | None = None
    stop_requested_at: float | None = None
    readers: int = 0  # logs() generators following this task
    drained: asyncio.Event = field(default_factory=asyncio.Event)  # set when the last one ends

    @property
    def status(self) -> str | None:
        return self.task.get("lastStatus") if self.task else None

    @property
    def stopped(self) -> bool:
        return self.status == "STOPPED"

    @property
    def terminal(self) -> bool:
        return self.stopped or self.missing or self.error is not None


class TaskPoller:
    """Describes every watched task in batches of 100, once per interval, for all tests."""

    def __init__(self, backend: EcsBackend):
        self.backend = backend
        self.watches: dict[str, _Watch] = {}
        self._task: asyncio.Task[None] | None = None
        self._round = asyncio.Event()
        self._kick = asyncio.Event()
        self._errors_since: float | None = None
        self.describe_calls = 0  # for tests and benchmarks

    def watch(self, task_id: str) -> _Watch:
        watch = self.watches.get(task_id)
        if watch is None:
            watch = self.watches[task_id] = _Watch(task_id)
            self.kick()
        self._ensure_running()
        return watch

    def forget(self, task_id: str) -> None:
        self.watches.pop(task_id, None)

    def kick(self) -> None:
        self._kick.set()

    async def next_round(self) -> None:
        """Return after the next describe round (or a few intervals, whatever comes first)."""
        self._ensure_running()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._round.wait(), self.backend.settings.ecs_poll_s * 5 + 1)

    def _ensure_running(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="ecs-task-poller")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
            self._task = None

    async def _run(self) -> None:
        next_maintenance = time.monotonic() + MAINTENANCE_FIRST_S
        while True:
            pending = [w for w in self.watches.values() if not w.terminal]
            if pending:
                await self._poll(pending)
            finished, self._round = self._round, asyncio.Event()
            finished.set()
            if time.monotonic() >= next_maintenance:
                next_maintenance = time.monotonic() + MAINTENANCE_INTERVAL_S
                with contextlib.suppress(Exception):
                    await self.backend.maintain()
            self._kick.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._kick.wait(), self.backend.settings.ecs_poll_s)

    async def _poll(self, pending: list[_Watch]) -> None:
        for start in range(0, len(pending), DESCRIBE_BATCH):
            batch = pending[start : start + DESCRIBE_BATCH]
            try:
                tasks = await self.backend.describe_tasks([w.task_id for w in batch])
            except Exception as exc:  # throttling beyond botocore's retries, network, ...
                now = time.monotonic()
                self._errors_since = self._errors_since or now
                log.warning("ECS DescribeTasks failed (%s); retrying", describe_error(exc))
                if now - self._errors_since > ERROR_BUDGET_S:
                    for watch in batch:
                        watch.error = (
                            f"cannot read the state of ECS task {watch.task_id} for "
                            f"{ERROR_BUDGET_S:.0f} s: {describe_error(exc)}"
                        )
                continue
            self._errors_since = None
            self.describe_calls += 1
            now = time.monotonic()
            for watch in batch:
                task = tasks.get(watch.task_id)
                if task is not None:
                    watch.task, watch.absent_polls = task, 0
                    continue
                watch.absent_polls += 1
                seen_before = watch.task is not None
                if watch.absent_polls >= MISSING_CONFIRM_POLLS and (
                    seen_before or now - watch.since > MISSING_GRACE_S
                ):
                    watch.missing = True


# --------------------------------------------------------------------------------------
# The backend
# --------------------------------------------------------------------------------------


class EcsBackend(Backend):
    name = "ecs"

    def __init__(self, settings: Settings, *, aws: AwsClients | None = None):
        self.settings = settings
        self.aws = aws or AwsClients(settings)
        self.poller = TaskPoller(self)
        self.run_task_limiter = RateLimiter(RUN_TASK_RATE)
        self.logs_limiter = RateLimiter(LOGS_RATE)
        self.log_page_limit = LOG_PAGE_LIMIT
        self._stopped: set[str] = set()  # tasks this process asked ECS to stop
        self._deadlines: dict[str, float] = {}  # task id -> epoch deadline (timeouts)
        self._bundles: dict[str, str] = {}  # task id -> S3 key of its bundle
        self._names: dict[str, str] = {}  # deterministic name -> task id
        self._insights: bool | None = None
        self._stats: dict[str, tuple[float, Stats]] = {}
        self.last_overrides_chars: int | None = None  # size of the last RunTask overrides

    # -- settings-derived names ----------------------------------------------------------
    def _bundle_key(self, name: str) -> str:
        return f"{self.settings.s3_prefix}bundles/{name}.zip"

    def log_stream(self, task_id: str) -> str:
        s = self.settings
        return f"{s.ecs_log_stream_prefix}/{s.ecs_container_name}/{task_id}"

    @property
    def runner_image(self) -> str:
        return self.settings.ecs_runner_image or f"ecs-task-definition:{self.settings.ecs_task_definition}"

    # -- protocol -------------------------------------------------------------------------
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

    def _overrides(self, spec: RunSpec, url: str) -> dict[str, Any]:
        from agenttui.packaging import fargate_size

        limits = spec.request.limits
        cpu, memory = fargate_size(limits.cpus, limits.memory_mb)
        environment = [
            {"name": "AGENTTUI_BUNDLE_URL", "value": url},
            {"name": "AGENTTUI_TEST_ID", "value": str(spec.test_id)},
            {"name": "AGENTTUI_ATTEMPT", "value": str(spec.attempt)},
        ]
        return {
            "containerOverrides": [
                {"name": self.settings.ecs_container_name, "environment": environment, "memory": limits.memory_mb}
            ],
            "cpu": str(cpu),
            "memory": str(memory),
        }

    def _tags(self, spec: RunSpec, key: str) -> list[dict[str, str]]:
        tags = {**self.settings.extra_labels, **spec.labels}
        tags.update(
            {
                PROJECT_TAG: "1",
                "agenttui.engine.store": spec.store_id,
                "agenttui.test_id": str(spec.test_id),
                "agenttui.attempt": str(spec.attempt),
                "agenttui.timeout_s": str(spec.request.timeout_s),
                "agenttui.deadline": str(int(time.time() + spec.request.timeout_s)),
                "agenttui.bundle": key,
            }
        )
        return [{"key": k[:128], "value": str(v)[:256]} for k, v in list(tags.items())[-50:]]

    async def start(self, spec: RunSpec, image: str) -> str:
        s = self.settings
        if not s.s3_bucket or not s.ecs_subnets:
            await self.check()  # raises with what is missing
        key = self._bundle_key(spec.name)
        bundle = await asyncio.to_thread(build_bundle, spec)
        try:
            s3 = await self.aws.client("s3")
            # Presigning is local: the overrides are checked before any call to AWS.
            url = await s3.generate_presigned_url(
                "get_object", Params={"Bucket": s.s3_bucket, "Key": key}, ExpiresIn=BUNDLE_URL_TTL_S
            )
        except Exception as exc:
            raise InfraError(f"cannot sign a URL for the agent bundle: {describe_error(exc)}") from exc
        overrides = self._overrides(spec, url)
        self.last_overrides_chars = check_overrides(overrides)
        try:
            await s3.put_object(
                Bucket=s.s3_bucket,
                Key=key,
                Body=bundle,
                ContentType="application/zip",
                ServerSideEncryption="AES256",
                Metadata={"agenttui-test": str(spec.test_id), "agenttui-attempt": str(spec.attempt)},
            )
        except Exception as exc:
            raise InfraError(
                f"cannot upload the agent bundle to s3://{s.s3_bucket}/{key}: {describe_error(exc)}"
            ) from exc
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
        s = self.settings
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
            tags=self._tags(spec, key),
        )
        if not s.ecs_security_groups:
            del params["networkConfiguration"]["awsvpcConfiguration"]["securityGroups"]
        await self.run_task_limiter.acquire()
        try:
            ecs = await self.aws.client("ecs")
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

    async def _discard_failed_start(self, name: str, key: str) -> None:
        """RunTask may have started the task before its error reached us (a timeout): stop it."""
        with contextlib.suppress(Exception):
            task_id = await self._task_id(name)
            if task_id is not None:
                ecs = await self.aws.client("ecs")
                await ecs.stop_task(cluster=self.settings.ecs_cluster, task=task_id, reason="agenttui: start failed")
        await self._delete_bundle(key)

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

    async def _follow(self, task_id: str, watch: _Watch, cursor: str | None) -> AsyncIterator[LogBatch]:
        logs = await self.aws.client("logs")
        group, stream = self.settings.ecs_log_group, self.log_stream(task_id)
        read = LogCursor.load(cursor)
        joiner = PartJoiner()
        notes: list[LogLine] = []
        if cursor is None and not await self._insights_enabled():
            notes.append(
                LogLine(
                    time.time(),
                    "system",
                    f"[agenttui] Container Insights is off on cluster {self.settings.ecs_cluster}: no live CPU/memory "
                    "readings (the harness reports its own usage at the end)",
                )
            )
        last_status: str | None = None
        shown_running = False
        held: list[LogLine] = []  # phases after RUNNING: shown once the lines before them are read

        def phase_note(status: str) -> LogLine:
            return LogLine(time.time(), "system", f"[agenttui] ECS task {task_id[:12]}: {status}")

        quiet = 0
        errors_since: float | None = None
        while True:
            status = watch.status
            if status and status != last_status:
                last_status = status
                rank = TASK_PHASES.index(status) if status in TASK_PHASES else RUNNING_PHASE
                if rank <= RUNNING_PHASE and not shown_running:  # a lagging poll says nothing new
                    shown_running = rank == RUNNING_PHASE
                    notes.append(phase_note(status))
                elif rank > RUNNING_PHASE:
                    held.append(phase_note(status))
            terminal = watch.terminal  # known before this fetch: an empty fetch now means drained
            params: dict[str, Any] = dict(
                logGroupName=group, logStreamName=stream, startFromHead=True, limit=self.log_page_limit
            )
            if read.token:
                params["nextToken"] = read.token
            await self.logs_limiter.acquire()
            try:
                page: dict[str, Any] | None = await logs.get_log_events(**params)
                errors_since = None
            except Exception as exc:
                if error_code(exc) == "ResourceNotFoundException":
                    page = None  # the stream does not exist yet: the task has not started
                else:
                    now = time.monotonic()
                    errors_since = errors_since or now
                    if now - errors_since > ERROR_BUDGET_S:
                        raise InfraError(f"cannot read CloudWatch Logs {group}/{stream}: {describe_error(exc)}") from exc
                    log.warning("GetLogEvents %s failed (%s); retrying", stream, describe_error(exc))
                    await asyncio.sleep(min(10.0, self.settings.ecs_poll_s * 2))
                    continue
            lines: list[LogLine] = []
            moved = False
            full_page = False
            if page is not None:
                raw_events = page.get("events") or []
                full_page = len(raw_events) >= self.log_page_limit
                events = raw_events[read.skip :]
                for index, event in enumerate(events):
                    position = LogCursor(read.token, read.skip + index)
                    text = (event.get("message") or "").rstrip("\r\n")
                    line = LogLine((event.get("timestamp") or 0) / 1000.0, "stdout", text)
                    lines.extend(joiner.feed(line, position))
                token = page.get("nextForwardToken") or read.token
                if events or token != read.token:
                    moved = True
                    read = LogCursor(token, 0)
            report = joiner.hold_cursor if joiner.holding else read
            if lines and not shown_running:
                # A poll can miss a short RUNNING phase; the lines say the container ran.
                shown_running = True
                notes.append(phase_note("RUNNING"))
            if not moved:  # caught up with the stream: later phases come after what was read
                notes.extend(held)
                held = []
            if notes or lines:
                yield LogBatch([*notes, *lines], report.dump())
                notes = []
            if moved:
                quiet = 0
                if full_page or not lines:
                    continue  # more is waiting, or the token moved past an empty page
            elif terminal:
                quiet += 1
                if quiet >= QUIET_FETCHES:
                    break
            await asyncio.sleep(self.settings.ecs_poll_s)
        leftover = [*notes, *joiner.release(), *held]
        if leftover:
            yield LogBatch(leftover, read.dump())

    async def stats(self, handle: str) -> Stats | None:
        """Memory from Container Insights' performance log, when the cluster has it on."""
        task_id = await self._task_id(handle)
        if task_id is None or not await self._insights_enabled():
            return None
        cached = self._stats.get(task_id)
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
            self._stats[task_id] = (now, cached[1] if cached else Stats())
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
        self._stats[task_id] = (now, stats)
        return stats if peak is not None else None

    async def _insights_enabled(self) -> bool:
        if self._insights is None:
            try:
                ecs = await self.aws.client("ecs")
                found = await ecs.describe_clusters(clusters=[self.settings.ecs_cluster], include=["SETTINGS"])
                settings = (found.get("clusters") or [{}])[0].get("settings") or []
                self._insights = any(
                    x.get("name") == "containerInsights" and x.get("value") in ("enabled", "enhanced") for x in settings
                )
            except Exception:
                return False  # ask again next time
        return self._insights

    def _stop_reason(self, task_id: str, watch: _Watch) -> str:
        deadline = self._deadlines.get(task_id)
        tags = _tags(watch.task) if watch.task else {}
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
            key = _tags(watch.task).get("agenttui.bundle")
        if key:
            await self._delete_bundle(key)
        self.poller.forget(task_id)
        self._stats.pop(task_id, None)
        self._deadlines.pop(task_id, None)
        self._stopped.discard(task_id)

    async def _delete_bundle(self, key: str) -> None:
        try:
            s3 = await self.aws.client("s3")
            await s3.delete_object(Bucket=self.settings.s3_bucket, Key=key)
        except Exception as exc:  # maintenance deletes what is left over
            log.warning("could not delete the bundle s3://%s/%s: %s", self.settings.s3_bucket, key, exc)

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
        stopped = await self._stop_orphans(now)
        deleted = await self._delete_old_bundles(now)
        return {"orphans_stopped": stopped, "bundles_deleted": deleted}

    async def _stop_orphans(self, now: float) -> int:
        ecs = await self.aws.client("ecs")
        arns: list[str] = []
        token: str | None = None
        while True:
            params: dict[str, Any] = dict(cluster=self.settings.ecs_cluster, desiredStatus="RUNNING")
            if token:
                params["nextToken"] = token
            page = await ecs.list_tasks(**params)
            arns += page.get("taskArns") or []
            token = page.get("nextToken")
            if not token:
                break
        stopped = 0
        for start in range(0, len(arns), DESCRIBE_BATCH):
            tasks = await self.describe_tasks([task_id_of(a) for a in arns[start : start + DESCRIBE_BATCH]])
            for task_id, task in tasks.items():
                tags = _tags(task)
                deadline = tags.get("agenttui.deadline", "")
                if tags.get(PROJECT_TAG) != "1" or not deadline.isdigit() or task.get("lastStatus") == "STOPPED":
                    continue
                if now > int(deadline) + ORPHAN_GRACE_S:
                    log.warning("stopping orphaned ECS task %s (test %s)", task_id, tags.get("agenttui.test_id"))
                    with contextlib.suppress(Exception):
                        await ecs.stop_task(
                            cluster=self.settings.ecs_cluster,
                            task=task_id,
                            reason="agenttui: orphan past its deadline",
                        )
                        stopped += 1
        return stopped

    async def _delete_old_bundles(self, now: float) -> int:
        if not self.settings.s3_bucket:
            return 0
        from agenttui.backends.ecs.packages import delete_older_than

        return await delete_older_than(
            self.aws, self.settings.s3_bucket, f"{self.settings.s3_prefix}bundles/", now - BUNDLE_MAX_AGE_S
        )


__all__ = [
    "EcsBackend",
    "LogCursor",
    "OverridesTooLarge",
    "PartJoiner",
    "build_bundle",
    "check_overrides",
    "task_env",
    "exit_info_from_task",
]
