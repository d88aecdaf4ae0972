"""The warm pool: containers started ahead of their tests, against the real engine."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
import uuid

import pytest

from agenttui.backends.base import RunSpec
from agenttui.backends.docker.backend import DockerBackend
from agenttui.backends.docker.pool import POOL_LABEL
from agenttui.core.config import load_settings
from agenttui.core.domain import TestRequest
from agenttui.harness import parse_result_line

from .conftest import new_spec


pytestmark = pytest.mark.docker

STORE_ID = uuid.uuid4().hex
LIMITS = {"cpus": 1, "memory_mb": 256, "pids": 100}

AGENT = """
import os
print("first output", os.environ.get("MY_SETTING"), flush=True)
def run(query):
    return "pong: " + query
"""


def spec_for(query: str, limits: dict | None = None, env: dict | None = None) -> tuple[RunSpec, str]:
    request = TestRequest.parse(agent_code=AGENT, query=query, limits=limits or LIMITS, timeout_s=60, egress="none")
    return new_spec(request, store_id=STORE_ID, env=env)


def waiting_containers(owner: str | None = None) -> list[str]:
    """Containers started ahead and not given a test yet (a used one is renamed to its test's
    name; it keeps the pool's label)."""
    label = f"{POOL_LABEL}={owner}" if owner else POOL_LABEL
    out = subprocess.run(
        ["docker", "ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.Names}}", "--filter", f"label={label}",
         "--filter", f"label=agenttui.store={STORE_ID}"],
        capture_output=True, text=True, check=True,
    ).stdout
    return [line.split()[0] for line in out.splitlines() if "-pool-" in line.split()[1]]


def inspect(handle: str) -> dict:
    out = subprocess.run(["docker", "inspect", handle], capture_output=True, text=True, check=True).stdout
    return json.loads(out)[0]


async def output_of(backend: DockerBackend, handle: str) -> list[str]:
    lines = []
    async with asyncio.timeout(60):
        async for batch in backend.logs(handle, None):
            lines += [line.text for line in batch.lines if line.stream == "stdout"]
    return lines


@pytest.fixture
async def pool_backend():
    backend = DockerBackend(load_settings(warm_pool=1))
    started: list[str] = []
    yield backend, started
    for handle in started:
        await backend.remove(handle)
    await backend.close()
    leftovers = waiting_containers(backend.pool.owner)
    if leftovers:
        subprocess.run(["docker", "rm", "-f", *leftovers], capture_output=True)


async def run_one(backend: DockerBackend, started: list[str], spec: RunSpec) -> str:
    image, _built = await backend.prepare(spec, lambda line: None)
    handle = await backend.start(spec, image)
    started.append(handle)
    return handle


async def wait_for_waiting(backend: DockerBackend) -> list[str]:
    """The containers started ahead, once they wait for a test (as the engine lists them)."""
    async with asyncio.timeout(30):
        waiting = await backend.pool.settled()
    assert sorted(waiting) == sorted(waiting_containers(backend.pool.owner))
    return waiting


async def test_a_waiting_container_serves_the_next_test_of_its_kind_once(pool_backend):
    backend, started = pool_backend
    first, _ = spec_for("cold")
    cold = await run_one(backend, started, first)
    assert backend.take_notes(first.name) == []  # the first of its kind starts cold
    (waiting,) = await wait_for_waiting(backend)
    assert waiting != cold
    assert inspect(waiting)["Config"]["Env"].count("MY_SETTING=secret-ish") == 0  # no test's env yet

    second, nonce = spec_for("warm", env={"MY_SETTING": "secret-ish"})
    handle = await run_one(backend, started, second)
    assert handle == waiting
    assert any("warm pool" in note for note in backend.take_notes(second.name))
    info = inspect(handle)
    # Found by the test's own name, as adoption after a crash looks for it, with its limits.
    assert info["Name"] == f"/{second.name}"
    assert info["HostConfig"]["Memory"] == 256 * 1024 * 1024 and info["HostConfig"]["PidsLimit"] == 100
    lines = await output_of(backend, handle)
    assert lines[0] == "first output secret-ish"  # the job's environment reached the agent
    record = parse_result_line(lines[-1], nonce)
    assert record is not None and record["response"] == "pong: warm"
    exit_info = await backend.wait(handle)
    assert exit_info.exit_code == 0
    # Its run is timed from when it got its test, not from when it was started ahead.
    assert exit_info.started_at is not None and exit_info.started_at >= time.time() - 30
    # Used once: the next tests of the kind get fresh ones; two of the kind started within
    # seconds (a burst of two), so two wait now.
    replacements = await wait_for_waiting(backend)
    assert len(replacements) == 2 and not {cold, waiting} & set(replacements)


async def test_a_test_of_another_kind_starts_cold_and_leaves_the_waiting_one(pool_backend):
    backend, started = pool_backend
    await run_one(backend, started, spec_for("kind a")[0])
    (waiting,) = await wait_for_waiting(backend)
    other, nonce = spec_for("kind b", limits={**LIMITS, "memory_mb": 300})
    handle = await run_one(backend, started, other)
    assert handle != waiting
    assert inspect(handle)["HostConfig"]["Memory"] == 300 * 1024 * 1024
    assert waiting in waiting_containers(backend.pool.owner)
    assert parse_result_line((await output_of(backend, handle))[-1], nonce)["response"] == "pong: kind b"


async def test_closing_the_backend_removes_its_waiting_containers(pool_backend):
    backend, started = pool_backend
    await run_one(backend, started, spec_for("x")[0])
    await wait_for_waiting(backend)
    await backend.close()
    assert waiting_containers(backend.pool.owner) == []


async def test_the_waiting_containers_of_a_dead_server_are_removed_by_the_next(pool_backend):
    backend, started = pool_backend
    await run_one(backend, started, spec_for("x")[0])
    (waiting,) = await wait_for_waiting(backend)
    # Its server dies: the kernel releases the pool's lock file, nothing else happens.
    os.close(backend.pool._lock_fd)
    backend.pool._lock_fd = None
    backend.pool._ready.clear()
    successor = DockerBackend(load_settings(warm_pool=1))
    try:
        await successor.start_up()
        assert waiting not in waiting_containers()
    finally:
        await successor.close()


def test_the_server_starts_the_next_test_in_a_waiting_container(cli, write_agent, monkeypatch):
    """Through the real CLI and personal server: the second test of a kind is warm, its log
    says so, and its wall time counts from when it got the container, not from before."""
    monkeypatch.setenv("AGENTTUI_WARM_POOL", "1")
    agent = write_agent(AGENT)
    first = cli("submit", str(agent), "--query", "one", "--json")
    assert first.returncode == 0, first.stderr
    time.sleep(3)  # the replacement waits a while before the next test comes
    second = cli("submit", str(agent), "--query", "two", "--json")
    assert second.returncode == 0, second.stderr
    record = json.loads(second.stdout)
    assert record["status"] == "COMPLETED" and record["response"] == "pong: two"
    log = cli("logs", str(record["id"]))
    assert "container started ahead of the test (warm pool" in log.stdout
    assert record["metrics"]["wall_s"] < 2.5
    assert "started ahead" not in cli("logs", str(json.loads(first.stdout)["id"])).stdout
