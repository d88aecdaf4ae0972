"""End to end in a real terminal: the installed `agenttui` binary inside tmux, driven with
send-keys and read with capture-pane, running a real Docker test through the agenttui server.

`agenttui path/to/agent.py` opens with the file loaded; esc leaves the code editor for the
query field; ctrl+j submits; the test reaches COMPLETED with its response on screen.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from ..conftest import IN_CI

# In CI the real terminal test must run (scripts/test.sh installs tmux); elsewhere it may skip.
pytestmark = [
    pytest.mark.docker,
    pytest.mark.skipif(not shutil.which("tmux") and not IN_CI, reason="tmux is not installed"),
]


class Tmux:
    def __init__(self, width: int = 120, height: int = 40):
        self.socket = f"agenttui-e2e-{uuid.uuid4().hex[:8]}"  # a private tmux server
        self.size = (width, height)

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, check=check)

    def start(self, command: str) -> None:
        width, height = self.size
        self.run("new-session", "-d", "-s", "e2e", "-x", str(width), "-y", str(height), command)

    def keys(self, *keys: str, literal: bool = False) -> None:
        self.run("send-keys", "-t", "e2e", *(["-l"] if literal else []), *keys)

    def screen(self) -> str:
        result = self.run("capture-pane", "-p", "-t", "e2e", check=False)
        return result.stdout

    def wait_for(self, *texts: str, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen()
            if all(text in screen for text in texts):
                return screen
            time.sleep(0.2)
        raise AssertionError(f"{texts} not on screen after {timeout} s; the screen:\n{screen}")

    def alive(self) -> bool:
        return self.run("has-session", "-t", "e2e", check=False).returncode == 0

    def kill(self) -> None:
        self.run("kill-server", check=False)


def test_agenttui_in_tmux_runs_a_docker_test(tmp_path, agenttui_cmd, monkeypatch):
    agent = tmp_path / "shout_agent.py"
    agent.write_text('def run(query):\n    print("shouting", query)\n    return query.upper()\n')
    monkeypatch.setenv("AGENTTUI_DEFAULT_EGRESS", "none")  # the agent needs no model endpoint
    env = {k: v for k, v in os.environ.items() if k.startswith(("XDG_", "AGENTTUI_"))}
    env.update(TERM="tmux-256color", TEXTUAL_ANIMATIONS="none", PATH=os.environ["PATH"])
    command = "env " + " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    command += " " + " ".join(shlex.quote(part) for part in [*agenttui_cmd, str(agent)])
    tmux = Tmux()
    try:
        tmux.start(command)
        tmux.wait_for("shout_agent.py", "return query.upper()", "running 0/", timeout=60)
        tmux.keys("Escape")  # leave the code editor: focus moves to the query field
        time.sleep(0.5)
        tmux.keys("hello from tmux", literal=True)
        tmux.wait_for("hello from tmux")
        tmux.keys("C-j")  # submit
        screen = tmux.wait_for("COMPLETED", "HELLO FROM TMUX", timeout=90)
        assert "shouting hello from tmux" in screen  # the agent's own output, streamed
        assert "log · test 1 · COMPLETED" in screen
        tmux.keys("C-q")
        deadline = time.monotonic() + 15
        while tmux.alive() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not tmux.alive(), "agenttui did not exit on ctrl+q"
    finally:
        tmux.kill()
    # The test outlives the TUI in the server's store, and the container is gone.
    shown = subprocess.run([*agenttui_cmd, "show", "1", "--json"], capture_output=True, text=True, timeout=60)
    assert '"status": "COMPLETED"' in shown.stdout, shown.stdout + shown.stderr
    assert '"response": "HELLO FROM TMUX"' in shown.stdout
    assert Path(agent).exists()
