"""Limits the engine cannot grant are bad input (issue 15): refused at submit with exit 2,
naming the flag and the maximum, through the installed command and a real Docker engine."""

from __future__ import annotations

import os
import re

import pytest

pytestmark = pytest.mark.docker


def host_memory_mb() -> int:
    meminfo = open("/proc/meminfo").read()
    return int(re.search(r"MemTotal:\s+(\d+) kB", meminfo).group(1)) // 1024


def test_limits_above_the_machine_are_refused_before_anything_is_queued(cli, write_agent):
    agent = write_agent("def run(q):\n    return q\n")
    cpus, memory_mb = os.cpu_count(), host_memory_mb()
    result = cli("submit", str(agent), "--query", "hi", "--cpus", str(cpus + 1), "--memory", str(memory_mb * 4))
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "nothing was queued" in result.stderr
    cpus_line = next(line for line in result.stderr.splitlines() if line.strip().startswith("--cpus:"))
    assert f"has {cpus};" in cpus_line and f"use at most {cpus}" in cpus_line, cpus_line
    memory_line = next(line for line in result.stderr.splitlines() if line.strip().startswith("--memory:"))
    # The engine's figure (what the kernel gives it) is within a few MB of /proc/meminfo's.
    most = int(re.search(r"use at most (\d+) MB", memory_line).group(1))
    assert abs(most - memory_mb) <= 64, memory_line
    assert "Traceback" not in result.stderr
    assert cli("queue", "--json").stdout.count('"id"') == 0  # nothing was queued
    # Within the machine's limits the same agent runs.
    ok = cli("submit", str(agent), "--query", "hi", "--cpus", str(cpus), "--memory", "256", "--egress", "none")
    assert ok.returncode == 0, ok.stderr


def test_fargate_largest_task_bounds_the_ecs_backend():
    from agenttui.packaging.aws import fargate_largest, fargate_size

    cpus, memory_mb = fargate_largest()
    assert (cpus, memory_mb) == (16.0, 122880)
    assert fargate_size(cpus, memory_mb) == (16384, 122880)  # the largest size is a valid one
