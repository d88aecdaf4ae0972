"""The ecs backend against moto's server mode on 127.0.0.1.

moto's ECS never runs a container and its CloudWatch Logs hold only what is put there, so
`FakeFargate` plays the part of Fargate: it watches moto's (in-process) ECS state for new
tasks and, per test, either runs the real runner entry point (templates/ecs/entrypoint,
which fetches the bundle through the presigned URL from the task's overrides and runs the
real harness) and ships its output to CloudWatch with PutLogEvents, or scripts an outcome
(OOM, failed to start, vanished) by setting the task's state the way ECS reports it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import signal
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest

import logging

logging.getLogger("werkzeug").setLevel(logging.WARNING)

REPO = Path(__file__).resolve().parents[2]
ENTRYPOINT = REPO / "templates" / "ecs" / "entrypoint"
REGION = "us-east-1"
ACCOUNT = "123456789012"
CLUSTER = "agenttui-test"
TASK_FAMILY = "agenttui-runner"
CONTAINER = "agent"
LOG_GROUP = "/agenttui/runner"
STREAM_PREFIX = "agenttui"
BUCKET = "agenttui-test-bucket"


@pytest.fixture(scope="session")
def moto_url():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws_env(moto_url, monkeypatch, tmp_path):
    """Fake credentials, no proxy for 127.0.0.1, no real AWS config; moto reset."""
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    for key in ("NO_PROXY", "no_proxy"):
        current = os.environ.get(key, "")
        monkeypatch.setenv(key, ",".join(x for x in ("127.0.0.1", "localhost", current) if x))
    request = urllib.request.Request(f"{moto_url}/moto-api/reset", method="POST")
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request) as response:
        response.read()
    # Tasks stay where a test puts them (moto would otherwise run them to STOPPED on describe).
    from moto.moto_api import state_manager

    state_manager.set_transition("ecs::task", {"progression": "manual", "times": 10**9})
    # Like Fargate, a new task is PROVISIONING (moto starts it RUNNING); FakeFargate moves it on.
    from moto.ecs.models import Task

    created = Task.__init__

    def provisioning(self, *args, **kwargs):
        created(self, *args, **kwargs)
        self.last_status = "PROVISIONING"

    monkeypatch.setattr(Task, "__init__", provisioning)
    yield moto_url
    state_manager.unset_transition("ecs::task")


@functools.lru_cache(maxsize=None)
def client(service: str, url: str):
    """A boto3 client (made once per service: clients are thread-safe and slow to build)."""
    return boto3.client(
        service, endpoint_url=url, region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
    )


@dataclass
class World:
    url: str
    subnet: str = ""
    security_group: str = ""

    def env(self) -> dict[str, str]:
        return {
            "AGENTTUI_BACKEND": "ecs",
            "AGENTTUI_AWS_ENDPOINT_URL": self.url,
            "AGENTTUI_AWS_REGION": REGION,
            "AGENTTUI_ECS_CLUSTER": CLUSTER,
            "AGENTTUI_ECS_TASK_DEFINITION": TASK_FAMILY,
            "AGENTTUI_ECS_CONTAINER_NAME": CONTAINER,
            "AGENTTUI_ECS_SUBNETS": self.subnet,
            "AGENTTUI_ECS_SECURITY_GROUPS": self.security_group,
            "AGENTTUI_ECS_LOG_GROUP": LOG_GROUP,
            "AGENTTUI_ECS_LOG_STREAM_PREFIX": STREAM_PREFIX,
            "AGENTTUI_ECS_POLL_S": "0.2",
            "AGENTTUI_S3_BUCKET": BUCKET,
            "AGENTTUI_S3_PREFIX": "agenttui/",
        }

    def ecs_backend(self):
        from moto.backends import get_backend

        return get_backend("ecs")[ACCOUNT][REGION]

    def tasks(self) -> dict[str, Any]:
        return dict(self.ecs_backend().tasks.get(CLUSTER, {}))

    def s3_keys(self, prefix: str = "") -> list[str]:
        listing = client("s3", self.url).list_objects_v2(Bucket=BUCKET, Prefix=prefix)
        return [o["Key"] for o in listing.get("Contents") or []]


def create_world(url: str, *, cluster_settings: list[dict] | None = None) -> World:
    ec2 = client("ec2", url)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="agenttui", Description="agenttui tasks", VpcId=vpc)["GroupId"]
    ecs = client("ecs", url)
    ecs.create_cluster(clusterName=CLUSTER, settings=cluster_settings or [])
    ecs.register_task_definition(
        family=TASK_FAMILY,
        networkMode="awsvpc",
        requiresCompatibilities=["FARGATE"],
        cpu="1024",
        memory="2048",
        containerDefinitions=[
            {
                "name": CONTAINER,
                "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/agenttui-runner:1",
                "memoryReservation": 256,  # moto needs memory or memoryReservation
                "essential": True,
                "logConfiguration": {
                    "logDriver": "awslogs",
                    "options": {
                        "awslogs-group": LOG_GROUP,
                        "awslogs-region": REGION,
                        "awslogs-stream-prefix": STREAM_PREFIX,
                    },
                },
            }
        ],
    )
    client("logs", url).create_log_group(logGroupName=LOG_GROUP)
    client("s3", url).create_bucket(Bucket=BUCKET)
    return World(url=url, subnet=subnet, security_group=group)


@pytest.fixture
def world(aws_env, monkeypatch) -> World:
    made = create_world(aws_env)
    for key, value in made.env().items():
        monkeypatch.setenv(key, value)
    return made


# ----------------------------------------------------------------------------- fake Fargate
@dataclass
class Sim:
    """One moto task, driven like Fargate would drive it."""

    fargate: FakeFargate
    arn: str
    task: Any  # moto's Task model
    tags: dict[str, str]
    overrides: dict[str, Any]
    state: dict[str, Any] = field(default_factory=dict)
    _last_ts: int = 0
    stop_seen: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def task_id(self) -> str:
        return self.arn.rsplit("/", 1)[-1]

    @property
    def test_id(self) -> int:
        return int(self.tags.get("agenttui.test_id", "0"))

    @property
    def attempt(self) -> int:
        return int(self.tags.get("agenttui.attempt", "0"))

    @property
    def stream(self) -> str:
        return f"{STREAM_PREFIX}/{CONTAINER}/{self.task_id}"

    @property
    def env(self) -> dict[str, str]:
        container = self.overrides["containerOverrides"][0]
        return {e["name"]: e["value"] for e in container.get("environment", [])}

    @property
    def stop_requested(self) -> bool:
        return self.task.desired_status == "STOPPED"

    def set_status(self, status: str) -> None:
        self.task.last_status = status

    async def start_running(self, pending_s: float = 0.3) -> None:
        """PENDING (no log stream yet), then RUNNING with its log stream."""
        self.set_status("PENDING")
        await asyncio.sleep(pending_s)
        await asyncio.to_thread(
            self.fargate.logs.create_log_stream, logGroupName=LOG_GROUP, logStreamName=self.stream
        )
        self.task.containers[0].last_status = "RUNNING"
        if not self.stop_requested:
            self.set_status("RUNNING")

    async def log(self, *lines: str) -> None:
        if not lines:
            return
        now = max(int(time.time() * 1000), self._last_ts)
        self._last_ts = now
        events = [{"timestamp": now, "message": line} for line in lines]
        for start in range(0, len(events), 5000):
            await asyncio.to_thread(
                self.fargate.logs.put_log_events,
                logGroupName=LOG_GROUP,
                logStreamName=self.stream,
                logEvents=events[start : start + 5000],
            )

    def exit(self, code: int | None, reason: str | None = None, *, stop_code: str = "EssentialContainerExited",
             stopped_reason: str = "Essential container in task exited") -> None:
        container = self.task.containers[0]
        container.exitCode = code
        if reason:
            container.reason = reason
        container.last_status = "STOPPED"
        if not self.stop_requested:  # our StopTask already set its own code and reason
            self.task.stop_code = stop_code
            self.task.stopped_reason = stopped_reason
        else:
            self.task.stop_code = "UserInitiated"
        self.task.desired_status = "STOPPED"
        self.set_status("STOPPED")

    def fail_to_start(self, reason: str) -> None:
        container = self.task.containers[0]
        container.exitCode = None
        container.reason = reason
        container.last_status = "STOPPED"
        self.task.stop_code = "TaskFailedToStart"
        self.task.stopped_reason = reason
        self.task.desired_status = "STOPPED"
        self.set_status("STOPPED")

    def vanish(self) -> None:
        self.fargate.world.ecs_backend().tasks[CLUSTER].pop(self.arn, None)

    async def wait_stop_requested(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not self.stop_requested:
            if time.monotonic() > deadline:
                raise AssertionError(f"task {self.task_id} was never stopped")
            await asyncio.sleep(0.05)

    async def run_real(self, workdir: Path) -> int:
        """Run the real runner entry point as this task's container; ship its output."""
        await self.start_running()
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(workdir),
            "AGENTTUI_WORKDIR": str(workdir / "bundle"),
            "NO_PROXY": "*",
            "no_proxy": "*",
            **self.env,
        }
        process = await asyncio.create_subprocess_exec(
            sys.executable, str(ENTRYPOINT),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env, cwd=str(workdir),
            start_new_session=True,
        )
        self.state["pid"] = process.pid
        lines: asyncio.Queue[bytes | None] = asyncio.Queue()

        async def stopper() -> None:
            await self.wait_stop_requested(timeout=3600)
            self.stop_seen.set()
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)

        async def read(stream: asyncio.StreamReader) -> None:
            # Like the awslogs driver: each stream is cut into lines on its own.
            while line := await stream.readline():
                await lines.put(line)

        async def ship() -> None:
            done = False
            while not done:
                batch = [await lines.get()]
                while not lines.empty():
                    batch.append(lines.get_nowait())
                done = batch[-1] is None
                texts = [b.decode("utf-8", "replace").rstrip("\n") for b in batch if b is not None]
                await self.log(*[t for t in texts if t])  # awslogs drops empty lines

        watcher = asyncio.create_task(stopper())
        shipper = asyncio.create_task(ship())
        try:
            await asyncio.gather(read(process.stdout), read(process.stderr))
            await lines.put(None)
            await shipper
            code = await process.wait()
        finally:
            watcher.cancel()
            shipper.cancel()
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                await process.wait()
        code = 128 - code if code < 0 else code
        self.exit(code)
        return code


