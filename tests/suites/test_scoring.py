"""Python scorers and judge rubrics on the suite's side (issue 20): the file's checks of a scorer's
file and function and of the [judge] (every problem named by case and field, exit 2 with nothing
queued), and how a verdict the harness reported becomes an assertion's reason."""

from __future__ import annotations

import json
import textwrap

import pytest

from agenttui.suites.assertions import Outcome, evaluate, parse_assertion
from agenttui.suites.file import SuiteFileError, load_suite

from .test_suite_cli import agenttui  # noqa: F401 (the fixture: the installed command on the noop backend)

def outcome(scores, status="COMPLETED"):
    return Outcome(status=status, response="hi", scores=scores)


def test_the_verdict_becomes_the_assertions_reason():
    strict = parse_assertion({"type": "scorer", "value": "check.py:grade", "threshold": 0.8})
    loose = parse_assertion({"type": "scorer", "value": "check.py:grade"})
    half = [{"name": "check.py:grade", "passed": None, "score": 0.6, "reason": "names Ada only"}]
    assert evaluate([strict], outcome(half)) == ["scorer check.py:grade: score 0.6 < threshold 0.8: names Ada only"]
    assert evaluate([loose], outcome(half)) == []  # the default threshold is 0.5
    failed = [{"name": "check.py:grade", "passed": False, "score": None, "reason": "no greeting"}]
    assert evaluate([loose], outcome(failed)) == ["scorer check.py:grade: failed: no greeting"]
    raised = [{"name": "check.py:grade", "error": "raised KeyError: 'x' (check.py line 2)"}]
    assert evaluate([loose], outcome(raised)) == ["scorer check.py:grade raised KeyError: 'x' (check.py line 2)"]
    assert evaluate([loose], outcome(None, "TIMED_OUT")) == [
        "outcome: expected completed, the test ended timed_out",
        "scorer check.py:grade: no verdict (the test ended timed_out before its scorer ran)"]


def test_a_missing_scorer_file_or_function_names_the_case_and_field(tmp_path):
    (tmp_path / "agent.py").write_text("def run(query):\n    return query\n")
    (tmp_path / "check.py").write_text("import re\ndef grade(response, test):\n    return True\n")
    path = tmp_path / "suite.toml"
    path.write_text(textwrap.dedent('''
        agent = "agent.py"
        [[case]]
        id = "greets"
        query = "hello"
        [[case.expect]]
        type = "scorer"
        value = "check.py:grade"
        [[case.expect]]
        type = "scorer"
        value = "check.py:score"
        [[case.expect]]
        type = "scorer"
        value = "gone.py:grade"
        [[case]]
        id = "bad"
        query = "hello"
        [[case.expect]]
        type = "scorer"
        value = "check.py"
        threshold = "high"
    '''))
    with pytest.raises(SuiteFileError) as caught:
        load_suite(path)
    assert caught.value.problems == [
        'case "greets" expect[2] scorer value: check.py has no function score (it defines: re, grade)',
        f'case "greets" expect[3] scorer value: no such file: {tmp_path / "gone.py"} (the scorer\'s path is '
        'relative to the suite file)',
        'case "bad" expect[1] scorer value: must be FILE.py:FUNCTION (e.g. "check.py:grade"); it is \'check.py\'',
    ]
    path.write_text(path.read_text().replace('value = "check.py:score"', 'value = "check.py:grade"')
                    .replace('value = "gone.py:grade"', 'value = "check.py:grade"')
                    .replace('value = "check.py"\n', 'value = "check.py:grade"\n'))
    with pytest.raises(SuiteFileError) as caught:
        load_suite(path)
    assert caught.value.problems == [
        'case "bad" expect[1] scorer threshold: give the lowest passing score (a number); it is \'high\'']
    path.write_text(path.read_text().replace('threshold = "high"', 'threshold = 0.9'))
    suite = load_suite(path)
    assert [s["name"] for s in suite.cases[0].request["scorers"]] == ["check.py:grade"]  # once per file:function
    assert suite.cases[0].request["scorers"][0]["source"].startswith("import re")


