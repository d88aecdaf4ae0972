"""The in-container runner, run with the host's Python against small agent files."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from agenttui.harness import RESULT_TAG, new_nonce, parse_result_line, runner_source

RUNNER = Path(__file__).resolve().parents[2] / "src" / "agenttui" / "harness" / "runner.py"


class Run:
    def __init__(self, proc: subprocess.CompletedProcess, nonce: str):
        self.code = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        self.nonce = nonce

    @property
    def last_line(self) -> str:
        return self.stdout.rstrip("\n").rsplit("\n", 1)[-1]

    @property
    def record(self) -> dict:
        record = parse_result_line(self.last_line, self.nonce)
        assert record is not None, f"no result record as last line:\n{self.stdout}\n{self.stderr}"
        return record


def run_agent(tmp_path: Path, code: str, query: str = "hello", **env: str) -> Run:
    agent = tmp_path / "agent.py"
    agent.write_text(textwrap.dedent(code))
    runner = tmp_path / "agenttui_harness.py"
    runner.write_text(runner_source())
    nonce = new_nonce()
    full_env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "AGENTTUI_QUERY": query,
        "AGENTTUI_RESULT_NONCE": nonce,
        "AGENTTUI_EXIT_GRACE_S": "5",
        **env,
    }
    proc = subprocess.run(
        [sys.executable, str(runner)],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=tmp_path,
        timeout=60,
    )
    return Run(proc, nonce)


def test_runner_source_is_the_packaged_file():
    assert runner_source() == RUNNER.read_text()


def test_the_harness_files_are_python39_stdlib_only():
    """The runner and its grading (what a container gets) import the standard library and each
    other only."""
    from agenttui.harness import GRADING_FILENAME, harness_files

    files = harness_files()
    for source in files.values():
        ast.parse(source, feature_version=(3, 9))  # no match statements, no 3.10+ syntax
        imported = set()
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                imported.add((node.module or "").split(".")[0])
        assert "agenttui" not in imported
        assert imported <= set(sys.stdlib_module_names) | {GRADING_FILENAME.removesuffix(".py")}
    assert f'RESULT_TAG = "{RESULT_TAG}"' in runner_source()


def test_plain_run_function(tmp_path):
    run = run_agent(
        tmp_path,
        """
        print("thinking about it")
        def run(query):
            print("got", query)
            return query.upper()
        """,
        query="ping",
    )
    assert run.code == 0, run.stderr
    record = run.record
    assert record["success"] is True
    assert record["response"] == "PING"
    assert record["entrypoint"] == "run"
    assert record["error"] is None
    assert record["load_s"] >= 0 and record["run_s"] >= 0
    assert "cpu_s" in record and "peak_memory_bytes" in record
    assert "[agenttui] loading agent.py" in run.stderr
    assert "[agenttui] calling run(query)" in run.stderr
    assert "thinking about it\ngot ping\n" in run.stdout


def test_strands_style_agent_object(tmp_path):
    run = run_agent(
        tmp_path,
        """
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
        query="abc",
    )
    assert run.code == 0, run.stderr
    assert run.record["response"] == "answer: cba"
    assert run.record["entrypoint"] == "agent"


def test_async_run_is_awaited(tmp_path):
    run = run_agent(
        tmp_path,
        """
        import asyncio
        async def run(query):
            await asyncio.sleep(0.01)
            return {"echo": query, "n": [1, 2]}
        """,
        query="q",
    )
    assert run.code == 0, run.stderr
    assert json.loads(run.record["response"]) == {"echo": "q", "n": [1, 2]}


def test_generator_chunks_are_joined(tmp_path):
    run = run_agent(
        tmp_path,
        """
        def handler(query):
            for word in query.split():
                yield word + "."
        """,
        query="a b c",
    )
    assert run.code == 0, run.stderr
    assert run.record["response"] == "a.b.c."
    assert run.record["entrypoint"] == "handler"


def test_async_generator_chunks_are_joined(tmp_path):
    run = run_agent(
        tmp_path,
        """
        async def run(query):
            for ch in query:
                yield ch * 2
        """,
        query="xy",
    )
    assert run.record["response"] == "xxyy"


def test_module_level_object_with_call(tmp_path):
    run = run_agent(
        tmp_path,
        """
        from typing import Optional   # a callable special form that must not be picked

        class Shouter:
            def __call__(self, query):
                return query + "!"

        my_bot = Shouter()
        """,
        query="hey",
    )
    assert run.code == 0, run.stderr
    assert run.record["response"] == "hey!"
    assert run.record["entrypoint"] == "my_bot"


