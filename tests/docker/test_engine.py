"""The engine's "Done means" with real containers, mostly through the real `agenttui` binary."""

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import time

import pytest

from agenttui.backends.docker.images import normalize_requirements, requirements_image_tag
from agenttui.client.local import LocalClient
from agenttui.core.config import data_dir, load_settings
from agenttui.core.domain import Status, TestRequest

from ..conftest import TEST_BASE_IMAGE
from ..helpers import stored_log
from .conftest import container_filters, containers_of, show_json, wait_for

pytestmark = pytest.mark.docker


@pytest.fixture(autouse=True)
def in_process(monkeypatch):
    """These are the engine's tests: the orchestrator runs inside the command (no server)."""
    monkeypatch.setenv("AGENTTUI_IN_PROCESS", "1")

STDLIB_AGENT = """
import platform
def run(query):
    print("thinking about", query)
    return f"{query.upper()} (python {platform.python_version()})"
"""


def db_path():
    return data_dir() / "agenttui.db"


def stored_stdout(test_id: int) -> list[str]:
    return [line.text for line in stored_log(db_path(), test_id) if line.stream == "stdout"]


def test_stdlib_agent_completes_with_its_response_in_json(cli, write_agent):
    agent = write_agent(STDLIB_AGENT)
    result = cli("submit", str(agent), "--query", "hello world", "--json")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)  # stdout is exactly one JSON object
    assert record["status"] == "COMPLETED"
    assert record["response"].startswith("HELLO WORLD (python 3.")
    assert record["exit_code"] == 0 and record["error"] is None
    assert record["duration_s"] > 0 and record["metrics"]["image_built"] is False
    assert {"id", "status", "response", "error", "exit_code", "duration_s", "metrics"} <= set(record)
    assert "thinking about hello world" in result.stderr  # logs streamed while waiting
    assert containers_of(record["id"]) == []  # removed after the end
    # The agent's output as it printed it: no empty line from the harness before its record.
    assert stored_stdout(record["id"]) == ["thinking about hello world"]


def test_a_last_line_without_newline_is_kept_whole(cli, write_agent):
    agent = write_agent('import sys\ndef run(query):\n    sys.stdout.write("no newline at the end")\n    return "ok"\n')
    result = cli("submit", str(agent), "--query", "q", "--json")
    assert result.returncode == 0, result.stderr
    assert stored_stdout(json.loads(result.stdout)["id"]) == ["no newline at the end"]


def test_alias_and_plain_output_stream_the_log(cli, write_agent):
    agent = write_agent(STDLIB_AGENT)
    result = cli("--submit", str(agent), "--query", "alias")
    assert result.returncode == 0, result.stderr
    assert "thinking about alias" in result.stdout
    assert "COMPLETED" in result.stdout and "ALIAS (python" in result.stdout


def test_agent_exception_fails_with_traceback_and_is_not_retried(cli, write_agent):
    agent = write_agent("def run(query):\n    raise ValueError('bad ' + query)\n")
    result = cli("submit", str(agent), "--query", "input", "--json")
    assert result.returncode == 1, result.stderr
    record = json.loads(result.stdout)
    assert record["status"] == "FAILED" and record["attempt"] == 1 and record["failure_kind"] == "agent"
    assert "ValueError: bad input" in record["error"]
    logs = cli("logs", str(record["id"])).stdout
    assert "Traceback (most recent call last)" in logs and "raise ValueError" in logs


def test_invalid_input_exits_2_naming_the_field_and_stores_nothing(cli, write_agent, tmp_path):
    agent = write_agent(STDLIB_AGENT)
    too_short = cli("submit", str(agent), "--query", "x", "--timeout", "5")
    assert too_short.returncode == 2
    assert "--timeout: must be between 10 s and 600 s" in too_short.stderr
    assert "Traceback" not in too_short.stderr
    missing = cli("submit", str(tmp_path / "nope.py"), "--query", "x")
    assert missing.returncode == 2 and "nope.py does not exist" in missing.stderr
    broken = write_agent("def run(:\n", name="broken.py")
    syntax = cli("submit", str(broken), "--query", "x")
    assert syntax.returncode == 2 and "not valid Python: line 1" in syntax.stderr
    history = cli("history", "--json")
    assert json.loads(history.stdout) == []


