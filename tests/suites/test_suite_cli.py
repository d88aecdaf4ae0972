"""`agenttui suite` through the installed command against a real server (issue 20). The noop
backend answers "noop: <query>" at once (or after noop_run_s): what is tested is the suite's run,
its store, its judging and its exit codes, not Docker (tests/suites/test_suite_docker.py is)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import textwrap

import pytest

from agenttui.core.config import runtime_dir

from ..helpers import wait_for

AGENT = "def run(query):\n    return query\n"


@pytest.fixture
def agenttui(agenttui_cmd, monkeypatch):
    monkeypatch.setenv("AGENTTUI_BACKEND", "noop")
    monkeypatch.setenv("AGENTTUI_MAX_CONCURRENT", "8")

    def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([*agenttui_cmd, *args], capture_output=True, text=True, timeout=timeout)

    return run


def suite_file(tmp_path, body: str, name: str = "suite.toml"):
    (tmp_path / "agent.py").write_text(AGENT)
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


def run_id_of(stderr: str) -> int:
    line = next(line for line in stderr.splitlines() if "suite run " in line)
    return int(line.split("suite run ", 1)[1].split()[0])


async def slots_of(run_id: int):
    from agenttui.client.remote import SocketClient
    from agenttui.core.config import load_settings

    async with SocketClient(load_settings()) as client:
        run = await client.suite_run(run_id)
        views = {s.test_id: await client.show(s.test_id) for s in run.slots if s.test_id is not None}
        history = await client.history(limit=1000)
    return run, views, history


async def compare_runs(baseline_id: int, candidate_id: int):
    from agenttui.client.remote import SocketClient
    from agenttui.core.config import load_settings
    from agenttui.suites.compare import compare
    from agenttui.suites.runner import build_report

    async with SocketClient(load_settings()) as client:
        baseline = await build_report(client, await client.suite_run(baseline_id))
        candidate = await build_report(client, await client.suite_run(candidate_id))
    return compare(baseline, candidate)


ASSERTIONS = '''
name = "kinds"
agent = "agent.py"

[[case]]
id = "passes"
query = "hi"
[[case.expect]]
type = "contains"
value = "noop: hi"

[[case]]
id = "equals"
query = "hi"
[[case.expect]]
type = "equals"
value = "noop: hello"

[[case]]
id = "contains"
query = "hi"
[[case.expect]]
type = "contains"
value = ["bye", "ciao"]
match = "all"

[[case]]
id = "not-contains"
query = "hi"
[[case.expect]]
type = "not-contains"
value = "NOOP"
ignore_case = true

[[case]]
id = "regex"
query = "hi"
[[case.expect]]
type = "regex"
value = '^\\d+$'

[[case]]
id = "json-schema"
query = '{"city": 3}'
[[case.expect]]
type = "json-schema"
schema = { type = "object" }

[[case]]
id = "outcome"
query = "hi"
[[case.expect]]
type = "outcome"
value = "failed"

[[case]]
id = "tool-called"
query = "hi"
[[case.expect]]
type = "tool-called"
name = "lookup"

[[case]]
id = "max-tokens"
query = "hi"
[[case.expect]]
type = "max-tokens"
value = 100

[[case]]
id = "max-latency"
query = "hi"
[[case.expect]]
type = "max-latency"
value = 0.05
'''

REASONS = {
    "equals": "equals 'noop: hello': the response was 'noop: hi'",
    "contains": "contains all of 'bye', 'ciao': not found in 'noop: hi'",
    "not-contains": "not-contains 'NOOP': found in 'noop: hi'",
    "regex": "regex '^\\d+$' did not match 'noop: hi'",
    "json-schema": "json-schema: the response is not JSON (Expecting value at character 0): 'noop: {\"city\": 3}'",
    "outcome": "outcome: expected failed, the test ended completed",
    "tool-called": "tool-called lookup: not called (tools called: none; 0 model calls recorded)",
    "max-tokens": "max-tokens 100: not measured for this test",
    "max-latency": "max-latency 0.05 s: it was ",
}


def test_each_assertion_is_shown_failing_with_its_reason(agenttui, tmp_path, monkeypatch):
    monkeypatch.setenv("AGENTTUI_NOOP_RUN_S", "0.3")
    path = suite_file(tmp_path, ASSERTIONS)
    done = agenttui("suite", "run", str(path), "--json")
    assert done.returncode == 1, done.stderr  # no baseline, and cases fail: the agent's failure code
    progress = [line for line in done.stderr.splitlines() if line.startswith("[")]
    assert len(progress) == 10, done.stderr  # one plain line per ended test when piped
    by_case = {line.split("] ", 1)[1].split(" #", 1)[0]: line for line in progress}
    assert by_case["passes"].endswith(": pass")
    for case, reason in REASONS.items():
        assert "FAIL: " + reason in by_case[case], (case, by_case[case])
    run_id = run_id_of(done.stderr)
    run, views, _history = asyncio.run(slots_of(run_id))
    assert sorted(s.case_id for s in run.slots) == sorted(["passes", *REASONS])
    assert all(v.status.value == "COMPLETED" for v in views.values())
    listed = agenttui("suite", "list", "--json")
    assert [r["id"] for r in json.loads(listed.stdout)] == [run_id] and json.loads(listed.stdout)[0]["name"] == "kinds"


def test_an_invalid_suite_names_case_and_field_and_queues_nothing(agenttui, tmp_path):
    path = suite_file(tmp_path, '''
        agent = "agent.py"
        [[case]]
        id = "greets"
        query = "hello"
        cpus = 0
        [[case.expect]]
        type = "contains"
        value = "x"
        [[case.expect]]
        type = "regex"
        value = "(unclosed"
        [[case]]
        id = "empty"
        query = ""
    ''')
    done = agenttui("suite", "run", str(path))
    assert done.returncode == 2, done.stderr
    assert "nothing was queued" in done.stderr and "Traceback" not in done.stderr
    assert 'case "greets" cpus: must be more than 0' in done.stderr
    assert 'case "greets" expect[2] regex value: \'(unclosed\' is not a valid regular expression' in done.stderr
    assert 'case "empty" query: must be 1–2000 characters; it is empty' in done.stderr
    unknown = agenttui("suite", "run", str(suite_file(tmp_path, ASSERTIONS, "k.toml")), "--case", "nope")
    assert unknown.returncode == 2 and "--case nope: no case has this id" in unknown.stderr
    queue = json.loads(agenttui("queue", "--json").stdout)
    assert queue["running"] + queue["queued"] == 0 and agenttui("suite", "list", "--json").stdout.strip() == "[]"


BASELINE = '''
name = "regress"
agent = "agent.py"
repeat = 5
''' + "".join(f'''
[[case]]
id = "c{n}"
query = "{{query{n}}}"
[[case.expect]]
type = "contains"
value = "good"
''' for n in range(1, 6))


def suite_with(tmp_path, bad: set[int], name: str):
    text = BASELINE
    for n in range(1, 6):
        text = text.replace(f"{{query{n}}}", "bad" if n in bad else "good")
    return suite_file(tmp_path, text, name)


def test_regressions_against_the_baseline_exit_8_and_an_equal_run_exits_0(agenttui, tmp_path):
    base = agenttui("suite", "run", str(suite_with(tmp_path, set(), "base.toml")))
    assert base.returncode == 0, base.stderr
    base_id = run_id_of(base.stderr)
    blessed = agenttui("suite", "bless", str(base_id))
    assert blessed.returncode == 0 and f"suite run {base_id} is now the baseline of 'regress'" in blessed.stdout
    same = agenttui("suite", "run", str(suite_with(tmp_path, set(), "same.toml")))
    assert same.returncode == 0, same.stdout + same.stderr
    worse = agenttui("suite", "run", str(suite_with(tmp_path, {1, 3, 4}, "worse.toml")), "--json")
    assert worse.returncode == 8, worse.stdout + worse.stderr
    json.loads(worse.stdout)  # --json: one JSON object on stdout
    # Exactly the three cases that went from 5/5 to 0/5 are regressions.
    worse_id = run_id_of(worse.stderr)
    comparison = asyncio.run(compare_runs(base_id, worse_id))
    assert sorted(v.case_id for v in comparison.regressions) == ["c1", "c3", "c4"], comparison.cases
    shown = agenttui("suite", "show", str(worse_id))
    assert shown.returncode == 0, shown.stderr
    diff = agenttui("suite", "diff", str(base_id), str(worse_id))
    assert diff.returncode == 0, diff.stderr
    for case in ("c1", "c3", "c4"):
        assert case in diff.stdout
    listed = json.loads(agenttui("suite", "list", "--json").stdout)
    assert [r["baseline"] for r in listed] == [False, False, True]


def test_a_run_whose_server_was_killed_is_finished_by_resume_and_no_case_runs_twice(agenttui, agenttui_cmd,
                                                                                      tmp_path, monkeypatch):
    monkeypatch.setenv("AGENTTUI_NOOP_RUN_S", "1")
    monkeypatch.setenv("AGENTTUI_MAX_CONCURRENT", "3")
    body = 'name = "crash"\nagent = "agent.py"\n' + "".join(
        f'[[case]]\nid = "c{n:02}"\nquery = "q{n}"\n[[case.expect]]\ntype = "contains"\nvalue = "noop: q{n}"\n'
        for n in range(12))
    path = suite_file(tmp_path, body)
    first = subprocess.Popen([*agenttui_cmd, "suite", "run", str(path)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    seen: list[str] = []

    def some_ended() -> bool:
        line = first.stderr.readline()
        seen.append(line)
        return line.startswith("[3/")

    wait_for(some_ended, 60)
    server = int((runtime_dir() / "agenttui.sock.lock").read_text())
    # The server and the command following the run die together (a crash, a closed terminal).
    os.kill(server, signal.SIGKILL)
    first.kill()
    first.communicate(timeout=30)
    run_id = run_id_of("".join(seen))
    # Two tests still waiting are cancelled (a user's `agenttui cancel`): resume runs them again.
    run, views, _history = asyncio.run(slots_of(run_id))  # the client starts a new server
    waiting = [s.test_id for s in run.slots if views[s.test_id].status.value == "QUEUED"][-2:]
    assert len(waiting) == 2, {s.case_id: views[s.test_id].status for s in run.slots}
    for test_id in waiting:
        assert agenttui("cancel", str(test_id)).returncode == 0
    resumed = agenttui("suite", "resume", str(run_id), timeout=180)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "2 test(s) queued again" in resumed.stderr, resumed.stderr
    run, views, history = asyncio.run(slots_of(run_id))
    assert sorted(s.case_id for s in run.slots) == [f"c{n:02}" for n in range(12)]  # every case once
    assert all(views[s.test_id].status.value == "COMPLETED" for s in run.slots)
    assert not set(waiting) & {s.test_id for s in run.slots}  # their slots have new tests
    # No case ran to its end twice: one completed test per query.
    completed = [v.query for v in history if v.status.value == "COMPLETED"]
    assert sorted(completed) == sorted(f"q{n}" for n in range(12)), completed
    again = agenttui("suite", "resume", str(run_id))
    assert again.returncode == 0 and "0 test(s) queued again" in again.stderr


def test_a_run_with_a_cancelled_test_exits_3_and_names_resume(agenttui, agenttui_cmd, tmp_path, monkeypatch):
    monkeypatch.setenv("AGENTTUI_NOOP_RUN_S", "0.5")
    monkeypatch.setenv("AGENTTUI_MAX_CONCURRENT", "1")
    body = 'name = "cut"\nagent = "agent.py"\n' + "".join(
        f'[[case]]\nid = "c{n}"\nquery = "q{n}"\n' for n in range(3))
    path = suite_file(tmp_path, body)
    following = subprocess.Popen([*agenttui_cmd, "suite", "run", str(path)], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
    first_line = following.stderr.readline()
    run_id = run_id_of(first_line)
    run, _views, _history = asyncio.run(slots_of(run_id))
    last = max(s.test_id for s in run.slots)
    assert agenttui("cancel", str(last)).returncode == 0
    _out, err = following.communicate(timeout=120)
    assert following.returncode == 3, err
    assert f"1 case run(s) did not finish; `agenttui suite resume {run_id}` runs only those" in err
    resumed = agenttui("suite", "resume", str(run_id))
    assert resumed.returncode == 0 and "1 test(s) queued again" in resumed.stderr, resumed.stderr


def test_a_large_suite_is_one_small_request(agenttui, tmp_path, monkeypatch):
    """200 cases × 5 repeats of a 90 KB agent: the agent's code crosses the socket once (the
    server refuses bodies over 1 MB), and the thousand tests are queued together."""
    monkeypatch.setenv("AGENTTUI_NOOP_RUN_S", "30")  # they stay queued while looked at
    body = 'name = "big"\nagent = "agent.py"\nrepeat = 5\n' + "".join(
        f'[[case]]\nid = "c{n}"\nquery = "question {n}"\n' for n in range(200))
    path = suite_file(tmp_path, body)
    (tmp_path / "agent.py").write_text(AGENT + "# padding\n" * 9000)
    done = agenttui("suite", "run", str(path), "--no-wait")
    assert done.returncode == 0, done.stderr
    run, _views, _history = asyncio.run(slots_of(int(done.stdout)))
    assert len(run.slots) == 1000 and len({s.test_id for s in run.slots}) == 1000
    queue = json.loads(agenttui("queue", "--json").stdout)
    assert queue["running"] + queue["queued"] == 1000


def test_on_a_terminal_the_progress_is_one_bar_that_rewrites_itself(agenttui_cmd, tmp_path, monkeypatch):
    import pty

    monkeypatch.setenv("AGENTTUI_BACKEND", "noop")
    body = 'name = "tty"\nagent = "agent.py"\nrepeat = 2\n[[case]]\nid = "a"\nquery = "q"\n'
    path = suite_file(tmp_path, body)
    leader, follower = pty.openpty()
    done = subprocess.run([*agenttui_cmd, "suite", "run", str(path)], stdin=follower, stdout=subprocess.PIPE,
                          stderr=follower, timeout=120)
    os.close(follower)
    seen = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
        if b"2/2 ended" in seen:
            break
    os.close(leader)
    assert done.returncode == 0, seen
    text = seen.decode()
    assert "\r\x1b[Ksuite run 1 [" in text and "] 2/2 ended, 0 failing" in text, text
    assert "[1/2] a #" not in text  # the plain lines are for pipes


def test_a_suites_api_key_is_stored_nowhere(agenttui, tmp_path, monkeypatch):
    canary = "sk-canary-" + "7Q" * 12
    monkeypatch.setenv("AGENTTUI_NOOP_RUN_S", "0.2")
    path = suite_file(tmp_path, f'''
        name = "keyed"
        agent = "agent.py"
        provider = "openai"
        model = "gpt-4o-mini"
        options = {{ OPENAI_BASE_URL = "http://127.0.0.1:9/v1", OPENAI_API_KEY = "{canary}" }}
        [[case]]
        id = "a"
        query = "hi"
    ''')
    done = agenttui("suite", "run", str(path))
    assert done.returncode == 0, done.stderr
    stored = [p for p in tmp_path.rglob("*") if p.is_file() and p != path]
    assert stored and not [p for p in stored if canary.encode() in p.read_bytes()]
    missing = agenttui("suite", "resume", "1")  # nothing to run again: no key needed
    assert missing.returncode == 0, missing.stderr
