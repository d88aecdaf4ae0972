"""The package's entrypoint.py, run with the host's Python: same answer as the test harness,
only the answer on stdout, exit codes, query from arguments or AGENT_QUERY."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import pytest

from agenttui.harness import new_nonce, parse_result_line

from .test_packaging_build import build, package_record

AGENTS = {
    "run": """
        print("progress on stdout")
        def run(query):
            print("thinking about", query)
            return query.upper()
        """,
    "async_run": """
        import asyncio
        async def run(query):
            await asyncio.sleep(0)
            return "async: " + query
        """,
    "strands_style": """
        class AgentResult:
            def __init__(self, text):
                self.text = text
            def __str__(self):
                return "answer: " + self.text

        class Agent:
            def __call__(self, prompt):
                return AgentResult(prompt[::-1])

        agent = Agent()
        """,
    "callable_object": """
        class Echo:
            def __call__(self, query):
                return {"echo": query, "n": len(query)}

        echo = Echo()
        """,
    "generator": """
        def handler(query):
            for word in query.split():
                yield word + ";"
        """,
    "noisy_subprocess": """
        import os, sys
        def run(query):
            os.system("echo from a child process")
            sys.stdout.write("raw write\\n")
            return "line 1\\nline 2 ünïcode ✓"
        """,
}


@pytest.fixture
def package_dir(tmp_path) -> Path:
    result = build(tmp_path, package_record("ollama"))
    with zipfile.ZipFile(result.path) as archive:
        archive.extractall(tmp_path / "x")
    return tmp_path / "x" / result.top_folder


def write_agent(folder: Path, code: str) -> None:
    (folder / "agent.py").write_text(textwrap.dedent(code))


def run_entrypoint(folder: Path, *args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess:
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "AGENT_EXIT_GRACE_S": "5"}
    return subprocess.run(
        [sys.executable, str(folder / "entrypoint.py"), *args],
        capture_output=True,
        env={**base, **env},
        cwd=folder,
        timeout=timeout,
    )


def harness_response(folder: Path, query: str) -> str | None:
    """What the test harness (the very runner the package carries) reports for this agent."""
    nonce = new_nonce()
    proc = subprocess.run(
        [sys.executable, str(folder / "agenttui_harness.py")],
        capture_output=True,
        text=True,
        env={"PATH": os.environ.get("PATH", ""), "AGENTTUI_QUERY": query, "AGENTTUI_RESULT_NONCE": nonce,
             "AGENTTUI_EXIT_GRACE_S": "5"},
        cwd=folder,
        timeout=60,
    )
    record = parse_result_line(proc.stdout.rstrip("\n").rsplit("\n", 1)[-1], nonce)
    assert record is not None and record["success"], proc.stderr
    return record["response"]


@pytest.mark.parametrize("kind", sorted(AGENTS))
def test_stdout_is_exactly_the_response_the_harness_reported(package_dir, kind):
    write_agent(package_dir, AGENTS[kind])
    query = "hello agent world"
    expected = harness_response(package_dir, query)
    proc = run_entrypoint(package_dir, query)
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout.decode("utf-8") == expected + "\n"


def test_agent_output_goes_to_stderr(package_dir):
    write_agent(package_dir, AGENTS["noisy_subprocess"])
    proc = run_entrypoint(package_dir, "q")
    stderr = proc.stderr.decode()
    assert "from a child process" in stderr and "raw write" in stderr
    assert b"child" not in proc.stdout


def test_query_from_environment_and_arguments(package_dir):
    write_agent(package_dir, AGENTS["run"])
    assert run_entrypoint(package_dir, AGENT_QUERY="from env").stdout == b"FROM ENV\n"
    # several arguments are one query; arguments win over the environment
    assert run_entrypoint(package_dir, "two", "words", AGENT_QUERY="no").stdout == b"TWO WORDS\n"


def test_no_query_exits_2(package_dir):
    write_agent(package_dir, AGENTS["run"])
    proc = run_entrypoint(package_dir)
    assert proc.returncode == 2 and proc.stdout == b""
    assert b"no query" in proc.stderr


def test_agent_error_exits_1_with_traceback(package_dir):
    write_agent(package_dir, "def run(query):\n    raise RuntimeError('model unreachable')\n")
    proc = run_entrypoint(package_dir, "q")
    assert proc.returncode == 1 and proc.stdout == b""
    assert b"RuntimeError: model unreachable" in proc.stderr and b"Traceback" in proc.stderr


def test_agent_sys_exit_is_a_failure(package_dir):
    write_agent(package_dir, "import sys\ndef run(query):\n    sys.exit(0)\n")
    proc = run_entrypoint(package_dir, "q")
    assert proc.returncode == 1 and proc.stdout == b""


def test_no_entry_point_exits_2(package_dir):
    write_agent(package_dir, "X = 1\n")
    proc = run_entrypoint(package_dir, "q")
    assert proc.returncode == 2
    assert b"no entry point" in proc.stderr


def test_explicit_entry_point(package_dir):
    write_agent(package_dir, "def run(q):\n    return 'run'\n\ndef other(q):\n    return 'other ' + q\n")
    assert run_entrypoint(package_dir, "x", AGENT_ENTRYPOINT="other").stdout == b"other x\n"


TWO_CANDIDATES = """
class Agent:
    def __init__(self, name):
        self.name = name

    def __call__(self, query):
        return self.name + ": " + query


