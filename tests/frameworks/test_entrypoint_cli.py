"""`agenttui submit --entrypoint NAME` picks the agent's object or function (issue 16, point 1):
stored on the request, given to the harness, validated with a message naming the flag."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

pytestmark = pytest.mark.docker

TWO_ENTRY_POINTS = '''
def run(query):
    return "the default"


class Answers:
    def pick(self, query):
        return "picked: " + query


answers = Answers()
'''


def submit(agenttui_cmd, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*agenttui_cmd, "submit", *args], capture_output=True, text=True, timeout=180,
                          env=dict(os.environ))


def test_entrypoint_flag_picks_a_dotted_name(agenttui_cmd, tmp_path):
    agent = tmp_path / "agent.py"
    agent.write_text(TWO_ENTRY_POINTS)
    result = submit(agenttui_cmd, str(agent), "--query", "q", "--entrypoint", "answers.pick", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["response"] == "picked: q"
    assert "calling answers.pick" in result.stderr


def test_a_bad_entrypoint_is_refused_naming_the_flag(agenttui_cmd, tmp_path):
    agent = tmp_path / "agent.py"
    agent.write_text(TWO_ENTRY_POINTS)
    result = submit(agenttui_cmd, str(agent), "--query", "q", "--entrypoint", "answers-pick")
    assert result.returncode == 2, result.stderr
    assert "--entrypoint: must be a Python name or dotted path" in result.stderr
    assert "'answers-pick'" in result.stderr and "Traceback" not in result.stderr
