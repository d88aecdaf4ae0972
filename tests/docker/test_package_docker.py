"""A deployment package works unmodified on the real engine (R-22): its Dockerfile builds on
the test's base image and the container, given the query, prints the response the test got."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import time
import uuid
import zipfile
from pathlib import Path

import pytest

from agenttui.core.domain import ProviderConfig, Status, TestRequest
from agenttui.harness import new_nonce, parse_result_line, runner_source
from agenttui.packaging import build_package, lookup_image_id
from agenttui.core.providers import container_env
from agenttui.engine.store import Fence, Owner, Store

from ..conftest import TEST_BASE_IMAGE
from ..unit.test_packaging_build import package_record

pytestmark = pytest.mark.docker

LABEL = "agenttui.package-test"  # not `agenttui`: a concurrent suite's sweep must not take it
QUERY = "How many words are in this question, and what is its checksum?"
AGENT = '''"""Checksum agent: a deterministic stdlib agent for package tests."""
import hashlib
import os


def run(query):
    print("working on it")  # progress: goes to stderr in the package's container
    digest = hashlib.sha256(query.encode()).hexdigest()[:16]
    return "%d words, sha256 %s, model %s" % (len(query.split()), digest, os.environ.get("MODEL_ID"))
'''


def docker(*args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"docker {' '.join(args[:3])} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def harness_in_container(folder: Path, request: TestRequest) -> dict:
    """Run the test harness on the base image, as a test does: the agent's real answer."""
    (folder / "agent.py").write_text(request.agent_code)
    (folder / "agenttui_harness.py").write_text(runner_source())
    nonce = new_nonce()
    env = {**container_env(request.provider), "AGENTTUI_QUERY": request.query, "AGENTTUI_RESULT_NONCE": nonce}
    env_args = [arg for key, value in env.items() for arg in ("-e", f"{key}={value}")]
    proc = docker(
        "run", "--rm", "--label", f"{LABEL}=1", "--network", "none", "-v", f"{folder}:/agent:ro", *env_args,
        TEST_BASE_IMAGE, "python3", "/agent/agenttui_harness.py",
    )
    record = parse_result_line(proc.stdout.rstrip("\n").rsplit("\n", 1)[-1], nonce)
    assert record is not None and record["success"], proc.stdout + proc.stderr
    return record