agent = Agent("agent")  # what the harness finds by default
reviewer = Agent("reviewer")
"""


def extracted(where: Path, record) -> Path:
    result = build(where, record)
    with zipfile.ZipFile(result.path) as archive:
        archive.extractall(where / "x")
    return where / "x" / result.top_folder


def test_package_of_a_test_run_with_entrypoint_calls_the_same_object(tmp_path):
    """submit --entrypoint reviewer: the package calls `reviewer` too, with no setting of its own
    (a bare `python3 entrypoint.py`, as on AWS), and .env.example names it; AGENT_ENTRYPOINT overrides."""
    folder = extracted(tmp_path / "named", package_record("ollama", code=TWO_CANDIDATES, entrypoint="reviewer"))
    assert "\nAGENT_ENTRYPOINT=reviewer\n" in (folder / ".env.example").read_text()
    assert "calls `reviewer` (the object the test called" in (folder / "README.md").read_text()
    assert run_entrypoint(folder, "hi").stdout == b"reviewer: hi\n"
    assert run_entrypoint(folder, "hi", AGENT_ENTRYPOINT="agent").stdout == b"agent: hi\n"
    # Without --entrypoint, the package finds the entry point as the harness did.
    plain = extracted(tmp_path / "plain", package_record("ollama", code=TWO_CANDIDATES))
    assert "\n# AGENT_ENTRYPOINT=\n" in (plain / ".env.example").read_text()
    assert run_entrypoint(plain, "hi").stdout == b"agent: hi\n"


def test_timeout_exits_124(package_dir):
    write_agent(package_dir, "import time\ndef run(q):\n    time.sleep(30)\n    return 'late'\n")
    started = time.monotonic()
    proc = run_entrypoint(package_dir, "q", AGENT_TIMEOUT_S="0.5")
    assert proc.returncode == 124 and proc.stdout == b""
    assert time.monotonic() - started < 10


def test_sigterm_stops_the_agent_with_143(package_dir):
    write_agent(
        package_dir,
        "import time\ndef run(q):\n    print('started', flush=True)\n    time.sleep(30)\n    return 'late'\n",
    )
    proc = subprocess.Popen(
        [sys.executable, str(package_dir / "entrypoint.py"), "q"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={"PATH": os.environ.get("PATH", ""), "AGENT_EXIT_GRACE_S": "5"},
    )
    assert proc.stderr.readline() == b"started\n"  # the agent's print, sent to stderr
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 143, err
    assert out == b""
