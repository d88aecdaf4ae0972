"""A suite's Python scorers and model-graded rubrics in real containers, through the installed
`agenttui suite run` (issue 20). The scorer runs in the test's own sandbox once the agent's result
is out; its verdict (or the last line of its traceback) reaches the report. Each kind is shown
passing and failing with the reason a user needs."""

from __future__ import annotations

import asyncio
import json
import subprocess
import textwrap

import pytest

pytestmark = pytest.mark.docker

AGENT = '''def run(query):
    if query == "boom":
        raise RuntimeError("the agent broke")
    return query
'''

SCORERS = '''
def greets(response, test):
    assert test["outcome"] == "completed" and test["exit_code"] == 0 and test["response"] == response
    assert test["duration_s"] >= 0 and test["model_calls"] is None
    return "Ada" in response, "the greeting names Ada" if "Ada" in response else "nobody named Ada"


def names(response, test):
    found = [name for name in ("Ada", "Grace") if name in response]
    return len(found) / 2, "names " + (", ".join(found) or "nobody") + " of Ada, Grace"


def broken(response, test):
    return test["names"]


def vague(response, test):
    return "yes"


def failure_seen(response, test):
    return {"passed": test["outcome"] == "failed" and test["exit_code"] == 1
            and test["error"] == "RuntimeError: the agent broke", "reason": "saw " + test["outcome"]}
'''


def case(case_id: str, query: str, *expects: str) -> str:
    return f'\n[[case]]\nid = "{case_id}"\nquery = "{query}"\n' + "".join(
        f"[[case.expect]]\n{textwrap.dedent(e).strip()}\n" for e in expects)


SCORER_SUITE = 'name = "scored"\nagent = "agent.py"\negress = "none"\ntimeout = 60\n' + "".join([
    case("greets", "hello Ada", 'type = "scorer"\nvalue = "check.py:greets"',
         'type = "scorer"\nvalue = "check.py:names"'),
    case("nobody", "hello Bob", 'type = "scorer"\nvalue = "check.py:greets"'),
    case("low-score", "hello Ada", 'type = "scorer"\nvalue = "check.py:names"\nthreshold = 0.8'),
    case("raises", "hello", 'type = "scorer"\nvalue = "check.py:broken"'),
    case("garbage", "hello", 'type = "scorer"\nvalue = "check.py:vague"'),
    case("agent-fails", "boom", 'type = "outcome"\nvalue = "failed"', 'type = "scorer"\nvalue = "check.py:failure_seen"'),
])


def test_python_scorers_run_in_the_sandbox_and_say_why_they_failed(agenttui_cmd, tmp_path, monkeypatch):
    monkeypatch.setenv("AGENTTUI_MAX_CONCURRENT", "3")
    (tmp_path / "agent.py").write_text(AGENT)
    (tmp_path / "check.py").write_text(SCORERS)
    path = tmp_path / "suite.toml"
    path.write_text(SCORER_SUITE)
    done = subprocess.run([*agenttui_cmd, "suite", "run", str(path), "--json"], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]  # some cases fail, no baseline
    report = json.loads(done.stdout)
    reasons = {c["case_id"]: c["repeats"][0]["reasons"] for c in report["cases"]}
    statuses = {c["case_id"]: c["repeats"][0]["status"] for c in report["cases"]}
    assert reasons["greets"] == [] and reasons["agent-fails"] == [], reasons
    assert reasons["nobody"] == ["scorer check.py:greets: failed: nobody named Ada"]
    assert reasons["low-score"] == ["scorer check.py:names: score 0.5 < threshold 0.8: names Ada of Ada, Grace"]
    assert reasons["raises"] == ["scorer check.py:broken raised KeyError: 'names' (check.py line 14)"]
    assert reasons["garbage"][0].startswith("scorer check.py:vague: it returned 'yes'; return True/False"), reasons
    # A scorer's failure is its assertion's: the tests themselves ended as their agents did.
    assert statuses == {"greets": "COMPLETED", "nobody": "COMPLETED", "low-score": "COMPLETED",
                        "raises": "COMPLETED", "garbage": "COMPLETED", "agent-fails": "FAILED"}, statuses
    views = asyncio.run(_views([r["test_id"] for c in report["cases"] for r in c["repeats"]]))
    greets = next(v for v in views if v.query == "hello Ada" and len(v.metrics.get("scores") or []) == 2)
    assert greets.response == "hello Ada" and greets.metrics["scores"][1]["score"] == 0.5