def test_explicit_entrypoint(tmp_path):
    run = run_agent(
        tmp_path,
        """
        def run(query):
            return "wrong"
        def answer(query):
            return "right"
        """,
        AGENTTUI_ENTRYPOINT="answer",
    )
    assert run.record["response"] == "right"
    assert run.record["entrypoint"] == "answer"


def test_agent_exception_reports_failure_with_traceback(tmp_path):
    run = run_agent(
        tmp_path,
        """
        def helper():
            raise ValueError("the model said no")
        def run(query):
            helper()
        """,
    )
    assert run.code == 1
    record = run.record
    assert record["success"] is False
    assert record["error"] == "ValueError: the model said no"
    assert record["error_type"] == "ValueError"
    assert record["response"] is None
    assert "Traceback (most recent call last)" in run.stderr
    assert "in helper" in run.stderr


def test_exception_at_import_is_reported(tmp_path):
    run = run_agent(tmp_path, "import this_module_does_not_exist_agenttui\n")
    assert run.code == 1
    assert run.record["error_type"] == "ModuleNotFoundError"
    assert "this_module_does_not_exist_agenttui" in run.record["error"]
    assert "Traceback" in run.stderr


def test_system_exit_is_reported(tmp_path):
    run = run_agent(tmp_path, "import sys\ndef run(q):\n    sys.exit(3)\n")
    assert run.code == 1
    assert run.record["success"] is False
    assert run.record["error_type"] == "SystemExit"
    assert "sys.exit(3)" in run.record["error"]


def test_missing_entrypoint_exits_2_with_message(tmp_path):
    run = run_agent(tmp_path, "x = 1\ndef helper(q):\n    return q\n")
    assert run.code == 2
    record = run.record
    assert record["success"] is False
    assert record["error_type"] == "NoEntryPoint"
    for expected in ("run(query)", "agent", "handler", "main", "__call__", "AGENTTUI_ENTRYPOINT"):
        assert expected in record["error"]
    assert "no entry point found" in run.stderr


def test_missing_agent_file_exits_2(tmp_path):
    run = run_agent(tmp_path, "def run(q): return q", AGENTTUI_AGENT_PATH=str(tmp_path / "nope.py"))
    assert run.code == 2
    assert "does not exist" in run.record["error"]


def test_record_survives_closed_stdout(tmp_path):
    run = run_agent(
        tmp_path,
        """
        import os, sys
        def run(query):
            print("before close")
            sys.stdout.flush()
            sys.stdout.close()
            os.close(1)
            return "still here"
        """,
    )
    assert run.code == 0, run.stderr
    assert run.record["response"] == "still here"


def test_record_survives_replaced_stdout_and_partial_line(tmp_path):
    run = run_agent(
        tmp_path,
        """
        import io, sys
        def run(query):
            sys.stdout.write("no newline at the end")
            sys.stdout.flush()
            sys.stdout = io.StringIO()
            print("swallowed")
            return "ok"
        """,
    )
    assert run.code == 0, run.stderr
    assert run.record["response"] == "ok"
    assert "no newline at the end\n" in run.stdout  # the record started on a fresh line
    assert "swallowed" not in run.stdout


def test_fake_record_with_wrong_nonce_is_not_taken(tmp_path):
    run = run_agent(
        tmp_path,
        f"""
        def run(query):
            print('{RESULT_TAG} 0123456789abcdef {{"success": true, "response": "forged", "error": null}}')
            return "genuine"
        """,
    )
    forged = [line for line in run.stdout.splitlines() if "forged" in line]
    assert len(forged) == 1
    assert parse_result_line(forged[0], run.nonce) is None
    assert run.record["response"] == "genuine"


def test_non_ascii_and_newlines_stay_on_one_line(tmp_path):
    run = run_agent(tmp_path, "def run(q):\n    return 'line1\\nläuft ✓\\n'\n")
    assert run.record["response"] == "line1\nläuft ✓\n"


def test_a_stray_thread_cannot_hang_the_exit(tmp_path):
    started = time.monotonic()
    run = run_agent(
        tmp_path,
        """
        import threading, time
        def run(query):
            threading.Thread(target=time.sleep, args=(60,)).start()  # not a daemon
            return "answered"
        """,
        AGENTTUI_EXIT_GRACE_S="0.5",
    )
    assert run.code == 0
    assert run.record["response"] == "answered"
    assert time.monotonic() - started < 10


