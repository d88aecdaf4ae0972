"""How many containers the warm pool keeps waiting per kind (no engine needed)."""

from agenttui.backends.docker import pool as docker_pool
from agenttui.backends.docker.backend import DockerBackend
from agenttui.core.config import load_settings


def test_after_a_burst_as_many_wait_as_it_had_then_back_to_the_base_when_it_is_old(monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(docker_pool.time, "monotonic", lambda: clock[0])
    pool = DockerBackend(load_settings(warm_pool=1, warm_pool_max=6, warm_pool_idle_s=60, max_concurrent=10)).pool
    assert pool.target("k") == 1  # nothing seen yet: the base
    for _ in range(8):  # eight tests of the kind within a second
        pool._note_demand("k")
        clock[0] += 0.1
    assert pool.target("k") == 6  # the burst, up to warm_pool_max
    assert pool.target("other") == 1  # per kind
    clock[0] += 30  # a single test later does not shrink what the burst asked for
    pool._note_demand("k")
    assert pool.target("k") == 6
    clock[0] += 61  # the burst is older than warm_pool_idle_s
    assert pool.target("k") == 1


def test_the_burst_size_never_exceeds_the_global_cap():
    pool = DockerBackend(load_settings(warm_pool=2, warm_pool_max=50, max_concurrent=4)).pool
    for _ in range(20):
        pool._note_demand("k")
    assert pool.target("k") == 4


def test_warm_pool_zero_pools_nothing_whatever_the_bursts():
    from agenttui.backends.base import RunSpec
    from agenttui.core.domain import TestRequest

    request = TestRequest.parse(agent_code="def run(q): return q", query="q", egress="none")
    spec = RunSpec(test_id=1, attempt=1, store_id="s" * 32, request=request, env={})
    pool = DockerBackend(load_settings(warm_pool=0, warm_pool_max=10)).pool
    assert pool.kind(spec, "agenttui-base:bookworm") is None
    assert DockerBackend(load_settings(warm_pool=1)).pool.kind(spec, "agenttui-base:bookworm") is not None
