"""The Docker backend against the real engine and the agenttui-base:bookworm image."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
import uuid
from dataclasses import dataclass

import pytest

from agenttui.backends.base import BuildError, InfraError, LogLine, RunSpec
from agenttui.backends.docker.backend import DockerBackend
from agenttui.core.config import load_settings
from agenttui.core.domain import TestRequest
from agenttui.harness import parse_result_line

from .conftest import TEST_IDS, new_spec

pytestmark = pytest.mark.docker

STORE_ID = uuid.uuid4().hex  # one per session: names and labels never collide with others'
SIX = "six==1.16.0"


@dataclass
class Started:
    spec: RunSpec
    handle: str
    nonce: str


@pytest.fixture
async def backend():
    backend = DockerBackend(load_settings())
    yield backend
    await backend.close()


def _sweep(store_id: str) -> None:
    """Remove anything a failed test left (the suite also fails on leaks)."""
    ids = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label=agenttui.store={store_id}"],
        capture_output=True,
        text=True,
    ).stdout.split()
    if ids:
        subprocess.run(["docker", "rm", "-f", *ids], capture_output=True)


@pytest.fixture
async def launch(backend):
    """Prepare + start an agent; every container started here is removed afterwards."""
    handles: list[str] = []

    async def _launch(
        code: str,
        *,
        query: str = "hello",
        requirements: str = "",
        dockerfile: str = "",
        limits: dict | None = None,
        on_log=None,
        using: DockerBackend | None = None,
    ) -> Started:
        chosen = using or backend
        request = TestRequest.parse(
            agent_code=code,
            query=query,
            requirements=requirements,
            dockerfile=dockerfile,
            limits=limits or {"cpus": 1, "memory_mb": 256, "pids": 100},
            timeout_s=60,
        )
        spec, nonce = new_spec(request, store_id=STORE_ID)
        image, _built = await chosen.prepare(spec, on_log or (lambda line: None))
        handle = await chosen.start(spec, image)
        handles.append(handle)
        return Started(spec, handle, nonce)

    try:
        yield _launch
    finally:
        for handle in handles:
            await backend.remove(handle)
        _sweep(STORE_ID)


async def read_all(backend, handle, cursor=None, timeout=30.0):
    lines: list[LogLine] = []
    cursors: list[tuple[int, str]] = []
    async with asyncio.timeout(timeout):
        async for batch in backend.logs(handle, cursor):
            assert batch.lines
            lines.extend(batch.lines)
            cursors.append((len(lines), batch.cursor))
    return lines, cursors


def record_of(lines: list[LogLine], nonce: str) -> dict:
    stdout = [line.text for line in lines if line.stream == "stdout"]
    assert stdout, "no stdout at all"
    record = parse_result_line(stdout[-1], nonce)
    assert record is not None, f"last stdout line is not the record: {stdout[-3:]}"
    return record


def docker_inspect(handle: str) -> dict:
    import json

    out = subprocess.run(["docker", "inspect", handle], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)[0]


STDLIB_AGENT = """
import os, socket, sys
print("uid", os.getuid(), "home", os.environ["HOME"], "cwd", os.getcwd())
print("to stderr", file=sys.stderr)
def run(query):
    try:
        open("/etc/agenttui-test", "w")
        root = "writable"
    except OSError:
        root = "read-only"
    with open("/tmp/scratch", "w") as handle:
        handle.write("ok")
    host = socket.gethostbyname("host.docker.internal")
    return f"{query.upper()} root={root} host={host}"