def test_a_missing_scorer_or_a_rubric_without_a_judge_exits_2_and_queues_nothing(agenttui, tmp_path):
    (tmp_path / "agent.py").write_text("def run(query):\n    return query\n")
    (tmp_path / "check.py").write_text("def grade(response, test):\n    return True\n")
    path = tmp_path / "suite.toml"
    path.write_text(textwrap.dedent('''
        agent = "agent.py"
        [[case]]
        id = "scored"
        query = "hello"
        [[case.expect]]
        type = "scorer"
        value = "check.py:missing"
        [[case.expect]]
        type = "scorer"
        value = "nowhere.py:grade"
        [[case]]
        id = "judged"
        query = "hello"
        [[case.expect]]
        type = "contains"
        value = "hello"
        [[case.expect]]
        type = "rubric"
        value = "greets the user"
    '''))
    done = agenttui("suite", "run", str(path))
    assert done.returncode == 2, done.stderr
    assert "nothing was queued" in done.stderr and "Traceback" not in done.stderr
    assert 'case "scored" expect[1] scorer value: check.py has no function missing (it defines: grade)' in done.stderr
    assert f'case "scored" expect[2] scorer value: no such file: {tmp_path / "nowhere.py"}' in done.stderr
    assert 'case "judged" expect[2] rubric: no judge: add a [judge] table at the top of the suite' in done.stderr
    queue = json.loads(agenttui("queue", "--json").stdout)
    assert queue["running"] + queue["queued"] == 0 and agenttui("suite", "list", "--json").stdout.strip() == "[]"


def test_a_judge_is_checked_against_the_catalogue_and_the_cases_provider(tmp_path):
    (tmp_path / "agent.py").write_text("def run(query):\n    return query\n")
    path = tmp_path / "suite.toml"
    rubric_case = '\n[[case]]\nid = "{id}"\nquery = "hi"\n{extra}\n[[case.expect]]\ntype = "rubric"\nvalue = "greets"\n'
    path.write_text('agent = "agent.py"\n[judge]\nprovider = "ollama"\nmodel = "judge"\n'
                    + rubric_case.format(id="other", extra='provider = "openai"\noptions = { OPENAI_BASE_URL = '
                                                           '"http://127.0.0.1:9/v1" }')
                    + rubric_case.format(id="closed", extra='egress = "none"')
                    + rubric_case.format(id="fine", extra='egress = "provider-only"'))
    with pytest.raises(SuiteFileError) as caught:
        load_suite(path)
    assert caught.value.problems == [
        'case "other" provider: the judge\'s provider (ollama) must be the case\'s (openai): the judge reaches its '
        "model through the case's own provider endpoint",
        'case "closed" egress: a rubric\'s judge reaches its model from the sandbox: use provider-only or full '
        "(it is none)"]
    path.write_text('agent = "agent.py"\n[judge]\nprovider = "anthropic"\n' + rubric_case.format(id="a", extra=""))
    with pytest.raises(SuiteFileError) as caught:
        load_suite(path)
    assert caught.value.problems == ["judge model: give the judge's model (e.g. model = \"gpt-4o-mini\")",
                                     "judge provider: must be one of ollama, bedrock, openai; it is 'anthropic'"]
    path.write_text('agent = "agent.py"\n[judge]\nmodel = "judge"\n' + rubric_case.format(id="a", extra=""))
    assert load_suite(path).cases[0].request["rubrics"] == [{"rubric": "greets", "provider": "ollama",
                                                             "model": "judge"}]


def test_a_judge_that_did_not_answer_is_the_assertions_reason():
    refused = {"kind": "rubric", "rubric": 'greets "Ada"', "judge": "openai gpt-judge",
               "error": "the judge did not answer: HTTPError: HTTP Error 401: Unauthorized"}
    spec = parse_assertion({"type": "rubric", "value": 'greets "Ada"'})
    assert evaluate([spec], outcome([refused])) == [
        "rubric 'greets \"Ada\"': the judge did not answer: HTTPError: HTTP Error 401: Unauthorized "
        "(judge openai gpt-judge)"]
    scored = {"kind": "rubric", "rubric": 'greets "Ada"', "judge": "ollama j", "passed": None, "score": 0.75,
              "reason": "close"}
    assert evaluate([spec], outcome([scored])) == []
    strict = parse_assertion({"type": "rubric", "value": 'greets "Ada"', "threshold": 0.9})
    assert evaluate([strict], outcome([scored])) == [
        "rubric 'greets \"Ada\"': the judge (ollama j) scored 0.75 < threshold 0.9: close"]
