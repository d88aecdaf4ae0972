"""What the installed command says when asked for something it cannot do, or finds nothing."""

from __future__ import annotations

import subprocess


def test_in_process_submit_with_no_wait_is_refused_and_nothing_is_queued(agenttui_cmd, tmp_path):
    agent = tmp_path / "agent.py"
    agent.write_text("def run(query):\n    return query\n")
    done = subprocess.run([*agenttui_cmd, "--in-process", "submit", str(agent), "--query", "x", "--no-wait"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "--no-wait" in done.stderr and "--in-process" in done.stderr and "Traceback" not in done.stderr
    queue = subprocess.run([*agenttui_cmd, "--in-process", "queue", "--json"], capture_output=True, text=True,
                           timeout=60)
    assert '"queued": 0' in queue.stdout, queue.stdout


def test_a_history_search_that_finds_nothing_says_so(agenttui_cmd):
    done = subprocess.run([*agenttui_cmd, "--in-process", "history", "--search", "nomatch"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "no finished test matches 'nomatch'"


def test_global_options_are_taken_after_the_command_too(agenttui_cmd, tmp_path):
    agent = tmp_path / "agent.py"
    agent.write_text("def run(query):\n    return 'hi ' + query\n")
    done = subprocess.run([*agenttui_cmd, "submit", str(agent), "--in-process", "--query", "x", "--json",
                           "--egress", "none"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert '"response": "hi x"' in done.stdout


def test_a_retrys_log_does_not_read_as_a_first_attempt(agenttui_cmd, tmp_path):
    agent = tmp_path / "agent.py"
    agent.write_text("def run(query):\n    return 'hi ' + query\n")

    def agenttui(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*agenttui_cmd, "--in-process", *args], capture_output=True, text=True, timeout=120)

    first = agenttui("submit", str(agent), "--query", "x", "--egress", "none")
    assert first.returncode == 0, first.stderr
    retried = agenttui("retry", "1")
    assert retried.returncode == 0, retried.stderr
    log = agenttui("logs", "2").stdout
    assert "[agenttui] preparing image" in log, log
    assert "attempt 1" not in log, log
