"""Tests outlive every terminal: the personal server, started by the first client, with real containers."""

import asyncio
import json
import os
import signal
import subprocess
import textwrap
import time

import pytest

from agenttui.client.remote import SocketClient
from agenttui.core.config import load_settings, runtime_dir

from ..docker.conftest import containers_of
from .conftest import wait_for

pytestmark = pytest.mark.docker


def server_pid() -> int:
    return int((runtime_dir() / "agenttui.sock.lock").read_text())


@pytest.fixture
def cli(agenttui_cmd):
    def run(*args, timeout=120):
        return subprocess.run([*agenttui_cmd, *args], capture_output=True, text=True, timeout=timeout)

    return run


def test_submit_no_wait_then_the_client_exits_and_the_test_still_completes(cli, tmp_path):
    agent = tmp_path / "agent.py"
    agent.write_text("import time\ndef run(q):\n    for i in range(5):\n        print('step', i, flush=True)\n"
                     "        time.sleep(0.3)\n    return 'done ' + q\n")
    submitted = cli("submit", str(agent), "--query", "bg", "--no-wait")
    assert submitted.returncode == 0, submitted.stderr
    test_id = int(submitted.stdout.strip())
    # The submitting process is gone; the server keeps going.
    show = wait_for(lambda: (r := json.loads(cli("show", str(test_id), "--json").stdout))["status"] == "COMPLETED"
                    and r, 60)
    assert show["response"] == "done bg"
    logs = cli("logs", str(test_id)).stdout
    assert [line for line in logs.splitlines() if line.startswith("step")] == [f"step {i}" for i in range(5)]


def test_sigkill_of_the_server_then_the_next_client_adopts_and_resumes(cli, tmp_path):
    agent = tmp_path / "agent.py"
    agent.write_text(textwrap.dedent("""
        import os, time
        def run(query):
            for i in range(50):
                print(f"line {i}", flush=True)
                time.sleep(0.1)
            os._exit(7)
    """))
    sleeper = tmp_path / "sleeper.py"
    sleeper.write_text("import time\ndef run(q):\n    print('zz', flush=True)\n    time.sleep(3600)\n")
    counted = json.loads(cli("submit", str(agent), "--query", "x", "--no-wait", "--json").stdout)["id"]
    slow = json.loads(cli("submit", str(sleeper), "--query", "x", "--timeout", "10", "--no-wait", "--json").stdout)["id"]

    async def follow_through_a_crash():
        """A client following the log while the server dies: it reconnects (restarting the
        server) and resumes from its position."""
        lines: list[str] = []
        async with SocketClient(load_settings()) as client:
            killed = False
            async for batch in client.follow_logs(counted):
                lines += [r.text for r in batch]
                if not killed and "line 10" in lines:
                    os.kill(server_pid(), signal.SIGKILL)
                    killed = True
            final = await client.wait(counted)
            slow_view = await client.wait(slow)
            all_lines = [r.text for r in await client.logs(counted)]
        return lines, final, slow_view, all_lines

    first_pid = wait_for(lambda: (runtime_dir() / "agenttui.sock.lock").exists() and server_pid(), 10)
    lines, final, slow_view, stored = asyncio.run(asyncio.wait_for(follow_through_a_crash(), 120))
    assert server_pid() != first_pid  # a new server was started by the client
    numbered = [line for line in lines if line.startswith("line ")]
    assert numbered == [f"line {i}" for i in range(50)]  # no gap, no duplicate, through the crash
    assert lines == stored
    assert final.status.value == "FAILED" and final.exit_code == 7 and final.attempt == 1
    assert any("adopted by" in line for line in stored)
    # The timeout still fired for the test adopted after the crash.
    assert slow_view.status.value == "TIMED_OUT"
    assert slow_view.finished_at - slow_view.running_at <= 10 + 2
    assert containers_of(counted) == [] and containers_of(slow) == []


def test_sigterm_leaves_containers_for_the_next_server(cli, tmp_path):
    agent = tmp_path / "agent.py"
    agent.write_text("import time\ndef run(q):\n    for i in range(30):\n        print(i, flush=True)\n"
                     "        time.sleep(0.1)\n    return 'finished'\n")
    test_id = int(cli("submit", str(agent), "--query", "x", "--no-wait").stdout)
    wait_for(lambda: "5" in cli("logs", str(test_id)).stdout.split(), 30)
    pid = server_pid()
    os.kill(pid, signal.SIGTERM)
    wait_for(lambda: subprocess.run(["kill", "-0", str(pid)], capture_output=True).returncode != 0, 15)
    # The container kept running without a server; the next command's server adopts it.
    shown = wait_for(lambda: (r := json.loads(cli("show", str(test_id), "--json").stdout))["status"] == "COMPLETED"
                     and r, 60)
    assert shown["response"] == "finished"
    assert [line for line in cli("logs", str(test_id)).stdout.splitlines() if line.isdigit()] == [
        str(i) for i in range(30)]
