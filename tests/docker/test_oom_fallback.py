"""An OOM kill the engine's flag missed (the containerd race behind a rare flaky hostile test)
is still told as one, from the engine's event stream; a SIGKILL that was no OOM is not."""

from __future__ import annotations

import subprocess
import time

import pytest

from agenttui.backends.base import ExitInfo
from agenttui.backends.docker.backend import DockerBackend
from agenttui.core.config import load_settings

from ..conftest import PROJECT_LABEL, SESSION_LABEL, TEST_BASE_IMAGE

pytestmark = pytest.mark.docker

BOMB = "x = []\nwhile True:\n    x.append(b'x' * 10**6)\n"


def run_to_the_end(*args: str) -> str:
    container = subprocess.run(["docker", "run", "-d", "--label", SESSION_LABEL, "--label", PROJECT_LABEL, *args],
                               capture_output=True, text=True, check=True).stdout.strip()
    subprocess.run(["docker", "wait", container], capture_output=True, check=True)
    return container


async def test_a_missed_oom_flag_is_read_from_the_engines_events():
    started = time.time()
    bombed = run_to_the_end("--memory", "32m", "--memory-swap", "32m", TEST_BASE_IMAGE, "python3", "-c", BOMB)
    killed = run_to_the_end(TEST_BASE_IMAGE, "sh", "-c", "kill -9 $$")
    backend = DockerBackend(load_settings())
    try:
        # As the engine answers when its exit lands before its OOM flag.
        without_flag = ExitInfo(exit_code=137, started_at=started)
        told = await backend._missed_oom(bombed, without_flag)
        assert told.oom_killed is True and not told.reason
        told = await backend._missed_oom(killed, without_flag)
        assert told.oom_killed is False and "without a stop from agenttui" in told.reason
    finally:
        await backend.close()
        subprocess.run(["docker", "rm", "-f", bombed, killed], capture_output=True)