async def _views(test_ids):
    from agenttui.client.remote import SocketClient
    from agenttui.core.config import load_settings

    async with SocketClient(load_settings()) as client:
        return [await client.show(test_id) for test_id in test_ids]


JUDGED_AGENT = '''import json, os, urllib.request


def run(query):
    body = {"model": os.environ["MODEL_ID"], "stream": False, "messages": [{"role": "user", "content": query}]}
    request = urllib.request.Request(os.environ["OLLAMA_HOST"] + "/api/chat", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    urllib.request.urlopen(request).read()  # one call of its own, recorded as the agent's
    return query
'''

RUBRIC_SUITE = '''name = "judged"
agent = "agent.py"
egress = "provider-only"
model = "agent-model"
timeout = 60

[judge]
model = "judge-model"
''' + "".join([
    case("meets", "Hello Ada", 'type = "rubric"\nvalue = \'the answer greets "Ada"\'',
         'type = "max-model-calls"\nvalue = 1'),
    case("misses", "Hello Bob", 'type = "rubric"\nvalue = \'the answer greets "Ada"\''),
    case("scored", "Hello Ada", 'type = "rubric"\nvalue = \'score how many of "Ada" and "Grace" it greets\'\n'
         'threshold = 0.8'),
    case("rambles", "Hello Ada", 'type = "rubric"\nvalue = "ramble about it"'),
])


def test_a_rubric_is_graded_by_a_judge_model_whose_calls_are_recorded_apart(agenttui_cmd, tmp_path, monkeypatch):
    from ..providers.fakes import JudgingOllama

    monkeypatch.setenv("AGENTTUI_MAX_CONCURRENT", "4")
    (tmp_path / "agent.py").write_text(JUDGED_AGENT)
    path = tmp_path / "suite.toml"
    path.write_text(RUBRIC_SUITE)
    with JudgingOllama() as fake:
        monkeypatch.setenv("AGENTTUI_OLLAMA_URL", fake.url)
        done = subprocess.run([*agenttui_cmd, "suite", "run", str(path), "--json"], capture_output=True, text=True,
                              timeout=600)
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    assert sorted(fake.judged) == sorted([('the answer greets "Ada"', "Hello Ada"),
                                          ('the answer greets "Ada"', "Hello Bob"),
                                          ('score how many of "Ada" and "Grace" it greets', "Hello Ada"),
                                          ("ramble about it", "Hello Ada")])
    report = json.loads(done.stdout)
    reasons = {c["case_id"]: c["repeats"][0]["reasons"] for c in report["cases"]}
    assert reasons["meets"] == [], reasons  # and max-model-calls 1: the judge's call is not the agent's
    assert reasons["misses"] == ["rubric 'the answer greets \"Ada\"': the judge (ollama judge-model) said FAIL: "
                                 "the answer does not mention Ada"]
    assert reasons["scored"] == ["rubric 'score how many of \"Ada\" and \"Grace\" it greets': the judge "
                                 "(ollama judge-model) scored 0.5 < threshold 0.8: The answer mentions 1 of 2."]
    assert reasons["rambles"] == ["rubric 'ramble about it': the judge's answer has no PASS, FAIL or SCORE on its "
                                  "first line: 'Well, it depends on how you look at it.' (judge ollama judge-model)"]
    meets = next(c for c in report["cases"] if c["case_id"] == "meets")["repeats"][0]
    trace = asyncio.run(_trace(meets["test_id"]))
    kinds = [(c.kind, c.model) for c in trace.calls]
    assert kinds == [("call", "agent-model"), ("judge", "judge-model")], kinds
    judge = trace.calls[1]
    assert judge.tokens_in and judge.tokens_out and judge.cost_usd == 0.0  # priced (Ollama is free), on its own row
    assert trace.totals.calls == 1 and meets["tokens_in"] == trace.calls[0].tokens_in  # the agent's totals alone
    shown = subprocess.run([*agenttui_cmd, "trace", str(meets["test_id"])], capture_output=True, text=True, timeout=60)
    assert "judge: ollama  judge-model  200" in shown.stdout, shown.stdout


async def _trace(test_id):
    from agenttui.client.remote import SocketClient
    from agenttui.core.config import load_settings

    async with SocketClient(load_settings()) as client:
        return await client.trace(test_id)
