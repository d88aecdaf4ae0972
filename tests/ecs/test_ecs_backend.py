"""The backend on its own against moto: a process that died between RunTask and storing the
task id leaves only the deterministic name; another process must still find and stop the task."""

from __future__ import annotations

from agenttui.backends.base import RunSpec
from agenttui.backends.ecs.backend import EcsBackend
from agenttui.core.config import load_settings
from agenttui.core.domain import TestRequest

from .conftest import Sim


async def test_a_task_known_only_by_its_deterministic_name_is_found_and_stopped(world, fargate):
    async def hang(sim: Sim) -> None:
        await sim.start_running(pending_s=0.05)
        await sim.wait_stop_requested(timeout=60)
        sim.exit(143)

    fargate.on(7, hang)
    request = TestRequest.parse(agent_code="def run(q):\n    return q\n", query="q", timeout_s=300)
    spec = RunSpec(test_id=7, attempt=2, store_id="f" * 32, request=request, env={"AGENTTUI_QUERY": "q"})
    settings = load_settings()
    first = EcsBackend(settings)
    try:
        task_id = await first.start(spec, "runner")
    finally:
        await first.close()  # the process "dies" before the task id reaches the store

    adopter = EcsBackend(settings)
    try:
        state = await adopter.inspect(spec.name)  # all the store knows is the name
        assert state is not None and state.running
        await adopter.stop(spec.name, 1.0)
        exit_info = await adopter.wait(spec.name)
        await adopter.remove(spec.name)
    finally:
        await adopter.close()
    (sim,) = fargate.sims_of(7)
    assert sim.task_id == task_id and sim.tags["agenttui.attempt"] == "2"
    assert sim.task.stopped_reason == "agenttui: cancelled by request"  # well before its deadline
    assert exit_info.exit_code is not None or exit_info.reason
    assert world.s3_keys("agenttui/bundles/") == []  # found through the task's bundle tag
