"""Shared by the benchmarks: a throwaway agenttui environment, timing, statistics.

Every benchmark runs in its own XDG directories (no real config, store or socket is
touched), labels its containers so they can be found and removed, and stops the personal
server it caused to start.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
AGENTTUI = str(Path(sys.executable).parent / "agenttui")
DEFAULT_IMAGE = os.environ.get("AGENTTUI_BASE_IMAGE", "agenttui-base:bookworm")
BENCH_LABEL = "agenttui.bench"


def median(values: list[float]) -> float:
    return statistics.median(values)


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


def proc_status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


class BenchEnv:
    """XDG dirs, a bench label on every container, egress 'none' (no model is called and no
    Ollama runs here), and helpers to run the real CLI and read the store."""

    def __init__(self, image: str = DEFAULT_IMAGE, **settings: str):
        self.run_id = uuid.uuid4().hex[:10]
        # Short: a Unix socket path must stay under 107 bytes.
        self.root = Path(tempfile.mkdtemp(prefix="atb-", dir="/tmp"))
        # Modules compiled once and kept, as an installed agenttui has them: a dev shell's
        # PYTHONDONTWRITEBYTECODE would compile every module again on every command's start
        # (kept apart from the source tree, in the throwaway folder).
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith("AGENTTUI_") and k != "PYTHONDONTWRITEBYTECODE"}
        self.env["PYTHONPYCACHEPREFIX"] = str(self.root / "pycache")
        for var in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME", "XDG_RUNTIME_DIR"):
            path = self.root / var.lower()
            path.mkdir(parents=True, exist_ok=True)
            self.env[var] = str(path)
        self.env.update(
            AGENTTUI_BASE_IMAGE=image,
            AGENTTUI_DEFAULT_EGRESS="none",
            AGENTTUI_EXTRA_LABELS=json.dumps({BENCH_LABEL: self.run_id}),
            **{f"AGENTTUI_{k.upper()}": v for k, v in settings.items()},
        )
        self.image = image
        self.db_path = self.root / "xdg_data_home" / "agenttui" / "agenttui.db"
        self.lock_path = self.root / "xdg_runtime_dir" / "agenttui" / "agenttui.sock.lock"

    def activate(self) -> None:
        """Make this process use the environment too (in-process clients)."""
        os.environ.clear()
        os.environ.update(self.env)

    def agent(self, code: str, name: str = "agent.py") -> Path:
        path = self.root / name
        path.write_text(textwrap.dedent(code))
        return path

    def cli(self, *args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run([AGENTTUI, *args], env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise RuntimeError(f"agenttui {' '.join(args)} failed ({result.returncode}):\n{result.stderr[-2000:]}")
        return result

    def popen(self, *args: str, **kwargs) -> subprocess.Popen:
        return subprocess.Popen([AGENTTUI, *args], env=self.env, **kwargs)

    def query(self, sql: str, *params) -> list[tuple]:
        conn = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=30)
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()

    def log_texts(self, test_id: int) -> list[str]:
        """The stored lines of a test's log, in order (the store keeps them in chunks)."""
        from agenttui.engine.store import chunks

        rows = self.query("select data from log_chunks where test_id=? order by last_seq", test_id)
        return [entry.text for (data,) in rows for entry in chunks.unpack(data)]

    def server_pid(self) -> int | None:
        try:
            return int(self.lock_path.read_text().strip())
        except (OSError, ValueError):
            return None

    def close(self) -> None:
        pid = self.server_pid()
        if pid:
            try:
                os.kill(pid, signal.SIGTERM)
                for _ in range(200):
                    os.kill(pid, 0)
                    time.sleep(0.05)
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        left = subprocess.run(["docker", "ps", "-aq", "--filter", f"label={BENCH_LABEL}={self.run_id}"],
                              capture_output=True, text=True).stdout.split()
        if left:
            subprocess.run(["docker", "rm", "-f", *left], capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)


def timed(cmd: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    result = subprocess.run(cmd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"command failed ({result.returncode}): {' '.join(cmd)}\n{result.stderr[-2000:]}")
    return elapsed


def first_line_and_exit(cmd: list[str], env: dict[str, str], marker: str, timeout: float = 120) -> tuple[float, float]:
    """Run `cmd`; seconds until a stdout line containing `marker`, and until it exits."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1)
    first = None
    assert proc.stdout is not None
    for line in proc.stdout:
        if first is None and marker in line:
            first = time.perf_counter() - started
    code = proc.wait(timeout=timeout)
    whole = time.perf_counter() - started
    if code != 0 or first is None:
        raise RuntimeError(f"{' '.join(cmd)}: exit {code}, marker {'seen' if first else 'not seen'}")
    return first, whole