"""


async def test_stdlib_agent_runs_without_build(backend, launch):
    build_lines: list[str] = []
    started_at = time.monotonic()
    run = await launch(STDLIB_AGENT, query="ping", on_log=build_lines.append)
    assert build_lines == []  # no build happened
    lines, _ = await read_all(backend, run.handle)
    first_line_s = time.monotonic() - started_at
    exit_info = await backend.wait(run.handle)
    assert exit_info.exit_code == 0, [line.text for line in lines]
    assert exit_info.oom_killed is False
    assert exit_info.started_at and exit_info.finished_at >= exit_info.started_at
    record = record_of(lines, run.nonce)
    assert record["success"] is True
    assert record["response"].startswith("PING root=read-only host=")
    assert record["peak_memory_bytes"] > 0 and record["cpu_s"] > 0
    texts = [(line.stream, line.text) for line in lines]
    assert ("stdout", "uid 65534 home /tmp cwd /tmp") in texts
    assert ("stderr", "to stderr") in texts
    assert ("stderr", "[agenttui] loading agent.py") in texts
    assert all(line.ts > 1e9 for line in lines)
    assert first_line_s < 10


async def test_prepare_without_requirements_reuses_base_image(backend):
    request = TestRequest.parse(agent_code="def run(q): return q", query="q", requirements="# none\n")
    spec = RunSpec(test_id=0, attempt=1, store_id=STORE_ID, request=request, env={})
    image, built = await backend.prepare(spec, lambda line: None)
    assert (image, built) == (os.environ.get("AGENTTUI_TEST_BASE_IMAGE", "agenttui-base:bookworm"), False)


async def test_limits_and_hardening_are_applied(backend, launch):
    run = await launch(
        "def run(q):\n    return 'ok'\n", limits={"cpus": 0.5, "memory_mb": 128, "pids": 77}
    )
    await backend.wait(run.handle)
    info = docker_inspect(run.handle)
    host = info["HostConfig"]
    assert host["NanoCpus"] == 500_000_000
    assert host["Memory"] == 128 * 1024 * 1024 == host["MemorySwap"]
    assert host["PidsLimit"] == 77
    assert host["ReadonlyRootfs"] is True
    assert host["Privileged"] is False
    assert host["Init"] is True
    assert host["CapDrop"] == ["ALL"]
    assert any("no-new-privileges" in opt for opt in host["SecurityOpt"])
    assert host["Tmpfs"]["/tmp"].startswith("rw,nosuid,nodev,size=")
    assert host["LogConfig"]["Type"] == "json-file" and "max-size" in host["LogConfig"]["Config"]
    # The suite's default egress is none (tests/conftest.py): no network at all (issue 8).
    assert host["NetworkMode"] == "none" and "host.docker.internal:127.0.0.1" in host["ExtraHosts"]
    assert info["Config"]["User"] == "65534:65534"
    labels = info["Config"]["Labels"]
    assert labels["agenttui"] == "1" and labels["agenttui.store"] == STORE_ID
    for key, value in load_settings().extra_labels.items():  # the suite's session label
        assert labels[key] == value
    assert labels["agenttui.test_id"] == str(run.spec.test_id)
    assert labels["agenttui.attempt"] == "1"
    assert info["Name"] == "/" + run.spec.name
    mount = info["Mounts"][0]
    assert (mount["Destination"], mount["RW"]) == ("/agenttui", False)


async def test_requirements_image_is_built_once_and_reused(backend, launch):
    agent = "import six\ndef run(q):\n    return six.__version__\n"
    request = TestRequest.parse(agent_code=agent, query="v", requirements=f"{SIX}\n")
    spec = RunSpec(test_id=0, attempt=1, store_id=STORE_ID, request=request, env={})
    logs: list[str] = []
    results = await asyncio.gather(
        backend.prepare(spec, logs.append), backend.prepare(spec, logs.append)
    )
    if not any(built for _tag, built in results):  # left by an earlier run: build it afresh
        subprocess.run(["docker", "rmi", "-f", results[0][0]], capture_output=True, check=True)
        logs.clear()
        started = time.monotonic()
        results = await asyncio.gather(
            backend.prepare(spec, logs.append), backend.prepare(spec, logs.append)
        )
        print(f"\nbuild of {SIX}: {time.monotonic() - started:.1f} s")
    tags = {tag for tag, _built in results}
    assert len(tags) == 1 and next(iter(tags)).startswith("agenttui-env:")
    assert sorted(built for _tag, built in results) == [False, True]  # concurrent: one build
    assert any("Successfully installed six-1.16.0" in line for line in logs), logs[-10:]
    # Equivalent requirements (comments, case, order) map to the same image.
    same = request.replace(requirements=f"# pinned\nSix==1.16.0\n")
    tag, built = await backend.prepare(
        RunSpec(test_id=0, attempt=1, store_id=STORE_ID, request=same, env={}), logs.append
    )
    assert (tag, built) == (results[0][0], False)
    run = await launch(agent, requirements=SIX)
    lines, _ = await read_all(backend, run.handle)
    assert record_of(lines, run.nonce)["response"] == "1.16.0"


async def test_bad_requirement_is_a_build_error(backend):
    request = TestRequest.parse(
        agent_code="def run(q): return q",
        query="q",
        requirements="this-package-does-not-exist-agenttui==9.9\n",
    )
    spec = RunSpec(test_id=0, attempt=1, store_id=STORE_ID, request=request, env={})
    with pytest.raises(BuildError) as caught:
        await backend.prepare(spec, lambda line: None)
    assert "this-package-does-not-exist-agenttui" in str(caught.value)
    assert "No matching distribution" in caught.value.log


CUSTOM_DOCKERFILE = """
FROM {base}
COPY agent.py agenttui_harness.py /app/
ENV AGENTTUI_AGENT_PATH=/app/agent.py
CMD ["python3", "/app/agenttui_harness.py"]
"""


async def test_custom_dockerfile_runs_its_own_command(backend, launch):
    base = load_settings().base_image
    run = await launch(
        "def run(q):\n    return 'custom ' + q\n",
        query="q",
        dockerfile=CUSTOM_DOCKERFILE.format(base=base),
    )
    lines, _ = await read_all(backend, run.handle)
    assert record_of(lines, run.nonce)["response"] == "custom q"
    info = docker_inspect(run.handle)
    assert info["HostConfig"]["ReadonlyRootfs"] is True
    assert info["HostConfig"]["Privileged"] is False
    assert info["Config"]["Image"].startswith("agenttui-custom:")


async def test_failing_custom_dockerfile_is_a_build_error(backend):
    base = load_settings().base_image
    request = TestRequest.parse(
        agent_code="def run(q): return q",
        query="q",
        dockerfile=f"FROM {base}\nRUN echo about to fail {uuid.uuid4().hex} && exit 3\n",
    )
    spec = RunSpec(test_id=0, attempt=1, store_id=STORE_ID, request=request, env={})
    with pytest.raises(BuildError) as caught:
        await backend.prepare(spec, lambda line: None)
    assert "returned a non-zero code: 3" in str(caught.value)
    assert "about to fail" in caught.value.log


async def test_a_container_that_cannot_start_is_not_left_behind(backend):
    base = load_settings().base_image
    request = TestRequest.parse(
        agent_code="def run(q): return q",
        query="q",
        dockerfile=f"FROM {base}\nUSER no-such-user\n",
    )
    spec = RunSpec(test_id=next(TEST_IDS), attempt=1, store_id=STORE_ID, request=request, env={})
    image, _built = await backend.prepare(spec, lambda line: None)
    try:
        with pytest.raises(BuildError, match="unable to find user no-such-user"):
            await backend.start(spec, image)
        assert await backend.inspect(spec.name) is None  # created, failed, removed
        assert not (load_settings().staging_dir / spec.name).exists()
    finally:
        _sweep(STORE_ID)


MEMORY_HOG = """
import time
def run(query):
    held = [b"\\x01" * (8 << 20) for _ in range(4)]  # 32 MB, touched
    print("holding", flush=True)
    time.sleep(0.5)
    while True:  # then creep up to the 64 MB limit
        held.append(b"\\x01" * (2 << 20))
        time.sleep(0.03)
