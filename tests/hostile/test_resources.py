"""Agents that attack the machine's resources: processes, memory, CPU, signals, children, disk.

tests/docker/test_engine.py already proves the basic limits in-process (a fork loop that
reports its own error, a slow memory hog, a sleeping agent past its timeout). Here each
attack is blunter, runs on one long-lived server through the real CLI, and the server must
still run a normal test afterwards.
"""

import json
import shutil
import subprocess
import time

import pytest

from .agents import CPU_SPIN, FILLS_THE_DISK, FORK_BOMB, IGNORES_SIGTERM, LEAVES_CHILDREN, MEMORY_BOMB
from .conftest import SCRATCH_MB, STOP_GRACE_S, wait_for, write_agent

pytestmark = pytest.mark.docker

MB = 1024 * 1024


def gone(server, test_id: int) -> None:
    """R-15: the container is removed shortly after the end (target 5 s)."""
    wait_for(lambda: server.containers_of(test_id) == [], 10, 0.2)


def test_fork_bomb_hits_the_pid_limit_and_fails_with_the_reason(server, tmp_path):
    agent = write_agent(tmp_path, FORK_BOMB)
    record = server.submit(agent, "--pids", "64")
    assert record["_exit"] == 1 and record["status"] == "FAILED" and record["failure_kind"] == "agent"
    # The bare BlockingIOError gets its cause from the engine: the container's process limit.
    assert "Resource temporarily unavailable" in record["error"], record["error"]
    assert "limit of 64 processes" in record["error"] and "--pids" in record["error"]
    gone(server, record["id"])
    server.assert_healthy(tmp_path)


def test_memory_bomb_is_oom_killed_and_reported_with_its_peak(server, tmp_path):
    agent = write_agent(tmp_path, MEMORY_BOMB)
    record = server.submit(agent, "--memory", "128")
    assert record["_exit"] == 1 and record["status"] == "FAILED"
    assert record["oom_killed"] is True and record["exit_code"] == 137
    assert "out of memory" in record["error"] and "128 MB" in record["error"]
    # Dead within a fraction of a second, before any stats sample: the peak is still known.
    assert 100 * MB <= record["metrics"]["peak_memory_bytes"] <= 128 * MB
    shown = server.cli("show", str(record["id"])).stdout
    assert "peak memory 128.0 MB" in shown and "OOM yes" in shown
    gone(server, record["id"])
    server.assert_healthy(tmp_path)


def test_cpu_spin_forever_times_out_on_time_and_the_container_is_gone(server, tmp_path):
    agent = write_agent(tmp_path, CPU_SPIN)
    record = server.submit(agent, "--timeout", "10")
    assert record["_exit"] == 4 and record["status"] == "TIMED_OUT", record
    view = server.show(record["id"])
    ran = view["finished_at"] - view["running_at"]
    # On time: the deadline, plus at most the stop grace and scheduling slack on a busy box.
    assert 10 <= ran <= 10 + STOP_GRACE_S + 5, ran
    assert record["metrics"]["cpu_s"] >= 3  # it really spun (1 CPU limit, two spinners)
    gone(server, record["id"])
    server.assert_healthy(tmp_path)


def test_agent_ignoring_sigterm_is_killed_after_the_grace_period(server, tmp_path):
    agent = write_agent(tmp_path, IGNORES_SIGTERM)
    test_id = server.submit_no_wait(agent)
    server.wait_log_line(test_id, "ignoring SIGTERM")
    cancel = server.cli("cancel", str(test_id), timeout=60)
    assert cancel.returncode == 0, cancel.stderr
    assert f"test {test_id} CANCELLED" in cancel.stdout
    [(asked, finished, exit_code)] = server.query(
        "select cancel_requested_at, finished_at, exit_code from tests where id=?", test_id
    )
    # SIGTERM was ignored, so the stop waited the whole grace period, then SIGKILL (137).
    assert exit_code == 137
    assert STOP_GRACE_S - 0.3 <= finished - asked <= STOP_GRACE_S + 5, finished - asked
    assert "cancel requested: stopping the container" in server.logs_text(test_id)
    gone(server, test_id)
    server.assert_healthy(tmp_path)


