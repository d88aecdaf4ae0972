"""`agenttui submit` says, in one line before the log, when the running personal server was
started with other settings than the command's own, which ones, and that a restart applies them."""

from __future__ import annotations

import os
import subprocess

NOTICE = "your agenttui server was started with other settings than yours now"


def submit(agenttui_cmd, agent, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([*agenttui_cmd, "submit", str(agent), "--query", "x", "--egress", "none"],
                          capture_output=True, text=True, timeout=90, env={**os.environ, **env})


def test_submit_names_the_settings_the_running_server_does_not_have(agenttui_cmd, tmp_path, monkeypatch):
    monkeypatch.setenv("AGENTTUI_BACKEND", "noop")
    monkeypatch.setenv("AGENTTUI_MAX_CONCURRENT", "2")
    agent = tmp_path / "agent.py"
    agent.write_text("def run(query):\n    return query\n")

    same = submit(agenttui_cmd, agent)  # starts the server with these settings
    assert same.returncode == 0, same.stderr
    assert NOTICE not in same.stderr
    assert NOTICE not in submit(agenttui_cmd, agent).stderr

    changed = submit(agenttui_cmd, agent, AGENTTUI_MAX_CONCURRENT="5", AGENTTUI_DEFAULT_EGRESS="full")
    assert changed.returncode == 0, changed.stderr
    lines = changed.stderr.splitlines()
    notice = next(i for i, line in enumerate(lines) if NOTICE in line)
    assert "(max_concurrent, default_egress)" in lines[notice]
    assert "`agenttui server restart` applies them" in lines[notice]
    assert notice < next(i for i, line in enumerate(lines) if "queued" in line)  # before the log
    assert "noop agent" in changed.stdout  # the log went on as ever

    restarted = subprocess.run([*agenttui_cmd, "server", "restart"], capture_output=True, text=True, timeout=90,
                               env={**os.environ, "AGENTTUI_MAX_CONCURRENT": "5", "AGENTTUI_DEFAULT_EGRESS": "full"})
    assert restarted.returncode == 0, restarted.stderr
    after = submit(agenttui_cmd, agent, AGENTTUI_MAX_CONCURRENT="5", AGENTTUI_DEFAULT_EGRESS="full")
    assert after.returncode == 0 and NOTICE not in after.stderr, after.stderr