"""


async def test_memory_hog_is_oom_killed_and_its_peak_seen(backend, launch):
    limit = 64 * 2**20
    run = await launch(MEMORY_HOG, limits={"cpus": 1, "memory_mb": 64, "pids": 100})
    async with asyncio.timeout(20):
        async for batch in backend.logs(run.handle, None):
            if any(line.text == "holding" for line in batch.lines):
                break
        readings = []
        while (stats := await backend.stats(run.handle)) is not None:
            readings.append(stats)
            await asyncio.sleep(0.05)
    assert readings, "no stats while it ran"
    assert readings[0].memory_bytes > 30 * 2**20 and readings[0].cpu_s > 0
    peak = readings[-1].peak_memory_bytes
    assert 0.8 * limit <= peak <= limit * 1.02, (peak, [r.peak_memory_bytes for r in readings])
    exit_info = await backend.wait(run.handle)
    assert exit_info.exit_code == 137
    assert exit_info.oom_killed is True, exit_info


async def test_stats_through_the_engine_api(backend, launch, monkeypatch):
    """Where the host cannot read the container's cgroup (remote engine), the API answers."""
    import agenttui.backends.docker.stats as docker_module

    monkeypatch.setattr(docker_module, "_host_cgroup_stats", lambda pid, container_id: None)
    run = await launch("import time\ndef run(q):\n    time.sleep(3)\n")
    stats = await backend.stats(run.handle)
    assert stats is not None and stats.memory_bytes > 0 and stats.cpu_s > 0
    assert stats.peak_memory_bytes >= stats.memory_bytes  # cgroup v1 engine: a true peak
    await backend.stop(run.handle, grace_s=0)


