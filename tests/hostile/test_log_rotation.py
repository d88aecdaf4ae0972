"""A flood rotates the engine's log files under a reader that is behind: the end still arrives.

Found by the 1 GB flood: Docker's json-file driver keeps max-file × max-size and deletes the
rest, also what a slow reader had already delivered. The catch-up read that follows the
stream then skipped "the N frames delivered since the cursor" — newer ones, since the
delivered ones were gone — and with them the harness's result record at the very end.
Reproduced here deterministically with a tiny rotation size, against the real engine.
"""

import asyncio
import subprocess

import pytest

from agenttui.backends.docker.client import DockerEngine
from agenttui.backends.docker.logstream import LogDecoder, read_batches

from ..conftest import PROJECT_LABEL, SESSION_LABEL, TEST_BASE_IMAGE

pytestmark = pytest.mark.docker

# 200 short lines, then (after the reader has them) 5 MB that rotate them away, then the end.
PROGRAM = r"""
import os, sys, time
for i in range(200):
    sys.stdout.write("A %d\n" % i)
sys.stdout.flush()
time.sleep(2)
block = (b"x" * 16000 + b"\n") * 64
for _ in range(5):
    os.write(1, block)
os.write(1, b"THE END\n")
"""


async def read_after_rotation(container: str) -> tuple[list[str], list[str]]:
    engine = DockerEngine()
    try:
        decoder = LogDecoder(16_384)
        first: list[str] = []
        async for batch in read_batches(engine, container, decoder, follow=True):
            first += [line.text for line in batch.lines]
            if "A 199" in first:
                break  # the reader falls behind here; the container floods and exits
        async with asyncio.timeout(60):
            while (await engine.inspect(container))["State"]["Running"]:
                await asyncio.sleep(0.1)
        rest: list[str] = []
        async for batch in read_batches(engine, container, decoder.continuation(), follow=False):
            rest += [line.text for line in batch.lines]
        return first, rest
    finally:
        await engine.close()


def test_the_end_of_a_rotated_log_is_read_after_the_reader_fell_behind():
    container = subprocess.run(
        ["docker", "run", "-d", "--label", f"{PROJECT_LABEL}=1", "--label", SESSION_LABEL,
         "--log-opt", "max-size=1m", "--log-opt", "max-file=2", TEST_BASE_IMAGE, "python3", "-c", PROGRAM],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    try:
        first, rest = asyncio.run(read_after_rotation(container))
    finally:
        subprocess.run(["docker", "rm", "-f", container], capture_output=True)
    assert first == [f"A {i}" for i in range(200)]
    # The A lines were rotated away; what the engine still has is read, the end included.
    assert rest and rest[-1] == "THE END"
    assert not [text for text in rest if text.startswith("A ")]  # nothing delivered twice
    assert set(rest[:-1]) == {"x" * 16000}
