"""Two servers ("hosts") on one PostgreSQL store: a client of one sees what the other queued."""

import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import pytest


def curl(socket_path: Path, method: str, path: str, body=None):
    cmd = ["curl", "-s", "--unix-socket", str(socket_path), "-X", method, f"http://x/v1{path}"]
    if body is not None:
        cmd += ["-H", "Content-Type: application/json", "--data-binary", json.dumps(body)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout
    return json.loads(out) if out else None


@pytest.mark.alone  # a latency bound
def test_a_client_of_server_a_sees_a_test_submitted_through_server_b_within_1s(pg_url, agenttui_cmd):
    base = Path(tempfile.mkdtemp(prefix="atpg-", dir="/tmp"))
    servers, sockets = [], []
    try:
        for host in ("a", "b"):
            sock = base / f"{host}.sock"
            env = {**os.environ, "AGENTTUI_DB_URL": pg_url, "AGENTTUI_SOCKET_PATH": str(sock),
                   "AGENTTUI_BACKEND": "noop", "AGENTTUI_NOOP_RUN_S": "30", "XDG_STATE_HOME": str(base / host)}
            servers.append(subprocess.Popen([*agenttui_cmd, "server"], env=env,
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            sockets.append(sock)
        deadline = time.monotonic() + 30
        while not all(s.exists() for s in sockets) and time.monotonic() < deadline:
            time.sleep(0.05)
        server_a, server_b = sockets
        request = {"agent_code": "def run(q):\n    return q\n", "query": "through b"}
        submitted = curl(server_b, "POST", "/tests", {"request": request})
        seen_at = None
        start = time.monotonic()
        while time.monotonic() - start < 5:
            queue = curl(server_a, "GET", "/queue")
            if any(t["id"] == submitted["id"] for t in queue["tests"]):
                seen_at = time.monotonic() - start
                break
            time.sleep(0.02)
        assert seen_at is not None and seen_at < 1.0
        # One queue, one cap: both servers report the same numbers.
        assert curl(server_a, "GET", "/queue")["running"] + curl(server_a, "GET", "/queue")["queued"] == 1
        assert curl(server_b, "GET", f"/tests/{submitted['id']}")["query"] == "through b"
    finally:
        for proc in servers:
            proc.terminate()
            proc.wait(timeout=30)
        subprocess.run(["rm", "-rf", str(base)])
