"""Issue 5's "done means", each through the real orchestrator and store, against moto's server.

FakeFargate (conftest) plays the part of Fargate; everything agenttui does goes through the
AWS APIs of the moto server (RunTask, DescribeTasks, StopTask, GetLogEvents, S3).
"""

from __future__ import annotations

import asyncio
import json
import textwrap
import time

import pytest

from agenttui.backends.ecs.backend import EcsBackend
from agenttui.backends.ecs.description import TASK_PHASES
from agenttui.backends.ecs.task import OVERRIDES_MAX_CHARS
from agenttui.core.config import load_settings
from agenttui.core.domain import FailureKind, Status, TestRequest
from agenttui.engine.orchestrator import Orchestrator
from agenttui.engine.store import Owner, Store

from .conftest import BUCKET, Sim, bundle_env_of

pytestmark = pytest.mark.timeout(120)

CHATTY_AGENT = """
import sys

def run(query):
    for i in range(1, 31):
        print(f"line {i}")
    print("a warning on stderr", file=sys.stderr)
    return f"answer to {query}"
"""

SLEEPY_AGENT = """
import time

def run(query):
    print("agent started", flush=True)
    time.sleep(120)
    return "never"
"""


def make_request(code: str = CHATTY_AGENT, query: str = "what is up", **fields) -> TestRequest:
    return TestRequest.parse(agent_code=textwrap.dedent(code), query=query, **fields)


class Harness:
    """A store on a SQLite file, the ecs backend and an orchestrator, like a server has."""

    def __init__(self, tmp_path, **overrides):
        self.tmp_path = tmp_path
        self.settings = load_settings(**overrides)
        assert self.settings.backend == "ecs"
        self.store: Store | None = None
        self.backend: EcsBackend | None = None
        self.transitions: list[tuple[int, Status]] = []

    async def __aenter__(self) -> Harness:
        self.store = await Store.open(f"sqlite+aiosqlite:///{self.tmp_path / 'store.db'}")
        self.backend = EcsBackend(self.settings)
        original = self.store.transition

        async def transition(test_id, status, **fields):
            moved = await original(test_id, status, **fields)
            if moved is not None:
                self.transitions.append((test_id, status))
            return moved

        self.store.transition = transition  # type: ignore[method-assign]
        return self

    async def __aexit__(self, *exc) -> None:
        await self.backend.close()
        await self.store.close()

    async def submit(self, request: TestRequest) -> int:
        test = await self.store.submit(request, Owner.current(), backend="ecs")
        return test.id

    async def run_until_idle(self, timeout: float = 60) -> None:
        orchestrator = Orchestrator(self.store, self.backend, self.settings)
        await asyncio.wait_for(orchestrator.wait_idle(), timeout)

    async def logs(self, test_id: int) -> list[str]:
        return [r.text for r in await self.store.logs(test_id)]

    def statuses(self, test_id: int) -> list[Status]:
        return [s for t, s in self.transitions if t == test_id]


