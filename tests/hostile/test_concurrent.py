"""Ten hostile agents at once on a 2-core box, with the cap at 10, and a good one behind them."""

import json
import subprocess
import threading
import time

import pytest

from .agents import (
    CPU_SPIN,
    FILLS_THE_DISK,
    FORK_BOMB,
    IGNORES_SIGTERM,
    JUNK_OUTPUT,
    LEAVES_CHILDREN,
    LONG_LINE,
    MEMORY_BOMB,
    PROBES_THE_HOST,
    log_flood,
)
from .conftest import GOOD_AGENT, wait_for, write_agent
from .test_isolation import LoopbackService

pytestmark = pytest.mark.docker

MB = 1024 * 1024


def test_ten_hostile_tests_at_once_and_a_good_one_queued_behind_them(server, tmp_path):
    queue = json.loads(server.cli("queue", "--json").stdout)
    assert queue["cap"] == 10 and queue["running"] == 0 and queue["queued"] == 0
    service = LoopbackService()
    hostile = {
        "fork bomb": (FORK_BOMB, ["--pids", "64"], "x"),
        "memory bomb": (MEMORY_BOMB, ["--memory", "128"], "x"),
        "cpu spin": (CPU_SPIN, ["--timeout", "10"], "x"),
        "ignores sigterm": (IGNORES_SIGTERM, ["--timeout", "10"], "x"),
        "log flood": (log_flood(256 * MB), [], "x"),
        "50 MB line": (LONG_LINE, [], "x"),
        "junk output": (JUNK_OUTPUT, [], "x"),
        "leaves children": (LEAVES_CHILDREN, [], "x"),
        "fills the disk": (FILLS_THE_DISK, [], "0"),
        "probes the host": (PROBES_THE_HOST, [], str(service.port)),
    }
    try:
        # All ten submitted at the same moment, by ten clients.
        procs = {}
        for i, (name, (code, options, query)) in enumerate(hostile.items()):
            agent = write_agent(tmp_path, code, name=f"hostile_{i}.py")
            procs[name] = subprocess.Popen(
                [server.exe, "submit", str(agent), "--query", query, "--no-wait", *options],
                env=server.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )
        ids = {}
        for name, proc in procs.items():
            out, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, (name, err)
            ids[name] = int(out.strip())
        good = server.submit_no_wait(write_agent(tmp_path, GOOD_AGENT, name="good.py"), query="behind")
        samples: list[int] = []
        stop = threading.Event()

        def sample_active():
            while not stop.is_set():
                samples.append(server.query(
                    "select count(*) from tests where status in ('BUILDING','RUNNING')")[0][0])
                time.sleep(0.1)

        sampler = threading.Thread(target=sample_active, daemon=True)
        sampler.start()
        try:
            views = {name: server.wait_done(test_id, 150) for name, test_id in ids.items()}
            good_view = server.wait_done(good, 60)
        finally:
            stop.set()
            sampler.join()
    finally:
        service.close()

    # Every hostile test ended with its own right outcome.
    outcome = {name: (v["status"], v["error"] or "") for name, v in views.items()}
    assert outcome["fork bomb"][0] == "FAILED" and "limit of 64 processes" in outcome["fork bomb"][1], outcome
    assert views["memory bomb"]["status"] == "FAILED" and views["memory bomb"]["oom_killed"] is True, views["memory bomb"]
    assert views["cpu spin"]["status"] == "TIMED_OUT", outcome
    assert views["ignores sigterm"]["status"] == "TIMED_OUT" and views["ignores sigterm"]["exit_code"] == 137
    assert views["log flood"]["status"] == "COMPLETED" and views["log flood"]["log_truncated"] is True, outcome
    assert views["50 MB line"]["status"] == "COMPLETED" and views["50 MB line"]["response"] == "survived"
    assert views["junk output"]["status"] == "COMPLETED", outcome
    assert views["leaves children"]["response"] == "zombies=0", outcome
    disk = json.loads(views["fills the disk"]["response"])
    assert disk["/tmp/fill"]["error"] == "ENOSPC" and disk["/fill"]["error"] == "EROFS"
    probe = json.loads(views["probes the host"]["response"])
    assert "connected" not in probe["service"].values() and not any(probe["sockets"].values())
    assert service.accepted == 0
    for name in ("cpu spin", "ignores sigterm"):  # the deadline held under full load
        view = views[name]
        assert view["finished_at"] - view["running_at"] <= 10 + 2 + 15, (name, view)
    # The well-behaved test waited its turn behind all ten and completed.
    assert good_view["status"] == "COMPLETED" and good_view["response"] == "good: behind"
    claims = server.query("select test_id, active_after, cap from claims order by id")
    order = [test_id for test_id, _, _ in claims]
    assert max(order.index(i) for i in ids.values()) < order.index(good)
    # The cap held throughout: in every claim transaction and in every sample.
    assert all(active <= cap == 10 for _, active, cap in claims)
    assert samples and max(samples) <= 10
    print(f"\nten hostile + one good: busiest moment {max(samples)} active; outcomes {outcome}")
    for test_id in [*ids.values(), good]:
        wait_for(lambda: server.containers_of(test_id) == [], 15, 0.2)
    server.assert_healthy(tmp_path)