FORK_BOMB = """
import os, time
def run(query):
    children, failures = [], 0
    for _ in range(200):
        try:
            pid = os.fork()
        except OSError:
            failures += 1
            continue
        if pid == 0:  # every child tries to multiply too
            for _ in range(5):
                try:
                    os.fork()
                except OSError:
                    pass
            time.sleep(1)
            os._exit(0)
        children.append(pid)
    for pid in children:
        os.waitpid(pid, 0)
    return f"children={len(children)} failures={failures}"
"""


async def test_fork_bomb_is_contained_by_the_pids_limit(backend, launch):
    run = await launch(FORK_BOMB, limits={"cpus": 1, "memory_mb": 256, "pids": 64})
    lines, _ = await read_all(backend, run.handle, timeout=30)
    exit_info = await backend.wait(run.handle)
    assert exit_info.exit_code == 0
    response = record_of(lines, run.nonce)["response"]
    children, failures = (int(part.split("=")[1]) for part in response.split())
    assert children < 64 and failures > 0, response
    assert subprocess.run(["true"]).returncode == 0  # the host can still fork


async def test_stop_kills_an_agent_ignoring_sigterm_within_grace(backend, launch):
    run = await launch(
        "import signal, time\n"
        "def run(q):\n"
        "    signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "    print('ready', flush=True)\n"
        "    time.sleep(60)\n"
    )
    async with asyncio.timeout(20):
        async for batch in backend.logs(run.handle, None):
            if any(line.text == "ready" for line in batch.lines):
                break
    started = time.monotonic()
    await backend.stop(run.handle, grace_s=1.0)
    exit_info = await backend.wait(run.handle)
    elapsed = time.monotonic() - started
    assert elapsed <= 2.0, elapsed
    assert exit_info.exit_code == 137
    await backend.stop(run.handle, grace_s=1.0)  # stopping a stopped one is fine


async def test_stop_lets_a_cooperative_agent_report(backend, launch):
    run = await launch("import time\ndef run(q):\n    print('ready', flush=True)\n    time.sleep(60)\n")
    async with asyncio.timeout(20):
        async for batch in backend.logs(run.handle, None):
            if any(line.text == "ready" for line in batch.lines):
                break
    started = time.monotonic()
    await backend.stop(run.handle, grace_s=5.0)
    assert time.monotonic() - started < 2.0
    exit_info = await backend.wait(run.handle)
    assert exit_info.exit_code == 143
    lines, _ = await read_all(backend, run.handle)
    assert record_of(lines, run.nonce)["error_type"] == "Terminated"


async def test_remove_makes_it_gone(backend, launch):
    run = await launch("def run(q):\n    return q\n")
    await backend.wait(run.handle)
    state = await backend.inspect(run.handle)
    assert state is not None and state.running is False, (state, docker_inspect(run.handle)["State"])
    assert state.exit is not None and state.exit.exit_code == 0, (state, docker_inspect(run.handle)["State"])
    staging = load_settings().staging_dir / run.spec.name
    assert (staging / "agent.py").is_file()
    await backend.remove(run.handle)
    assert await backend.inspect(run.handle) is None
    assert not staging.exists()
    await backend.remove(run.handle)  # removing a removed one is fine
    await backend.stop(run.handle, grace_s=0)
    assert await backend.stats(run.handle) is None
    assert (await backend.wait(run.handle)).exit_code is None
    assert [batch async for batch in backend.logs(run.handle, None)] == []


async def test_start_reuses_its_own_container_after_a_crash(backend, launch):
    run = await launch("import time\ndef run(q):\n    time.sleep(0.5)\n    return q\n")
    # A restarted orchestrator starts the same attempt again: same container, no error.
    again = await backend.start(run.spec, load_settings().base_image)
    assert again == run.handle
    await backend.wait(run.handle)


