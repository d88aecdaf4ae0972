"""The README's first command, as written, on a machine where nothing listens on Ollama's port
(issue 15): an agent that calls no model runs under the default egress, with a warning."""

from __future__ import annotations

import os
import re
import socket
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[2]
OLLAMA_DEFAULT = ("127.0.0.1", 11434)


def readme_first_command() -> str:
    """The run part of the README's set-up line (`scripts/setup.sh && <command>`)."""
    block = re.search(r"```sh\n(scripts/setup\.sh && [^\n]+)\n```", (ROOT / "README.md").read_text())
    assert block, "the README opens with `scripts/setup.sh && <first command>`"
    return block.group(1).split("&&", 1)[1].strip()


def nothing_listens(address: tuple[str, int]) -> bool:
    try:
        socket.create_connection(address, timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def test_readme_first_command_runs_with_no_model_server(monkeypatch):
    command = readme_first_command()
    assert "--egress" not in command  # the default egress, as a new user runs it
    assert nothing_listens(OLLAMA_DEFAULT), "this test needs Ollama's default port free on this machine"
    monkeypatch.delenv("AGENTTUI_DEFAULT_EGRESS")  # the suite's default; a user has none
    result = subprocess.run(command, shell=True, cwd=ROOT, capture_output=True, text=True, timeout=180,
                            env=dict(os.environ))
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert "reversed: agenttui from Hello" in result.stdout, result.stdout
    log = result.stdout.splitlines()  # the log streams to stdout, the response last
    warning = next((line for line in log if "warning: Ollama not reachable" in line), result.stdout)
    assert "http://127.0.0.1:11434" in warning and "ollama serve" in warning and "strict" in warning
    assert log.index(warning) < next(i for i, line in enumerate(log) if "received query" in line)
