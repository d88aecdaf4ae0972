"""SIGKILL of one server on a shared PostgreSQL store: another server adopts its running test,
reattaches to the container and finishes it with a gapless log and the real exit code."""

import json
import os
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest

from ..helpers import wait_for
from .test_servers_on_postgres import curl

pytestmark = pytest.mark.docker

AGENT = (
    "import os, time\n"
    "def run(query):\n"
    "    for i in range(40):\n"
    "        print(f'line {i}', flush=True)\n"
    "        time.sleep(0.1)\n"
    "    os._exit(9)\n"
)




def test_sigkill_of_one_server_the_other_finishes_its_test(pg_url, agenttui_cmd):
    base = Path(tempfile.mkdtemp(prefix="atfo-", dir="/tmp"))
    procs: dict[str, subprocess.Popen] = {}

    def start(host: str) -> Path:
        sock = base / f"{host}.sock"
        env = {**os.environ, "AGENTTUI_DB_URL": pg_url, "AGENTTUI_SOCKET_PATH": str(sock),
               "XDG_STATE_HOME": str(base / host)}
        procs[host] = subprocess.Popen([*agenttui_cmd, "server"], env=env,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(sock.exists, 30)
        return sock

    try:
        server_a = start("a")
        test = curl(server_a, "POST", "/tests", {"request": {"agent_code": AGENT, "query": "x"}})
        wait_for(lambda: any(r["text"] == "line 5" for r in curl(server_a, "GET", f"/tests/{test['id']}/logs")), 60)
        server_b = start("b")  # started after A claimed: the test is A's
        procs["a"].send_signal(signal.SIGKILL)
        procs["a"].wait()
        final = wait_for(lambda: (t := curl(server_b, "GET", f"/tests/{test['id']}"))["status"] == "FAILED" and t, 90)
        assert final["exit_code"] == 9 and final["attempt"] == 1
        lines = [r["text"] for r in curl(server_b, "GET", f"/tests/{test['id']}/logs")]
        assert [t for t in lines if t.startswith("line ")] == [f"line {i}" for i in range(40)]
        assert any("adopted by" in t for t in lines)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=30)
        subprocess.run(["rm", "-rf", str(base)])