async def test_check_against_an_unreachable_engine(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent.sock")
    backend = DockerBackend(load_settings())
    try:
        with pytest.raises(InfraError) as caught:
            await backend.check()
        message = str(caught.value)
        assert "Docker engine is not reachable at unix:///nonexistent.sock" in message
        assert "systemctl start docker" in message and "DOCKER_HOST" in message
        request = TestRequest.parse(agent_code="def run(q): return q", query="q")
        spec = RunSpec(test_id=0, attempt=1, store_id=STORE_ID, request=request, env={})
        with pytest.raises(InfraError, match="not reachable"):
            await backend.prepare(spec, lambda line: None)
        with pytest.raises(InfraError, match="not reachable"):
            await backend.inspect("abc")
    finally:
        await backend.close()


async def test_check_passes_on_the_real_engine(backend):
    await backend.check()


NUMBERED = """
import sys, time
def run(query):
    for n in range(1, 5001):
        stream = sys.stderr if n % 5 == 0 else sys.stdout
        print(f"line {n:05d}", file=stream)
        if n == 2500:
            print("L" * 40000)  # several 16 KiB frames sharing one timestamp
        if n % 250 == 0:
            time.sleep(0.02)
    return "done"
"""


async def test_logs_resume_exactly_mid_stream(backend, launch):
    run = await launch(NUMBERED)
    first: list[LogLine] = []
    stream = backend.logs(run.handle, None)
    async with asyncio.timeout(30):
        async for batch in stream:
            first.extend(batch.lines)
            cursor = batch.cursor
            if len([l for l in first if l.text.startswith("line ")]) >= 1500:
                break
    await stream.aclose()
    assert (await backend.inspect(run.handle)).running, "resume should happen mid-stream"
    rest, _ = await read_all(backend, run.handle, cursor)

    def numbered(lines):
        return [l.text for l in lines if l.text.startswith("line ")]

    expected = [f"line {n:05d}" for n in range(1, 5001)]
    combined = first + rest
    assert sorted(numbered(combined)) == expected  # nothing twice, nothing missing
    for name, wanted in (("stdout", lambda n: n % 5), ("stderr", lambda n: not n % 5)):
        got = [l.text for l in combined if l.stream == name and l.text.startswith("line ")]
        assert got == [f"line {n:05d}" for n in range(1, 5001) if wanted(n)]
    long_lines = [l.text for l in combined if l.text.startswith("LLLL")]
    assert long_lines == ["L" * 16384 + " …[line truncated: 23616 bytes]"]

    # From the finished container: every batch's cursor resumes to exactly the remainder.
    full, cursors = await read_all(backend, run.handle)
    assert [(l.stream, l.text) for l in full] == [(l.stream, l.text) for l in combined]
    for position, batch_cursor in cursors[:: max(1, len(cursors) // 8)]:
        remainder, _ = await read_all(backend, run.handle, batch_cursor)
        assert sorted((l.stream, l.text) for l in remainder) == sorted(
            (l.stream, l.text) for l in full[position:]
        ), position


async def test_the_log_stream_comes_whole_not_a_chunk_per_line(backend, launch):
    """The log is asked for over HTTP/1.0: the engine sends the stream as it is, where over
    HTTP/1.1 each line is an HTTP chunk of its own that the client takes apart one by one;
    a container that is gone has no stream (None), not an error."""
    run = await launch(NUMBERED)
    response = await backend.engine.open_logs(run.handle, {"stdout": "1", "stderr": "1", "follow": "1"}, "read")
    assert response is not None
    try:
        assert response.version == (1, 0) and "chunked" not in response.headers.get("Transfer-Encoding", "")
        async with asyncio.timeout(60):
            assert len(await response.read()) > 5000 * 8  # every frame of the numbered lines, to the exit
    finally:
        response.close()
    assert await backend.engine.open_logs("agenttui-no-such-container", {"stdout": "1"}, "read") is None


async def test_huge_line_and_invalid_utf8(monkeypatch, launch):
    small = DockerBackend(load_settings(log_max_line=1000))
    try:
        run = await launch(
            "import os, sys\n"
            "def run(q):\n"
            "    sys.stdout.buffer.write(b'bad \\xff\\xfe bytes\\n')\n"
            "    sys.stdout.buffer.write(b'A' * 1_000_000)\n"
            "    sys.stdout.flush()\n"
            "    os._exit(0)\n",
            using=small,
        )
        lines, _ = await read_all(small, run.handle)
        texts = [l.text for l in lines if l.stream == "stdout"]
        assert "bad \ufffd\ufffd bytes" in texts
        assert texts[-1] == "A" * 1000 + " …[line truncated: 999000 bytes]"
    finally:
        await small.close()