def test_docker_unreachable_exits_3_with_how_to_start_it(cli, write_agent):
    agent = write_agent(STDLIB_AGENT)
    result = cli("submit", str(agent), "--query", "x", env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert result.returncode == 3, result.stderr
    assert "not reachable" in result.stderr and "start" in result.stderr.lower()
    assert "Traceback" not in result.stderr


def test_timeout_ends_timed_out_on_time_and_removes_the_container(cli, write_agent):
    agent = write_agent("import time\ndef run(query):\n    print('sleeping', flush=True)\n    time.sleep(3600)\n")
    result = cli("submit", str(agent), "--query", "x", "--timeout", "10", "--json")
    assert result.returncode == 4, result.stderr
    record = json.loads(result.stdout)
    assert record["status"] == "TIMED_OUT"
    view = show_json(cli, record["id"])
    assert view["finished_at"] - view["running_at"] <= 10 + 2
    assert containers_of(record["id"]) == []


@pytest.mark.alone  # a latency bound
def test_cancel_from_another_process_ends_cancelled_within_2s(cli, agenttui_cmd, write_agent):
    agent = write_agent("import time\ndef run(query):\n    print('started', flush=True)\n    time.sleep(3600)\n")
    submit = subprocess.Popen([*agenttui_cmd, "submit", str(agent), "--query", "x", "--json"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: db_path().exists(), 30)
        conn = sqlite3.connect(db_path())
        test_id = wait_for(lambda: next((line.test_id for line in stored_log(db_path()) if line.text == "started"
                                         and conn.execute("select status from tests where id=?",
                                                          (line.test_id,)).fetchone()[0] == "RUNNING"), None), 60)
        cancel = subprocess.run([*agenttui_cmd, "cancel", str(test_id)], capture_output=True, text=True, timeout=60)
        assert cancel.returncode == 0, cancel.stderr
        assert f"test {test_id} CANCELLED" in cancel.stdout
        out, err = submit.communicate(timeout=30)
        assert submit.returncode == 5, err
        status, asked, finished = conn.execute(
            "select status, cancel_requested_at, finished_at from tests where id=?", (test_id,)).fetchone()
        assert status == "CANCELLED" and finished - asked < 2.0
        assert containers_of(test_id) == []
    finally:
        if submit.poll() is None:
            submit.kill()


def test_sigkill_of_the_orchestrator_then_adoption_is_gapless(cli, agenttui_cmd, write_agent):
    agent = write_agent(
        "import os, sys, time\n"
        "def run(query):\n"
        "    for i in range(60):\n"
        "        print(f'line {i}', flush=True)\n"
        "        time.sleep(0.1)\n"
        "    sys.stdout.flush()\n"
        "    os._exit(7)  # a distinctive real exit code, read back from the container\n"
    )
    started = time.time()
    submit = subprocess.Popen([*agenttui_cmd, "submit", str(agent), "--query", "x"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: db_path().exists(), 30)
    conn = sqlite3.connect(db_path())
    test_id = wait_for(lambda: next((line.test_id for line in stored_log(db_path()) if line.text == "line 10"), None), 60)
    submit.send_signal(signal.SIGKILL)
    submit.wait()
    assert conn.execute("select status from tests where id=?", (test_id,)).fetchone()[0] == "RUNNING"
    (container,) = containers_of(test_id)
    adopter = subprocess.run([*agenttui_cmd, "worker", "--idle-exit"], capture_output=True, text=True, timeout=120)
    assert adopter.returncode == 0, adopter.stderr
    status, exit_code, attempt = conn.execute(
        "select status, exit_code, attempt from tests where id=?", (test_id,)).fetchone()
    assert (status, exit_code, attempt) == ("FAILED", 7, 1)
    rows = [(line.seq, line.text) for line in stored_log(db_path(), test_id)]
    assert [seq for seq, _ in rows] == list(range(1, len(rows) + 1))
    agent_lines = [text for _, text in rows if text.startswith("line ")]
    assert agent_lines == [f"line {i}" for i in range(60)]  # no gap, no duplicate
    assert any("adopted by" in text for _, text in rows)
    # Exactly one container ever existed for this test, and it is gone now.
    created = subprocess.run(
        ["docker", "events", "--since", str(int(started) - 1), "--until", str(int(time.time()) + 1),
         "--filter", "event=create", *container_filters(test_id), "--format", "{{.ID}}"],
        capture_output=True, text=True, timeout=30).stdout.split()
    assert len(created) == 1 and created[0].startswith(container)
    assert containers_of(test_id) == []


def test_a_flood_through_rotating_log_files_still_reports_its_result(cli, write_agent):
    """Docker's log stream loses the end of a log whose file rotates under a flood (a plain
    `docker logs -f` missed the last line of 4 floods in 5 here), the harness record with it:
    the outcome must still be read. 60 MB through the engine's 3 x 1 MB files, four times."""
    agent = write_agent(
        "import sys\n"
        "def run(query):\n"
        "    line = 'x' * 999 + '\\n'\n"
        "    for _ in range(60_000):\n"
        "        sys.stdout.write(line)\n"
        "    return 'flooded ' + query\n"
    )
    for attempt in range(4):
        result = cli("submit", str(agent), "--query", str(attempt), "--json", env={"AGENTTUI_LOG_MAX_BYTES": "1000000"})
        record = json.loads(result.stdout)
        assert (record["status"], record["response"]) == ("COMPLETED", f"flooded {attempt}"), record["error"]
        assert record["log_truncated"] is True


def test_memory_hog_is_reported_as_oom_with_its_peak(cli, write_agent):
    agent = write_agent(
        "import time\n"
        "def run(query):\n    hog = []\n    while True:\n        hog.append(bytearray(8 * 1024 * 1024))\n"
        "        time.sleep(0.05)\n"
    )
    result = cli("submit", str(agent), "--query", "x", "--memory", "96", "--json")
    assert result.returncode == 1, result.stderr
    record = json.loads(result.stdout)
    assert record["status"] == "FAILED" and record["oom_killed"] is True
    assert "out of memory" in record["error"] and "96 MB" in record["error"]
    assert record["metrics"]["peak_memory_bytes"] >= 80 * 1024 * 1024


def test_fork_bomb_is_contained_by_the_pid_limit(cli, write_agent):
    agent = write_agent(
        "import os, time\n"
        "def run(query):\n"
        "    children = 0\n"
        "    try:\n"
        "        while True:\n"
        "            if os.fork() == 0:\n"
        "                time.sleep(30)\n"
        "                os._exit(0)\n"
        "            children += 1\n"
        "    except OSError as exc:\n"
        "        raise RuntimeError(f'fork failed after {children} children: {exc}')\n"
    )
    result = cli("submit", str(agent), "--query", "x", "--pids", "64", "--json", timeout=120)
    assert result.returncode == 1, result.stderr
    record = json.loads(result.stdout)
    assert record["status"] == "FAILED" and "fork failed after" in record["error"]
    children = int(record["error"].split("after ")[1].split(" ")[0])
    assert children < 64
    assert containers_of(record["id"]) == []


def test_junk_output_and_a_huge_line_are_kept_safely(cli, write_agent):
    agent = write_agent(
        "import sys\n"
        "def run(query):\n"
        "    sys.stdout.buffer.write(b'bin \\xff\\xfe\\x00 junk \\x1b[2J\\n')\n"
        "    sys.stdout.buffer.write(b'A' * (1024 * 1024))\n"
        "    sys.stdout.flush()\n"
        "    sys.stdout.write('\\nafter\\n')\n"
        "    return 'survived'\n"
    )
    result = cli("submit", str(agent), "--query", "x", "--json")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["response"] == "survived"
    logs = cli("logs", str(record["id"])).stdout
    assert "bin" in logs and "\\x1b[2J" in logs  # the escape is shown, not executed
    assert "after" in logs and "line truncated" in logs
    assert max(len(line) for line in logs.splitlines()) < 20_000


def test_cap_holds_for_25_tests_with_cap_3(write_agent):
    """25 tests, cap 3: BUILDING+RUNNING never above 3 (sampled from the store), all finish."""

    async def scenario():
        settings = load_settings(max_concurrent=3)
        request = TestRequest.parse(agent_code="import time\ndef run(q):\n    time.sleep(0.5)\n    return q\n",
                                    query="cap")
        samples: list[int] = []
        async with LocalClient(settings) as client:
            ids = [(await client.submit(request)).id for _ in range(25)]
            conn = sqlite3.connect(db_path())

            async def sample():
                while True:
                    samples.append(conn.execute(
                        "select count(*) from tests where status in ('BUILDING','RUNNING')").fetchone()[0])
                    await asyncio.sleep(0.05)

            sampler = asyncio.create_task(sample())
            views = [await asyncio.wait_for(client.wait(i), 180) for i in ids]
            sampler.cancel()
        assert all(v.status is Status.COMPLETED for v in views)
        assert max(samples) == 3  # the cap was reached and never exceeded
        claims = conn.execute("select max(active_after) from claims").fetchone()[0]
        assert claims <= 3

    asyncio.run(scenario())


def test_retry_creates_a_linked_test_and_keeps_the_original(cli, write_agent):
    agent = write_agent(STDLIB_AGENT)
    first = json.loads(cli("submit", str(agent), "--query", "one", "--json").stdout)
    retried = cli("retry", str(first["id"]), "--query", "two", "--json")
    assert retried.returncode == 0, retried.stderr
    second = json.loads(retried.stdout)
    assert second["id"] != first["id"] and second["parent_id"] == first["id"]
    assert second["response"].startswith("TWO")
    assert show_json(cli, first["id"])["response"].startswith("ONE")


def test_queue_and_history_commands(cli, write_agent):
    agent = write_agent(STDLIB_AGENT)
    done = json.loads(cli("submit", str(agent), "--query", "needle-in-history", "--json").stdout)
    queue = json.loads(cli("queue", "--json").stdout)
    assert {"running", "queued", "cap", "utilization", "tests"} <= set(queue) and queue["cap"] == 10
    found = json.loads(cli("history", "--search", "needle", "--json").stdout)
    assert [h["id"] for h in found] == [done["id"]]
    assert json.loads(cli("history", "--search", "absent-word", "--json").stdout) == []
    unknown = cli("show", "999")
    assert unknown.returncode == 2 and "no test with id 999" in unknown.stderr


def test_requirements_image_is_built_once_then_reused(cli, write_agent, tmp_path):
    agent = write_agent("import six\ndef run(query):\n    return 'six ' + six.__version__\n")
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("six==1.16.0\n")
    # Start from no cached image of these requirements, so the first run must build (the other
    # requirements images stay: later tests reuse them, as a user's runs do).
    base_id = subprocess.run(["docker", "image", "inspect", "--format", "{{.Id}}", TEST_BASE_IMAGE],
                             capture_output=True, text=True, check=True).stdout.strip()
    tag = requirements_image_tag(base_id, normalize_requirements(requirements.read_text()))
    subprocess.run(["docker", "rmi", "-f", tag], capture_output=True)
    first = cli("submit", str(agent), "--requirements", str(requirements), "--query", "x", "--json", timeout=300)
    assert first.returncode == 0, first.stderr
    second = cli("submit", str(agent), "--requirements", str(requirements), "--query", "x", "--json")
    assert second.returncode == 0, second.stderr
    one, two = json.loads(first.stdout), json.loads(second.stdout)
    assert one["response"] == two["response"] == "six 1.16.0"
    assert one["metrics"]["image_built"] is True and one["metrics"]["build_s"] > 0
    assert two["metrics"]["image_built"] is False and two["metrics"]["build_s"] == 0
