"""Issue 14, point 9: a custom `--dockerfile` test runs like the generated images do: as an
unprivileged user, on a read-only root, with a size-capped /tmp as the only place to write."""

from __future__ import annotations

import asyncio
import errno
import json
import subprocess
import uuid

import pytest

from agenttui.backends.base import BuildError
from agenttui.backends.docker.backend import DockerBackend
from agenttui.core.config import load_settings
from agenttui.core.domain import TestRequest
from agenttui.harness import parse_result_line

from .conftest import new_spec

pytestmark = pytest.mark.docker

STORE_ID = uuid.uuid4().hex
SCRATCH_MB = 16

# Reports who it runs as and where it could write: every folder of the image, its home, and
# /tmp until it is full.
AGENT = """
import json, os
def run(query):
    report = {"uid": os.getuid()}
    for folder in ("/", "/app", "/etc", "/usr/local/lib", "/var/tmp", os.path.expanduser("~")):
        try:
            with open(os.path.join(folder, "written-by-the-agent"), "w") as handle:
                handle.write("x")
            report[folder] = "written"
        except OSError as exc:
            report[folder] = exc.errno
    written = 0
    try:
        with open("/tmp/fill", "wb", buffering=0) as handle:
            while written < 64 << 20:
                written += handle.write(bytes(1 << 20))
    except OSError as exc:
        report["/tmp"] = exc.errno
    report["tmp MB"] = written >> 20
    return json.dumps(report)
"""

DOCKERFILE = """
FROM {base}
{extra}
COPY agent.py agenttui_harness.py /app/
ENV AGENTTUI_AGENT_PATH=/app/agent.py
CMD ["python3", "/app/agenttui_harness.py"]
"""


@pytest.fixture
async def backend():
    backend = DockerBackend(load_settings(scratch_mb=SCRATCH_MB))
    yield backend
    await backend.close()
    ids = subprocess.run(["docker", "ps", "-aq", "--filter", f"label=agenttui.store={STORE_ID}"],
                         capture_output=True, text=True).stdout.split()
    if ids:
        subprocess.run(["docker", "rm", "-f", *ids], capture_output=True)


async def run_custom(backend: DockerBackend, extra: str) -> tuple[dict, dict]:
    """The agent's report and the container's inspect record, for an image with `extra` lines."""
    dockerfile = DOCKERFILE.format(base=load_settings().base_image, extra=extra)
    request = TestRequest.parse(agent_code=AGENT, query="q", dockerfile=dockerfile, timeout_s=60,
                                limits={"cpus": 1, "memory_mb": 256, "pids": 100})
    spec, nonce = new_spec(request, store_id=STORE_ID)
    image, _built = await backend.prepare(spec, lambda line: None)
    handle = await backend.start(spec, image)
    try:
        stdout = []
        async with asyncio.timeout(60):
            async for batch in backend.logs(handle, None):
                stdout += [line.text for line in batch.lines if line.stream == "stdout"]
        info = json.loads(subprocess.run(["docker", "inspect", handle], capture_output=True, text=True,
                                         check=True).stdout)[0]
    finally:
        await backend.remove(handle)
    record = parse_result_line(stdout[-1], nonce)
    assert record is not None and record["success"], stdout[-5:]
    return json.loads(record["response"]), info


def assert_confined(report: dict, info: dict) -> None:
    for folder, outcome in report.items():
        if folder.startswith("/") and folder != "/tmp":
            assert outcome in (errno.EROFS, errno.EACCES, errno.ENOENT), (folder, report)
    assert report["/tmp"] == errno.ENOSPC and report["tmp MB"] <= SCRATCH_MB, report
    host = info["HostConfig"]
    assert host["ReadonlyRootfs"] is True and host["Privileged"] is False
    assert host["Tmpfs"]["/tmp"].endswith(f"size={SCRATCH_MB}m,mode=1777")


@pytest.mark.parametrize("extra", ["", "USER root"])
async def test_an_image_that_would_run_as_root_runs_as_nobody_on_a_read_only_root(backend, extra):
    report, info = await run_custom(backend, extra)
    assert report["uid"] == 65534, report
    assert_confined(report, info)


async def test_an_image_s_own_unprivileged_user_is_kept(backend):
    report, info = await run_custom(backend, "RUN echo 'app:x:4321:4321::/home/app:/bin/sh' >> /etc/passwd\nUSER app")
    assert report["uid"] == 4321, report
    assert_confined(report, info)


async def test_an_image_whose_user_is_root_by_another_name_is_refused(backend):
    with pytest.raises(BuildError, match="USER toor is root"):
        await run_custom(backend, "RUN echo 'toor:x:0:0::/root:/bin/sh' >> /etc/passwd\nUSER toor")
