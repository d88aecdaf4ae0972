"""A suite end to end in real containers (issue 20): a seeded agent whose pass rate per case the
test sets (its model, a fake Ollama on this machine's loopback, answers "right" to a case's query as
many times as the test says, then "wrong"), under provider-only egress, through the installed
command. Baseline 5/5 on every case; candidate 1/5 on three cases and 4/5 on one: exactly the three
are regressions (Fisher's exact test) and `suite run` exits 8. The recorded model calls feed the
trace assertions: a tool call with its arguments, the number of calls, tokens."""

from __future__ import annotations

import asyncio
import json
import subprocess
import textwrap
from collections import Counter

import pytest

from agenttui.core import errors

from ..providers.fakes import FakeOllama, _OllamaHandler

pytestmark = pytest.mark.docker

AGENT = '''import json, os, urllib.request

TOOLS = [{"type": "function", "function": {"name": "lookup", "description": "look a word up",
          "parameters": {"type": "object", "properties": {"query": {"type": "string"}}}}}]


def run(query):
    body = {"model": os.environ["MODEL_ID"], "stream": False, "tools": TOOLS,
            "messages": [{"role": "user", "content": query}]}
    request = urllib.request.Request(os.environ["OLLAMA_HOST"] + "/api/chat", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request) as answer:
        return json.load(answer)["message"]["content"]
'''


class _SeededHandler(_OllamaHandler):
    def do_POST(self):
        if self.path != "/api/chat":
            return super().do_POST()
        body = self._body()
        prompt = body["messages"][-1]["content"]
        with self.fake.lock:
            self.fake.calls[prompt] += 1
            right = self.fake.calls[prompt] <= self.fake.config["passes"].get(prompt, 0)
        message = {"role": "assistant", "content": "right" if right else "wrong",
                   "tool_calls": [{"function": {"name": "lookup", "arguments": {"query": prompt}}}]}
        self._send(200, {"model": body.get("model"), "message": message, "done": True, "done_reason": "stop",
                         "prompt_eval_count": 10, "eval_count": 2})


class SeededOllama(FakeOllama):
    """Answers a query "right" its first `passes[query]` times, then "wrong"."""

    handler = _SeededHandler

    def __init__(self, passes: dict[str, int]):
        import threading

        super().__init__(passes=passes)
        self.calls: Counter[str] = Counter()
        self.lock = threading.Lock()


CASES = ["c1", "c2", "c3", "c4"]


def suite(tmp_path, name: str, extra: str = "") -> str:
    (tmp_path / "agent.py").write_text(AGENT)
    body = textwrap.dedent('''
        name = "seeded"
        agent = "agent.py"
        egress = "provider-only"
        timeout = 60
        repeat = 5
    ''') + "".join(f'''
[[case]]
id = "{case}"
query = "question {case}"
[[case.expect]]
type = "equals"
value = "right"
[[case.expect]]
type = "tool-called"
name = "lookup"
arguments = {{ query = "question {case}" }}
[[case.expect]]
type = "max-model-calls"
value = 1
''' for case in CASES) + extra
    path = tmp_path / name
    path.write_text(body)
    return str(path)


TRACE_CASE = '''
[[case]]
id = "trace"
query = "question trace"
[[case.expect]]
type = "tool-called"
name = "lookup"
arguments = { query = "something else" }
[[case.expect]]
type = "max-tokens"
value = 5
'''


def test_a_seeded_agent_regresses_on_exactly_three_cases(agenttui_cmd, tmp_path, monkeypatch):
    monkeypatch.setenv("AGENTTUI_MAX_CONCURRENT", "4")

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*agenttui_cmd, *args], capture_output=True, text=True, timeout=900)

    # One fake for both runs (the server reads its endpoint once); the test sets its plan per run.
    with SeededOllama({f"question {case}": 5 for case in CASES}) as fake:
        monkeypatch.setenv("AGENTTUI_OLLAMA_URL", fake.url)
        base = cli("suite", "run", suite(tmp_path, "base.toml"))
        assert base.returncode == 0, base.stdout + base.stderr[-3000:]
        assert fake.calls == {f"question {case}": 5 for case in CASES}
        base_id = int(base.stderr.split("suite run ", 1)[1].split()[0])
        assert cli("suite", "bless", str(base_id)).returncode == 0

        with fake.lock:
            fake.config["passes"] = {"question c1": 1, "question c2": 1, "question c3": 1, "question c4": 4}
            fake.calls.clear()
        junit = tmp_path / "report.xml"
        worse = cli("suite", "run", suite(tmp_path, "worse.toml", TRACE_CASE), "--json", "--junit", str(junit))
    assert worse.returncode == errors.REGRESSIONS_FOUND.exit == 8, worse.stdout[-3000:] + worse.stderr[-3000:]
    ended = [line for line in worse.stderr.splitlines() if line.startswith("[")]
    assert len(ended) == 25
    failing = Counter(line.split("] ", 1)[1].split(" #", 1)[0] for line in ended if "FAIL: " in line)
    assert failing == {"c1": 4, "c2": 4, "c3": 4, "c4": 1, "trace": 5}, ended
    assert any("FAIL: equals 'right': the response was 'wrong'" in line for line in ended)
    trace_line = next(line for line in ended if line.split("] ", 1)[1].startswith("trace"))
    assert ('tool-called lookup with {"query": "something else"}: it was called with' in trace_line
            and "question trace" in trace_line), trace_line
    assert "max-tokens 5: it was 12" in trace_line, trace_line
    json.loads(worse.stdout)  # --json: one JSON object on stdout, the progress on stderr
    worse_id = int(worse.stderr.split("suite run ", 1)[1].split()[0])
    comparison = asyncio.run(compare_runs(base_id, worse_id))
    assert sorted(v.case_id for v in comparison.regressions) == ["c1", "c2", "c3"], comparison.cases
    kinds = {v.case_id: v.kind for v in comparison.cases}
    assert kinds["c4"] == "unchanged" and kinds["trace"] == "new", kinds
    from junitparser import JUnitXml

    cases = [case for suite in JUnitXml.fromfile(str(junit)) for case in suite] if junit.exists() else []
    assert len(cases) == 25, "a JUnit testcase per case x repeat"


async def compare_runs(baseline_id: int, candidate_id: int):
    from agenttui.client.remote import SocketClient
    from agenttui.core.config import load_settings
    from agenttui.suites.compare import compare
    from agenttui.suites.runner import build_report

    async with SocketClient(load_settings()) as client:
        baseline = await build_report(client, await client.suite_run(baseline_id))
        candidate = await build_report(client, await client.suite_run(candidate_id))
    return compare(baseline, candidate)
