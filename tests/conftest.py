"""Fixtures shared by the whole suite.

Every test gets isolated XDG directories (so no real config, store or socket is touched).
Docker tests run against the real engine: in CI (CI=true) a missing engine fails the suite;
on a laptop without one they skip with the reason.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
TEST_BASE_IMAGE = os.environ.get("AGENTTUI_TEST_BASE_IMAGE", "agenttui-base:bookworm")
PROJECT_LABEL = "agenttui"
# Every container this test session creates carries this label, so the leak check never
# touches containers of another session sharing the engine (pytest-xdist's workers inherit the
# controller's environment, so they share its session).
SESSION_LABEL = f"agenttui.test-session={os.environ.setdefault('PYTEST_AGENTTUI_SESSION', uuid.uuid4().hex[:12])}"


def _docker_problem() -> str | None:
    """None when the engine answers and the base image exists, else why not."""
    if not shutil.which("docker"):
        return "the docker CLI is not installed (run scripts/dev-docker.sh)"
    probe = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        return "no Docker engine answers (run scripts/dev-docker.sh)"
    image = subprocess.run(
        ["docker", "image", "inspect", TEST_BASE_IMAGE], capture_output=True, timeout=30
    )
    if image.returncode != 0:
        return f"base image {TEST_BASE_IMAGE} is missing (run scripts/dev-docker.sh)"
    return None


_DOCKER_PROBLEM: list[str | None] = []


def docker_problem() -> str | None:
    if not _DOCKER_PROBLEM:
        _DOCKER_PROBLEM.append(_docker_problem())
    return _DOCKER_PROBLEM[0]


def pytest_collection_modifyitems(config, items):
    if not any("docker" in item.keywords for item in items):
        return
    problem = docker_problem()
    if problem is None:
        return
    for item in items:
        if "docker" in item.keywords:
            if IN_CI:
                # A suite that silently skips Docker in CI is a failing suite.
                item.add_marker(pytest.mark.usefixtures("_docker_required_in_ci"))
            else:
                item.add_marker(pytest.mark.skip(reason=problem))


@pytest.fixture
def _docker_required_in_ci():
    pytest.fail(f"CI=true but Docker is unusable: {docker_problem()}")


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    """Point every XDG directory into tmp_path and clear AGENTTUI_* from the caller's env."""
    for key in list(os.environ):
        if key.startswith("AGENTTUI_") and key not in ("AGENTTUI_TEST_BASE_IMAGE",):
            monkeypatch.delenv(key)
    home = tmp_path / "home"
    for var, sub in (
        ("XDG_CONFIG_HOME", "config"),
        ("XDG_DATA_HOME", "data"),
        ("XDG_STATE_HOME", "state"),
        ("XDG_CACHE_HOME", "cache"),
    ):
        path = home / sub
        path.mkdir(parents=True, exist_ok=True)
        monkeypatch.setenv(var, str(path))
    # Unix socket paths are limited to 107 bytes: keep the runtime dir short.
    runtime = Path(tempfile.mkdtemp(prefix="at-", dir="/tmp"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    monkeypatch.setenv("AGENTTUI_BASE_IMAGE", TEST_BASE_IMAGE)
    # No extra_ca_bundle: builds behind this machine's TLS proxy trust what the host's pip trusts.
    # Short leases and polls keep fault tests quick.
    monkeypatch.setenv("AGENTTUI_LEASE_S", "4")
    monkeypatch.setenv("AGENTTUI_HEARTBEAT_S", "0.5")
    monkeypatch.setenv("AGENTTUI_POLL_S", "0.1")
    monkeypatch.setenv("AGENTTUI_RETRY_BACKOFF_S", "0.2")
    # Tests run agents that call no model: no network unless a test asks for a policy itself
    # (the default, provider-only, would check the provider's endpoint before every test).
    monkeypatch.setenv("AGENTTUI_DEFAULT_EGRESS", "none")
    # No containers started ahead, except in the warm pool's own tests: many tests SIGKILL
    # servers on purpose, and a killed server's waiting containers live until the next
    # server starts (or their idle timeout), past the leak check at the end of the suite.
    monkeypatch.setenv("AGENTTUI_WARM_POOL", "0")
    key, value = SESSION_LABEL.split("=")
    monkeypatch.setenv("AGENTTUI_EXTRA_LABELS", json.dumps({key: value}))
    yield home
    stop_personal_server(runtime)
    shutil.rmtree(runtime, ignore_errors=True)


def stop_personal_server(runtime: Path, timeout: float = 15) -> None:
    """A test's personal server (auto-started by the CLI) must not outlive the test."""
    lock = runtime / "agenttui" / "agenttui.sock.lock"
    try:
        pid = int(lock.read_text().strip())
    except (OSError, ValueError):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            # A server the test process spawned itself is its child: reap it, or it stays a zombie.
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
        except ChildProcessError:
            pass
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)


@pytest.fixture
def agenttui_cmd():
    """The installed console script, run as a user would."""
    exe = Path(sys.executable).parent / "agenttui"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "agenttui"]


def pytest_sessionfinish(session, exitstatus):
    """R-15: nothing the suite started may outlive it."""
    if docker_problem() is not None or os.environ.get("AGENTTUI_SKIP_LEAK_CHECK"):
        return
    if getattr(session.config, "workerinput", None) is not None:
        return
    leaked = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label={PROJECT_LABEL}", "--filter", f"label={SESSION_LABEL}"],
        capture_output=True,
        text=True,
    ).stdout.split()
    if leaked:
        subprocess.run(["docker", "rm", "-f", *leaked], capture_output=True)
        print(f"\nLEAK: {len(leaked)} agenttui container(s) outlived the suite: {leaked}")
        session.exitstatus = 1