def test_sigterm_still_reports(tmp_path):
    agent = tmp_path / "agent.py"
    agent.write_text("import sys, time\ndef run(q):\n    print('sleeping', flush=True)\n    time.sleep(30)\n")
    (tmp_path / "runner.py").write_text(runner_source())
    nonce = new_nonce()
    proc = subprocess.Popen(
        [sys.executable, str(tmp_path / "runner.py")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={"AGENTTUI_QUERY": "q", "AGENTTUI_RESULT_NONCE": nonce, "PATH": os.environ["PATH"],
             "AGENTTUI_AGENT_PATH": str(agent)},
    )
    assert proc.stdout.readline() == "sleeping\n"
    proc.terminate()
    out, _err = proc.communicate(timeout=10)
    assert proc.returncode == 143
    record = parse_result_line(out.rstrip("\n").rsplit("\n", 1)[-1], nonce)
    assert record["error_type"] == "Terminated"


@pytest.mark.parametrize(
    "junk",
    [
        "",
        "hello world",
        RESULT_TAG,
        f"{RESULT_TAG} ",
        f"{RESULT_TAG} NONCE",
        f"{RESULT_TAG} NONCE {{",
        f'{RESULT_TAG} NONCE {{"success": tru',
        f'{RESULT_TAG} NONCE ["success"]',
        f'{RESULT_TAG} NONCE {{"success": "yes", "response": null, "error": null}}',
        f'{RESULT_TAG} NONCE {{"response": "x"}}',
        f"{RESULT_TAG} NONCE " + "[" * 100_000,
        b"\xff\xfe\x00binary\x80",
        f"{RESULT_TAG} NONCE".encode() + b" \xff\xff",
        None,
    ],
)
def test_parse_result_line_rejects_junk(junk):
    assert parse_result_line(junk, "NONCE") is None


def test_parse_result_line_accepts_valid_record():
    line = f'{RESULT_TAG} NONCE {{"success": true, "response": "r", "error": null}}\r\n'
    assert parse_result_line(line, "NONCE") == {"success": True, "response": "r", "error": None}
    assert parse_result_line(line, "OTHER") is None
    assert parse_result_line(line, "") is None


def _waiting_runner(tmp_path: Path, wait_s: str = "60") -> tuple[subprocess.Popen, Path]:
    """The runner as a warm-pool container runs it: no test yet, a pipe to wait on."""
    runner = tmp_path / "agenttui_harness.py"
    runner.write_text(runner_source())
    signal_path = tmp_path / "job.pipe"
    os.mkfifo(signal_path)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "AGENTTUI_JOB_PIPE": str(signal_path),
        "AGENTTUI_JOB_WAIT_S": wait_s,
        "AGENTTUI_AGENT_PATH": str(tmp_path / "agent.py"),
        "AGENTTUI_EXIT_GRACE_S": "5",
    }
    proc = subprocess.Popen([sys.executable, str(runner)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, cwd=tmp_path)
    return proc, signal_path


def _open_when_listening(signal_path: Path) -> int:
    deadline = time.monotonic() + 20
    while True:
        try:
            return os.open(signal_path, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:
            assert time.monotonic() < deadline, "the runner never opened its pipe"
            time.sleep(0.01)


def test_a_runner_started_ahead_waits_silently_then_runs_the_job_it_is_given(tmp_path):
    proc, signal_path = _waiting_runner(tmp_path)
    try:
        # The host looks whether it is waiting (open + close, no byte): it must keep waiting.
        os.close(_open_when_listening(signal_path))
        time.sleep(0.3)
        assert proc.poll() is None
        # Then the job: the agent, then the test's environment through the pipe (no file).
        (tmp_path / "agent.py").write_text(textwrap.dedent("""
            import os
            print("secret set:", os.environ["MY_KEY"] == "s3cret")
            def run(query):
                return "echo: " + query
        """))
        nonce = new_nonce()
        env = {"AGENTTUI_QUERY": "from the job", "AGENTTUI_RESULT_NONCE": nonce, "MY_KEY": "s3cret"}
        fd = _open_when_listening(signal_path)
        os.write(fd, json.dumps({"env": env}).encode())
        os.close(fd)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        proc.kill()
    run = Run(subprocess.CompletedProcess([], proc.returncode, stdout, stderr), nonce)
    assert run.code == 0, stderr
    assert "secret set: True" in stdout
    assert run.record["success"] is True and run.record["response"] == "echo: from the job"


def test_a_runner_started_ahead_gives_up_when_no_job_comes(tmp_path):
    proc, _signal_path = _waiting_runner(tmp_path, wait_s="1")
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert stdout == "" and stderr == ""  # a container nobody used says nothing