Behaviour = Callable[[Sim], Awaitable[Any]]


class FakeFargate:
    def __init__(self, world: World, tmp_path: Path):
        self.world = world
        self.tmp_path = tmp_path
        self.logs = client("logs", world.url)
        self.behaviours: dict[Any, Behaviour] = {}
        self.sims: list[Sim] = []
        self.errors: list[BaseException] = []
        self._handled: set[str] = set()
        self._jobs: list[asyncio.Task[Any]] = []
        self._loop: asyncio.Task[None] | None = None

    def on(self, test_id: int, behaviour: Behaviour, attempt: int | None = None) -> None:
        self.behaviours[(test_id, attempt) if attempt else test_id] = behaviour

    async def default(self, sim: Sim) -> None:
        await sim.run_real(self.workdir(sim))

    def workdir(self, sim: Sim) -> Path:
        path = self.tmp_path / f"task-{sim.task_id[:8]}"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def sims_of(self, test_id: int) -> list[Sim]:
        return [s for s in self.sims if s.test_id == test_id]

    async def start(self) -> None:
        self._loop = asyncio.create_task(self._watch())

    async def _watch(self) -> None:
        while True:
            for arn, task in self.world.tasks().items():
                if arn in self._handled:
                    continue
                self._handled.add(arn)
                tags = {t["key"]: t["value"] for t in task.tags or []}
                sim = Sim(self, arn, task, tags, task.overrides or {})
                sim.set_status("PROVISIONING")
                self.sims.append(sim)
                behaviour = (
                    self.behaviours.get((sim.test_id, sim.attempt))
                    or self.behaviours.get(sim.test_id)
                    or self.default
                )
                self._jobs.append(asyncio.create_task(self._drive(sim, behaviour)))
            await asyncio.sleep(0.05)

    async def _drive(self, sim: Sim, behaviour: Behaviour) -> None:
        try:
            await behaviour(sim)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # surfaced by the fixture
            self.errors.append(exc)

    async def close(self) -> None:
        for job in [self._loop, *self._jobs]:
            if job is not None:
                job.cancel()
        await asyncio.gather(*[j for j in [self._loop, *self._jobs] if j is not None], return_exceptions=True)


@pytest.fixture
async def fargate(world, tmp_path):
    fake = FakeFargate(world, tmp_path)
    await fake.start()
    yield fake
    await fake.close()
    assert not fake.errors, fake.errors


def bundle_env_of(sim: Sim) -> dict[str, str]:
    """The test environment a task would find in its bundle (fetched like the runner does)."""
    import io
    import zipfile

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(sim.env["AGENTTUI_BUNDLE_URL"]) as response:
        data = response.read()
    with zipfile.ZipFile(io.BytesIO(data)) as bundle:
        return json.loads(bundle.read("env.json"))
