"""One real agenttui server for every hostile test, so "it stays healthy throughout" is literal.

The server runs as a user would run a shared one (`agenttui server` on its own socket, its
own XDG directories), the tests talk to it with the real `agenttui` binary, and after each
hostile test a well-behaved test must still complete on that same server process.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ..helpers import stored_log, wait_for

from ..conftest import SESSION_LABEL, TEST_BASE_IMAGE

SCRATCH_MB = 32  # the /tmp tmpfs of every container of this server
STOP_GRACE_S = 2.0  # SIGTERM → SIGKILL on cancel/timeout

GOOD_AGENT = "def run(query):\n    print('good agent working on', query)\n    return 'good: ' + query\n"




def proc_status_kb(pid: int, field: str) -> int:
    """VmRSS / VmHWM (peak RSS) of a process, in kB, from /proc/<pid>/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


class FakeOllama:
    """A stand-in for Ollama on this host's loopback (127.0.0.1 only), so the server runs with
    the default egress policy, whose preflight checks the model endpoint before each test."""

    def __init__(self):
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # /api/tags, /api/version, ...
                body = json.dumps({"models": [{"name": "llama3.2:latest", "model": "llama3.2:latest"}],
                                   "version": "0.0.0"}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class HostileServer:
    def __init__(self, root: Path, ollama_url: str):
        self.root = root
        self.socket_path = root / "sock" / "agenttui.sock"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTTUI_")}
        for var in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME", "XDG_RUNTIME_DIR"):
            path = root / var.lower()
            path.mkdir(parents=True, exist_ok=True)
            self.env[var] = str(path)
        key, value = SESSION_LABEL.split("=")
        self.env.update(
            AGENTTUI_SOCKET_PATH=str(self.socket_path),
            AGENTTUI_BASE_IMAGE=TEST_BASE_IMAGE,
            AGENTTUI_EXTRA_LABELS=json.dumps({key: value}),
            AGENTTUI_SCRATCH_MB=str(SCRATCH_MB),
            AGENTTUI_STOP_GRACE_S=str(STOP_GRACE_S),
            AGENTTUI_POLL_S="0.1",
            AGENTTUI_OLLAMA_URL=ollama_url,
        )
        self.db_path = root / "xdg_data_home" / "agenttui" / "agenttui.db"
        self.exe = str(Path(sys.executable).parent / "agenttui")
        self.proc: subprocess.Popen | None = None
        self._store_id: str | None = None
        self.good_runs = 0

    # ---------------------------------------------------------------- process
    def start(self) -> None:
        self.socket_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.root / "server.log", "ab")
        self.proc = subprocess.Popen(
            [self.exe, "server", "--foreground"], env=self.env, stdin=subprocess.DEVNULL, stdout=log, stderr=log
        )
        wait_for(lambda: self.socket_path.exists(), 30)
        wait_for(lambda: self.cli("queue", "--json").returncode == 0, 30, interval=0.2)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def rss_kb(self) -> int:
        return proc_status_kb(self.pid, "VmRSS")

    def peak_rss_kb(self) -> int:
        return proc_status_kb(self.pid, "VmHWM")

    # ---------------------------------------------------------------- the real CLI
    def cli(self, *args: str, timeout: float = 120, **popen) -> subprocess.CompletedProcess:
        return subprocess.run(
            [self.exe, *args], env=self.env, capture_output=True, text=True, timeout=timeout, **popen
        )

    def submit(self, agent: Path, *options: str, query: str = "x", timeout: float = 180) -> dict:
        """`agenttui submit --json` (follows the log, waits for the end): the final record."""
        result = self.cli("submit", str(agent), "--query", query, "--json", *options, timeout=timeout)
        assert result.stdout.strip(), f"no JSON record (exit {result.returncode}):\n{result.stderr[-3000:]}"
        record = json.loads(result.stdout)
        record["_exit"] = result.returncode
        record["_stderr"] = result.stderr
        return record

    def submit_no_wait(self, agent: Path, *options: str, query: str = "x") -> int:
        result = self.cli("submit", str(agent), "--query", query, "--no-wait", *options)
        assert result.returncode == 0, result.stderr
        return int(result.stdout.strip())

    def show(self, test_id: int) -> dict:
        result = self.cli("show", str(test_id), "--json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def wait_done(self, test_id: int, timeout: float) -> dict:
        return wait_for(
            lambda: (view := self.show(test_id))["status"] not in ("QUEUED", "BUILDING", "RUNNING") and view,
            timeout,
            interval=0.3,
        )

    def logs_text(self, test_id: int) -> str:
        result = self.cli("logs", str(test_id))
        assert result.returncode == 0, result.stderr
        return result.stdout

    # ---------------------------------------------------------------- the store, read-only
    def query(self, sql: str, *params) -> list[tuple]:
        conn = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=30)
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()

    def wait_log_line(self, test_id: int, text: str, timeout: float = 60) -> None:
        wait_for(lambda: any(line.text == text for line in stored_log(self.db_path, test_id)), timeout, 0.1)

    @property
    def store_id(self) -> str:
        if self._store_id is None:
            self._store_id = self.query("select value from store_meta where key='store_id'")[0][0]
        return self._store_id

    # ---------------------------------------------------------------- containers
    def container_filters(self, test_id: int) -> list[str]:
        return ["--filter", f"label=agenttui.test_id={test_id}", "--filter", f"label=agenttui.store={self.store_id}"]

    def containers_of(self, test_id: int) -> list[str]:
        out = subprocess.run(
            ["docker", "ps", "-aq", *self.container_filters(test_id)], capture_output=True, text=True, check=True
        ).stdout
        return out.split()

    def running_container(self, test_id: int, timeout: float = 60) -> str:
        def find():
            out = subprocess.run(
                ["docker", "ps", "-q", "--filter", "status=running", *self.container_filters(test_id)],
                capture_output=True, text=True, check=True,
            ).stdout.split()
            return out[0] if out else None

        return wait_for(find, timeout, 0.2)

    # ---------------------------------------------------------------- health
    def assert_healthy(self, tmp_path: Path) -> None:
        """The same server process still runs a well-behaved test to completion."""
        assert self.alive(), f"the server died; see {self.root / 'server.log'}"
        self.good_runs += 1
        agent = write_agent(tmp_path, GOOD_AGENT, name=f"good_{self.good_runs}.py")
        record = self.submit(agent, query=f"health-{self.good_runs}", timeout=120)
        assert record["status"] == "COMPLETED", record
        assert record["response"] == f"good: health-{self.good_runs}"
        assert record["_exit"] == 0
        assert f"good agent working on health-{self.good_runs}" in record["_stderr"]
        assert self.alive()


def write_agent(folder: Path, code: str, name: str = "agent.py") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(code))
    return path


@pytest.fixture(scope="session")
def server():
    # A short root: the socket path must stay under 107 bytes.
    root = Path(tempfile.mkdtemp(prefix="ath-", dir="/tmp"))
    ollama = FakeOllama()
    hostile = HostileServer(root, ollama.url)
    hostile.start()
    yield hostile
    hostile.stop()
    ollama.close()
    shutil.rmtree(root, ignore_errors=True)