def test_children_outliving_the_agent_are_reaped_and_the_test_still_ends(server, tmp_path):
    agent = write_agent(tmp_path, LEAVES_CHILDREN)
    test_id = server.submit_no_wait(agent)
    server.wait_log_line(test_id, "orphans gone, zombies inside: 0")
    container = server.running_container(test_id)
    # Seen from the host too: no zombie in the container, and the SIGTERM-deaf daemons alive.
    top = subprocess.run(["docker", "top", container, "-o", "pid,stat,args"], capture_output=True, text=True)
    assert top.returncode == 0, top.stderr
    rows = [line.split(None, 2) for line in top.stdout.splitlines()[1:]]
    assert rows and not [r for r in rows if r[1].startswith("Z")], top.stdout
    assert sum("time.sleep(3600)" in r[2] for r in rows) == 5, top.stdout
    assert any("docker-init" in r[2] for r in rows)  # PID 1 is an init that reaps
    view = server.wait_done(test_id, 60)
    assert view["status"] == "COMPLETED" and view["response"] == "zombies=0"
    # The daemons meant to sleep an hour did not hold the test: it ended with the agent.
    assert view["finished_at"] - view["running_at"] < 4.5 + 10
    gone(server, test_id)
    server.assert_healthy(tmp_path)


@pytest.mark.alone  # the host's free space: no other test may write meanwhile
def test_filling_the_disk_stops_at_the_scratch_limit_and_spares_the_host(server, tmp_path):
    docker_root = subprocess.run(
        ["docker", "info", "--format", "{{.DockerRootDir}}"], capture_output=True, text=True, check=True
    ).stdout.strip()
    watched = {docker_root, str(server.root)}
    free_before = {path: shutil.disk_usage(path).free for path in watched}
    agent = write_agent(tmp_path, FILLS_THE_DISK)
    test_id = server.submit_no_wait(agent, query="3")
    server.wait_log_line(test_id, "filled")
    container = server.running_container(test_id)
    size_rw = subprocess.run(
        ["docker", "container", "inspect", "--size", "--format", "{{.SizeRw}}", container],
        capture_output=True, text=True,
    ).stdout.strip()
    view = server.wait_done(test_id, 60)
    assert view["status"] == "COMPLETED", view
    report = json.loads(view["response"])
    # The scratch area is a tmpfs of SCRATCH_MB: writes end there with ENOSPC.
    assert report["mounts"]["/tmp"] == "tmpfs"
    assert report["/tmp/fill"]["error"] == "ENOSPC"
    assert SCRATCH_MB - 2 <= report["/tmp/fill"]["written_mb"] <= SCRATCH_MB
    # The root and the bundle are read-only: not one byte lands in the image's layer.
    for target in ("/fill", "/var/tmp/fill", "/home/fill", "/agenttui/fill"):
        assert report[target] == {"written_mb": 0, "error": "EROFS"}, (target, report[target])
    # /etc/hosts is the engine's own mount: read-only, or at least not the agent's to write.
    assert report["/etc/hosts"]["written_mb"] == 0 and report["/etc/hosts"]["error"] in ("EROFS", "EACCES")
    assert size_rw == "0", size_rw
    # /dev/shm is the engine's own small tmpfs (64 MB): memory, bounded, never the disk.
    assert report["mounts"]["/dev/shm"] == "tmpfs" and report["/dev/shm/fill"]["written_mb"] <= 64
    # The agent tried to write 1 GB in each of seven places; the host disk did not notice
    # (the margin absorbs what other work on this machine writes meanwhile).
    for path, before in free_before.items():
        dropped = before - shutil.disk_usage(path).free
        assert dropped < 256 * MB, f"{path}: free space dropped by {dropped / MB:.0f} MB"
    gone(server, test_id)
    server.assert_healthy(tmp_path)