async def finished_test(db: Path, request: TestRequest, record: dict):
    """Store the test the way the orchestrator does: submit, claim, run, complete."""
    store = await Store.open(f"sqlite+aiosqlite:///{db}")
    try:
        test = await store.submit(request, Owner.current())
        (claimed,) = await store.claim("package-test", cap=10, lease_s=60)
        fence = Fence("package-test", claimed.attempt)
        await store.transition(test.id, Status.RUNNING, fence=fence, running_at=time.time(), image=TEST_BASE_IMAGE)
        metrics = {"wall_s": 0.5, "build_s": 0.0, "exit_code": 0, "agent_run_s": record["run_s"]}
        await store.transition(
            test.id, Status.COMPLETED, fence=fence, response=record["response"], exit_code=0,
            result_json=json.dumps(record), metrics_json=json.dumps(metrics),
        )
        return await store.get(test.id)
    finally:
        await store.close()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A finished test in a real store, its package unzipped and built into an image."""
    work = tmp_path_factory.mktemp("package")
    request = TestRequest.parse(agent_code=AGENT, query=QUERY, provider=ProviderConfig(name="ollama"))
    (work / "harness").mkdir()
    record = harness_in_container(work / "harness", request)
    test = asyncio.run(finished_test(work / "store.db", request, record))
    assert test.status == Status.COMPLETED.value and test.response == record["response"]

    base_id = docker("image", "inspect", "--format", "{{.Id}}", TEST_BASE_IMAGE).stdout.strip()
    assert asyncio.run(lookup_image_id(TEST_BASE_IMAGE)) == base_id  # a local image: no digest
    assert asyncio.run(lookup_image_id("agenttui-no-such-image:never")) is None
    result = build_package(test, work / "packages", base_image=TEST_BASE_IMAGE, base_image_id=base_id)
    with zipfile.ZipFile(result.path) as archive:
        archive.extractall(work / "unzipped")
    folder = work / "unzipped" / result.top_folder
    shutil.copy(folder / ".env.example", folder / ".env")  # step 1 of the README

    image = f"agenttui-pkgtest-{uuid.uuid4().hex[:10]}:latest"
    started = time.monotonic()
    # Offline: a stdlib agent's package installs nothing, so the build needs no network.
    docker("build", "--network", "none", "--build-arg", f"BASE_IMAGE={TEST_BASE_IMAGE}",
           "--label", f"{LABEL}=1", "-t", image, str(folder))
    build_s = time.monotonic() - started
    try:
        yield dict(test=test, result=result, folder=folder, image=image, build_s=build_s, base_id=base_id)
    finally:
        docker("rmi", "-f", image, check=False)


def run_container(image: str, *args: str, options: tuple[str, ...] = (), timeout: float = 120):
    name = f"agenttui-pkgtest-{uuid.uuid4().hex[:10]}"
    try:
        return docker("run", "--rm", "--name", name, "--label", f"{LABEL}=1", *options, image, *args,
                      timeout=timeout, check=False)
    finally:
        docker("rm", "-f", name, check=False)


def test_container_prints_the_response_the_test_got(built):
    folder, test = built["folder"], built["test"]
    started = time.monotonic()
    proc = run_container(built["image"], test.query, options=("--env-file", str(folder / ".env")))
    run_s = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == test.response + "\n"
    assert "working on it" in proc.stderr  # the agent's own print went to stderr
    assert "model llama3.2" in test.response  # .env.example's MODEL_ID reached the agent
    print(f"\npackage image build {built['build_s']:.2f} s, container run {run_s:.2f} s")


def test_query_from_env_with_compose_hardening(built):
    """As docker-compose.yml runs it: init, read-only root, /tmp tmpfs, no new privileges."""
    folder, test = built["folder"], built["test"]
    options = ("--init", "--read-only", "--tmpfs", "/tmp", "--security-opt", "no-new-privileges:true",
               "--env-file", str(folder / ".env"), "-e", f"AGENT_QUERY={test.query}")
    proc = run_container(built["image"], options=options)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == test.response + "\n"


def test_image_runs_unprivileged_and_records_its_base(built):
    config = json.loads(docker("image", "inspect", "--format", "{{json .Config}}", built["image"]).stdout)
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["python3", "/app/entrypoint.py"]
    assert config["Labels"]["io.agenttui.test-id"] == str(built["test"].id)
    assert built["base_id"] in (built["folder"] / "README.md").read_text()


def test_agent_failure_exits_1_and_no_query_exits_2(built, tmp_path):
    failing = tmp_path / "failing.py"
    failing.write_text("def run(query):\n    raise ValueError('no model here')\n")
    failing.chmod(0o644)
    proc = run_container(built["image"], "q", options=("-v", f"{failing}:/app/failing.py:ro",
                                                       "-e", "AGENT_FILE=/app/failing.py"))
    assert proc.returncode == 1 and proc.stdout == ""
    assert "ValueError: no model here" in proc.stderr
    proc = run_container(built["image"])
    assert proc.returncode == 2 and "no query" in proc.stderr


@pytest.mark.parametrize("init", [False, True], ids=["pid1-forwarder", "docker-init"])
def test_docker_stop_ends_the_agent_promptly(built, tmp_path, init):
    slow = tmp_path / "slow.py"
    slow.write_text("import time\ndef run(query):\n    print('started', flush=True)\n    time.sleep(120)\n")
    slow.chmod(0o644)
    name = f"agenttui-pkgtest-{uuid.uuid4().hex[:10]}"
    options = ["--init"] if init else []
    try:
        docker("run", "-d", "--name", name, "--label", f"{LABEL}=1", *options, "-v", f"{slow}:/app/slow.py:ro",
               "-e", "AGENT_FILE=/app/slow.py", built["image"], "q")
        deadline = time.monotonic() + 30
        while "started" not in docker("logs", name, check=False).stderr and time.monotonic() < deadline:
            time.sleep(0.1)
        started = time.monotonic()
        docker("stop", "-t", "10", name)
        stop_s = time.monotonic() - started
        code = docker("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip()
        assert code == "143"
        assert stop_s < 5, f"docker stop took {stop_s:.1f} s: SIGTERM was not handled"
    finally:
        docker("rm", "-f", name, check=False)


def test_requirements_layer_installs_with_the_ca_bundle(tmp_path):
    """A package with requirements: pip runs in its own layer, trusting certs/ca-bundle.pem."""
    bundle = Path(os.environ.get("SSL_CERT_FILE") or "/etc/ssl/certs/ca-certificates.crt")
    if not bundle.is_file():
        pytest.skip(f"no CA bundle at {bundle}")
    code = "import six\n\ndef run(query):\n    return six.ensure_str(query.upper())\n"
    record = package_record("ollama", code=code, query="pinned six", requirements="six==1.17.0\n",
                            response="PINNED SIX")
    result = build_package(record, tmp_path / "out", base_image=TEST_BASE_IMAGE)
    with zipfile.ZipFile(result.path) as archive:
        archive.extractall(tmp_path / "x")
    folder = tmp_path / "x" / result.top_folder
    shutil.copy(bundle, folder / "certs" / "ca-bundle.pem")  # as certs/README.md says
    image = f"agenttui-pkgtest-{uuid.uuid4().hex[:10]}:latest"
    try:
        docker("build", "--build-arg", f"BASE_IMAGE={TEST_BASE_IMAGE}", "--label", f"{LABEL}=1", "-t", image,
               str(folder), timeout=600)
        proc = run_container(image, "pinned six")
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == "PINNED SIX\n"
    finally:
        docker("rmi", "-f", image, check=False)