async def wait_until(predicate, timeout: float = 30, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await predicate()
        if value:
            return value
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


async def test_completed_with_cloudwatch_logs_in_order_and_parsed_response(world, fargate, tmp_path):
    async with Harness(tmp_path) as h:
        test_id = await h.submit(make_request())
        await h.run_until_idle()
        test = await h.store.get(test_id)
        logs = await h.logs(test_id)
        claims = await h.store.claims()
    assert test.status is Status.COMPLETED, (test.error, logs)
    assert test.response == "answer to what is up"
    # QUEUED (submit) -> BUILDING (the claim) -> RUNNING -> COMPLETED
    assert [(c.test_id, c.attempt) for c in claims] == [(test_id, 1)]
    assert h.statuses(test_id) == [Status.RUNNING, Status.COMPLETED]
    assert test.queued_at <= test.claimed_at <= test.running_at <= test.finished_at
    # Every agent line came from CloudWatch, once, in order; the record line is not stored.
    assert [line for line in logs if line.startswith("line ")] == [f"line {i}" for i in range(1, 31)], logs
    assert "a warning on stderr" in logs
    assert not any(line.startswith("@@agenttui") for line in logs)
    # Phase changes are shown as they happen: PENDING (no stream yet) before RUNNING.
    notes = [line for line in logs if line.startswith("[agenttui] ECS task")]
    phases = [n.rsplit(": ", 1)[-1] for n in notes]
    assert phases[0] in ("PROVISIONING", "PENDING") and phases[-1] == "STOPPED", notes
    assert phases == sorted(set(phases), key=TASK_PHASES.index), notes  # each once, in ECS's order
    assert logs.index(next(n for n in notes if n.endswith("RUNNING"))) < logs.index("line 1")
    assert logs.index(notes[-1]) > logs.index("line 30")
    assert logs[-1] == "[agenttui] COMPLETED"
    assert any("Container Insights is off on cluster agenttui-test" in line for line in logs)  # said so
    # The task: tagged with the test and attempt, overrides small, the agent via S3.
    (sim,) = fargate.sims_of(test_id)
    assert sim.tags["agenttui.test_id"] == str(test_id) and sim.tags["agenttui.attempt"] == "1"
    assert sim.tags["agenttui.store"] == h.store.store_id
    assert sim.tags["agenttui.test-session"]  # extra labels become tags
    assert len(json.dumps(sim.overrides, separators=(",", ":"))) < OVERRIDES_MAX_CHARS
    assert "what is up" not in json.dumps(sim.overrides)  # the query travels in the bundle
    assert sim.overrides["cpu"] == "1024" and sim.overrides["memory"] == "2048"
    # the bundle (it holds the test's environment) is gone from S3.
    assert world.s3_keys("agenttui/bundles/") == []
    metrics = json.loads(test.metrics_json)
    assert metrics["exit_code"] == 0 and metrics["wall_s"] is not None and metrics["wall_s"] > 0


async def test_oom_is_mapped_from_the_container_reason(world, fargate, tmp_path):
    async def oom(sim: Sim) -> None:
        await sim.start_running(pending_s=0.1)
        await sim.log("allocating a lot")
        sim.exit(137, "OutOfMemoryError: Container killed due to memory usage")

    async with Harness(tmp_path) as h:
        test_id = await h.submit(make_request(limits={"memory_mb": 512}))
        fargate.on(test_id, oom)
        await h.run_until_idle()
        test = await h.store.get(test_id)
        logs = await h.logs(test_id)
    assert test.status is Status.FAILED and test.attempt == 1, (test.error, logs)
    assert test.oom_killed and test.exit_code == 137
    assert test.failure_kind == FailureKind.AGENT.value
    assert "out of memory" in test.error and "512 MB" in test.error
    assert "allocating a lot" in logs
    assert json.loads(test.metrics_json)["peak_memory_bytes"] == 512 * 1024 * 1024


async def test_failed_to_start_is_retried_with_backoff_then_failed(world, fargate, tmp_path):
    starts: list[float] = []

    async def cannot_pull(sim: Sim) -> None:
        starts.append(time.monotonic())
        await asyncio.sleep(0.1)
        sim.fail_to_start(
            "CannotPullContainerError: pull image manifest has been retried 5 time(s): failed to resolve ref"
        )

    async with Harness(tmp_path, retry_backoff_s=0.5, max_attempts=3) as h:
        test_id = await h.submit(make_request())
        fargate.on(test_id, cannot_pull)
        await h.run_until_idle()
        test = await h.store.get(test_id)
        logs = await h.logs(test_id)
    assert test.status is Status.FAILED and test.attempt == 3, (test.error, logs)
    assert test.failure_kind == FailureKind.INFRA.value
    assert "after 3 attempts" in test.error and "CannotPullContainerError" in test.error
    sims = fargate.sims_of(test_id)
    assert [s.attempt for s in sims] == [1, 2, 3]  # a new task per attempt, tagged with it
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert gaps[0] >= 0.5 and gaps[1] >= 1.0, gaps  # 0.5 s, then doubled
    assert sum("infrastructure failure" in line and "retrying in" in line for line in logs) == 2
    assert world.s3_keys("agenttui/bundles/") == []


async def test_cancel_calls_stop_task_and_ends_cancelled(world, fargate, tmp_path):
    async with Harness(tmp_path) as h:
        test_id = await h.submit(make_request(SLEEPY_AGENT))
        orchestrator = Orchestrator(h.store, h.backend, h.settings)
        worker = asyncio.create_task(orchestrator.wait_idle())

        async def agent_started():
            return "agent started" in await h.logs(test_id)

        await wait_until(agent_started, timeout=30)
        asked = time.monotonic()
        await h.store.request_cancel(test_id)
        await asyncio.wait_for(worker, 30)
        ended = time.monotonic() - asked
        test = await h.store.get(test_id)
        logs = await h.logs(test_id)
    assert test.status is Status.CANCELLED, (test.error, logs)
    (sim,) = fargate.sims_of(test_id)
    assert sim.stop_seen.is_set()
    assert sim.task.stopped_reason == "agenttui: cancelled by request"
    assert ended < 10, ended
    assert world.s3_keys("agenttui/bundles/") == []


async def test_timeout_stops_the_task_with_a_timeout_reason(world, fargate, tmp_path):
    async with Harness(tmp_path) as h:
        test_id = await h.submit(make_request(SLEEPY_AGENT, timeout_s=10))
        await h.run_until_idle(timeout=60)
        test = await h.store.get(test_id)
        logs = await h.logs(test_id)
    assert test.status is Status.TIMED_OUT, (test.error, logs)
    (sim,) = fargate.sims_of(test_id)
    assert sim.stop_seen.is_set()
    assert sim.task.stopped_reason == "agenttui: timeout of 10 s reached"
    assert "agent started" in logs


async def test_a_task_missing_from_describe_tasks_is_an_infrastructure_failure(world, fargate, tmp_path):
    async def vanish(sim: Sim) -> None:
        await sim.start_running(pending_s=0.1)
        await sim.log("about to vanish")

        async def seen_running():  # by the shared poller, before ECS "forgets" the task
            watch = h.backend.poller.watches.get(sim.task_id)
            return watch is not None and watch.status == "RUNNING"

        await wait_until(seen_running)
        sim.vanish()

    h = Harness(tmp_path, max_attempts=2, retry_backoff_s=0.2)
    async with h:
        test_id = await h.submit(make_request())
        fargate.on(test_id, vanish, attempt=1)
        await h.run_until_idle()
        test = await h.store.get(test_id)
        logs = await h.logs(test_id)
    # Never a success on attempt 1: the missing task was retried and attempt 2 ran.
    assert test.status is Status.COMPLETED and test.attempt == 2, (test.error, logs)
    failure = next(line for line in logs if "infrastructure failure (attempt 1/2)" in line)
    assert "missing from DescribeTasks" in failure


async def test_adoption_resumes_logs_from_the_stored_token_and_keeps_lines_after_stopped(world, fargate, tmp_path):
    release = asyncio.Event()

    async def scripted(sim: Sim) -> None:
        await sim.start_running(pending_s=0.1)
        for i in range(1, 21):
            await sim.log(f"before {i}")
        await release.wait()  # the first orchestrator is dead now
        for i in range(1, 21):
            await sim.log(f"after {i}")
        env = bundle_env_of(sim)
        record = {"success": True, "response": "adopted fine", "error": None}
        await sim.log(f"@@agenttui-result {env['AGENTTUI_RESULT_NONCE']} {json.dumps(record)}")
        sim.exit(0)

    async with Harness(tmp_path, lease_s=1.0, heartbeat_s=0.2) as h:
        test_id = await h.submit(make_request())
        fargate.on(test_id, scripted)
        first = Orchestrator(h.store, h.backend, h.settings, owner_id="first")
        runner = asyncio.create_task(first.run())

        async def some_lines_stored():
            test = await h.store.get(test_id)
            return test.log_cursor and "before 20" in await h.logs(test_id)

        await wait_until(some_lines_stored, timeout=30)
        cursor_at_kill = (await h.store.get(test_id)).log_cursor
        # "Kill" the first orchestrator: its tasks die, nothing is handed over, the lease lapses.
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        await h.backend.close()
        release.set()

        # A new process: a new backend and orchestrator adopt the task.
        second_backend = EcsBackend(h.settings)
        late = [f"late {i}" for i in range(1, 6)]
        original_wait = second_backend.wait

        async def wait_then_write_late_lines(handle):
            exit_info = await original_wait(handle)  # the backend has seen STOPPED
            (sim,) = fargate.sims_of(test_id)
            await sim.log(*late)  # lines that reach CloudWatch after STOPPED
            return exit_info

        second_backend.wait = wait_then_write_late_lines  # type: ignore[method-assign]
        h.backend = second_backend
        await asyncio.sleep(1.2)  # the lease expires
        second = Orchestrator(h.store, second_backend, h.settings, owner_id="second")
        await asyncio.wait_for(second.wait_idle(), 60)
        test = await h.store.get(test_id)
        logs = await h.logs(test_id)
    assert cursor_at_kill and json.loads(cursor_at_kill)["t"], cursor_at_kill
    assert test.status is Status.COMPLETED and test.response == "adopted fine", (test.error, logs)
    assert test.lease_owner is None or test.lease_owner == "second"
    assert any("adopted by second" in line for line in logs)
    agent = [line for line in logs if line.split(" ")[0] in ("before", "after", "late")]
    expected = [f"before {i}" for i in range(1, 21)] + [f"after {i}" for i in range(1, 21)] + late
    assert agent == expected  # no duplicates, no gaps, late lines kept
    assert logs.index("late 5") < logs.index("[agenttui] COMPLETED")


async def test_a_100_kb_agent_runs_through_s3_with_small_overrides(world, fargate, tmp_path):
    # It also answers with a long, non-ASCII response: the record line is ~180 KB, which the
    # runner relays in base64 parts (log drivers split long lines) and agenttui joins again.
    code = 'def run(query):\n    return "é" * 30000 + "|" + query\n'
    filler = "# " + "x" * 98 + "\n"
    code += filler * ((99_500 - len(code)) // len(filler))  # ~100 KB, under the 100 KB limit
    assert 99_000 < len(code.encode()) < 100 * 1024
    async with Harness(tmp_path) as h:
        test_id = await h.submit(TestRequest.parse(agent_code=code, query="big"))
        await h.run_until_idle()
        test = await h.store.get(test_id)
        logs = await h.logs(test_id)
        overrides_chars = h.backend.last_overrides_chars
    assert test.status is Status.COMPLETED and test.response == "é" * 30000 + "|big", test.error
    assert not any(line.startswith("@@agenttui") for line in logs)
    (sim,) = fargate.sims_of(test_id)
    size = len(json.dumps(sim.overrides, separators=(",", ":")))
    assert size == overrides_chars and size < OVERRIDES_MAX_CHARS
    assert size < 2000  # the agent is not in there


async def test_overrides_over_the_limit_fail_before_any_aws_call(world, fargate, tmp_path, monkeypatch):
    async with Harness(tmp_path, max_attempts=1) as h:
        s3 = await h.backend.aws.client("s3")

        async def long_url(*args, **kwargs):
            return "https://example.invalid/bundle?" + "X" * 9000

        monkeypatch.setattr(s3, "generate_presigned_url", long_url)
        test_id = await h.submit(make_request())
        await h.run_until_idle()
        test = await h.store.get(test_id)
    assert test.status is Status.FAILED and test.failure_kind == FailureKind.INFRA.value
    assert "overrides would be" in test.error and "8192" in test.error
    assert world.tasks() == {}  # RunTask was never called
    assert world.s3_keys() == []  # nor was anything uploaded


async def test_requirements_that_cannot_install_are_a_build_failure(world, fargate, tmp_path):
    async def pip_fails(sim: Sim) -> None:
        await sim.start_running(pending_s=0.1)
        await sim.log("ERROR: No matching distribution found for nosuchpackage", "[agenttui-runner] pip could not "
                      "install the requirements (exit 1)")
        sim.exit(3)

    async with Harness(tmp_path) as h:
        test_id = await h.submit(make_request(requirements="nosuchpackage\n"))
        fargate.on(test_id, pip_fails)
        await h.run_until_idle()
        test = await h.store.get(test_id)
        logs = await h.logs(test_id)
    assert test.status is Status.FAILED and test.attempt == 1  # the user's requirements: not retried
    assert test.failure_kind == FailureKind.AGENT.value and "pip could not install" in test.error
    assert "ERROR: No matching distribution found for nosuchpackage" in logs


async def test_custom_dockerfile_is_refused_clearly(world, fargate, tmp_path):
    async with Harness(tmp_path) as h:
        test_id = await h.submit(make_request(dockerfile="FROM python:3.12-slim\nCMD [\"python\", \"-c\", \"1\"]\n"))
        await h.run_until_idle()
        test = await h.store.get(test_id)
    assert test.status is Status.FAILED and "custom Dockerfiles are not supported" in test.error
    assert world.tasks() == {}


async def test_container_insights_memory_reaches_the_metrics(aws_env, monkeypatch, tmp_path):
    from .conftest import FakeFargate, client, create_world

    made = create_world(aws_env, cluster_settings=[{"name": "containerInsights", "value": "enabled"}])
    for key, value in made.env().items():
        monkeypatch.setenv(key, value)
    logs = client("logs", made.url)
    group = "/aws/ecs/containerinsights/agenttui-test/performance"
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName="FargateTelemetry-1")

    async def measured(sim: Sim) -> None:
        await sim.start_running(pending_s=0.1)
        sample = {"Type": "Task", "TaskId": sim.task_id, "MemoryUtilized": 300, "CpuUtilized": 12.0}
        await asyncio.to_thread(
            logs.put_log_events, logGroupName=group, logStreamName="FargateTelemetry-1",
            logEvents=[{"timestamp": int(time.time() * 1000), "message": json.dumps(sample)}],
        )
        await sim.log("working")

        async def sampled():  # the orchestrator asks for stats once a second
            cached = h.backend.insights.samples.get(sim.task_id)
            return cached and cached[1].peak_memory_bytes

        await wait_until(sampled, timeout=30)
        sim.exit(1)

    fake = FakeFargate(made, tmp_path)
    await fake.start()
    h = Harness(tmp_path)
    try:
        async with h:
            test_id = await h.submit(make_request())
            fake.on(test_id, measured)
            await h.run_until_idle()
            test = await h.store.get(test_id)
            logs_text = await h.logs(test_id)
    finally:
        await fake.close()
    assert not fake.errors, fake.errors
    assert json.loads(test.metrics_json)["peak_memory_bytes"] == 300 * 1024 * 1024
    assert not any("Container Insights is off" in line for line in logs_text)


async def test_maintenance_stops_orphans_past_their_deadline_and_deletes_old_bundles(world, fargate, tmp_path):
    async def hang(sim: Sim) -> None:
        await sim.start_running(pending_s=0.1)
        await sim.wait_stop_requested(timeout=3600)
        sim.exit(143)

    async with Harness(tmp_path) as h:
        test_id = await h.submit(make_request(SLEEPY_AGENT, timeout_s=10))
        fargate.on(test_id, hang)
        spec_backend = h.backend
        orchestrator = Orchestrator(h.store, spec_backend, h.settings, owner_id="doomed")
        runner = asyncio.create_task(orchestrator.run())

        async def running():
            return (await h.store.get(test_id)).status is Status.RUNNING

        await wait_until(running)
        runner.cancel()  # the orchestrator dies; its task keeps running with nobody watching
        await asyncio.gather(runner, return_exceptions=True)
        assert world.s3_keys("agenttui/bundles/")  # the bundle was left behind too
        fresh = EcsBackend(h.settings)
        try:
            assert await fresh.maintain() == {"orphans_stopped": 0, "bundles_deleted": 0}
            later = time.time() + 10 + 301 + 86400
            counts = await fresh.maintain(now=later)
        finally:
            await fresh.close()
    assert counts == {"orphans_stopped": 1, "bundles_deleted": 1}
    (sim,) = fargate.sims_of(test_id)
    assert sim.task.stopped_reason == "agenttui: orphan past its deadline"
    assert world.s3_keys("agenttui/bundles/") == []
    assert BUCKET


async def test_a_run_task_error_is_an_infrastructure_failure_and_leaves_nothing(world, fargate, tmp_path):
    async with Harness(tmp_path, max_attempts=1, ecs_cluster="no-such-cluster") as h:
        test_id = await h.submit(make_request())
        await h.run_until_idle()
        test = await h.store.get(test_id)
    assert test.status is Status.FAILED and test.failure_kind == FailureKind.INFRA.value
    assert "RunTask failed" in test.error and "agenttui doctor" in test.error, test.error
    assert world.s3_keys("agenttui/bundles/") == []


async def test_a_bundle_that_cannot_be_fetched_is_infrastructure_and_its_log_is_kept(world, fargate, tmp_path):
    async def no_bundle(sim: Sim) -> None:
        await sim.start_running(pending_s=0.1)
        await sim.log("[agenttui-runner] cannot fetch or read the bundle: HTTPError: HTTP Error 403: Forbidden")
        sim.exit(4)

    async with Harness(tmp_path, max_attempts=1) as h:
        test_id = await h.submit(make_request())
        fargate.on(test_id, no_bundle)
        await h.run_until_idle()
        test = await h.store.get(test_id)
        logs = await h.logs(test_id)
    assert test.status is Status.FAILED and test.failure_kind == FailureKind.INFRA.value
    assert "could not fetch the agent bundle" in test.error
    assert any("HTTP Error 403" in line for line in logs)  # drained before the test ended
