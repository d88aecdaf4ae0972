"""The harness's side of a suite's scorers and rubrics (issue 20, docs/suites.md): a scorer called
in the sandbox after the agent's result is out (its verdict, or the last line of its traceback
naming file and function, never a crash; stopped when it hangs), the record reported again with
the verdicts, and the judge model asked through an OpenAI-compatible endpoint and its answer read."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

HARNESS = Path(__file__).resolve().parents[2] / "src" / "agenttui" / "harness"


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def harness():
    return _load("harness_under_test", HARNESS / "runner.py")


@pytest.fixture(scope="module")
def grading():
    return _load("grading_under_test", HARNESS / "grading.py")


def score(harness, grading, source: str, function: str = "grade", response: str = "hello Ada"):
    record = grading._scorer_record(harness, {"response": response, "load_s": 0.25, "run_s": 0.5, "error": None,
                                              "error_type": None}, 0)
    scorer = {"name": f"check.py:{function}", "filename": "check.py", "source": textwrap.dedent(source),
              "function": function}
    return grading.run_scorer(harness, scorer, response, record)


def test_a_scorer_gets_the_response_and_the_tests_record(harness, grading):
    verdict = score(harness, grading, '''
        def grade(response, test):
            assert test["outcome"] == "completed" and test["exit_code"] == 0 and test["response"] == response
            return test["duration_s"] == 0.75 and "Ada" in response
    ''')
    assert verdict == {"name": "check.py:grade", "passed": True, "score": None, "reason": None}


@pytest.mark.parametrize(("returned", "expected"), [
    ("(0.25, 'names nobody')", {"passed": None, "score": 0.25, "reason": "names nobody"}),
    ("{'score': 0.9, 'reason': 'close', 'passed': False}", {"passed": False, "score": 0.9, "reason": "close"}),
    ("{'passed': True}", {"passed": True, "score": None, "reason": None}),
    ("0.5", {"passed": None, "score": 0.5, "reason": None}),
    ("False", {"passed": False, "score": None, "reason": None}),
    ("(True, 'greets')", {"passed": True, "score": None, "reason": "greets"}),
])
def test_each_verdict_shape_is_read(harness, grading, returned, expected):
    assert score(harness, grading, f"def grade(response, test):\n    return {returned}\n") == {"name": "check.py:grade",
                                                                                        **expected}


def test_a_scorer_that_raises_or_returns_garbage_gives_a_reason_not_a_crash(harness, grading):
    raised = score(harness, grading, '''
        def grade(response, test):
            words = response.split()
            return words[5] == "x"
    ''')
    assert raised == {"name": "check.py:grade",
                      "error": "raised IndexError: list index out of range (check.py line 4)"}
    garbage = score(harness, grading, "def grade(response, test):\n    return 'yes'\n")
    assert garbage["error"].startswith("it returned 'yes'; return True/False, a (score, reason) or (passed, reason) pair")
    nothing = score(harness, grading, "def grade(response, test):\n    pass\n")
    assert nothing["error"].startswith("it returned None;")
    exits = score(harness, grading, "import sys\ndef grade(response, test):\n    sys.exit(3)\n")
    assert exits["error"] == "raised SystemExit: 3 (check.py line 3)"


def test_a_scorer_that_hangs_is_stopped(harness, grading, monkeypatch):
    monkeypatch.setattr(grading, "SCORER_TIMEOUT_S", 0.2)
    verdict = score(harness, grading, "import time\ndef grade(response, test):\n    time.sleep(30)\n")
    assert verdict == {"name": "check.py:grade", "error": "it took more than 0.2 s"}


def test_the_harness_reports_the_agents_record_first_then_again_with_the_scores(tmp_path):
    """The agent's result is out (the host stores it) before any scorer runs; the scorer is not in
    the agent's environment. The harness's files are laid out as a container gets them."""
    from agenttui.harness import RUNNER_FILENAME, harness_files

    for name, text in harness_files().items():
        (tmp_path / name).write_text(text)
    (tmp_path / "agent.py").write_text("import os\ndef run(query):\n    return str('AGENTTUI_SCORERS' in os.environ)\n")
    scorers = [{"name": "check.py:grade", "filename": "check.py", "function": "grade",
                "source": "def grade(response, test):\n    return (0.5, 'half: ' + response)\n"}]
    env = {**os.environ, "AGENTTUI_AGENT_PATH": str(tmp_path / "agent.py"), "AGENTTUI_QUERY": "q",
           "AGENTTUI_RESULT_NONCE": "n0", "AGENTTUI_SCORERS": json.dumps(scorers)}
    done = subprocess.run([sys.executable, str(tmp_path / RUNNER_FILENAME)], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    records = [json.loads(line.split(" ", 2)[2]) for line in done.stdout.splitlines()
               if line.startswith("@@agenttui-result n0 ")]
    assert len(records) == 2 and records[0]["response"] == "False" and "scores" not in records[0]
    assert records[1]["scores"] == [{"name": "check.py:grade", "passed": None, "score": 0.5,
                                     "reason": "half: False"}]


@pytest.mark.parametrize(("answer", "verdict"), [
    ("PASS\nIt greets Ada.", {"passed": True, "score": None, "reason": "It greets Ada."}),
    ("**FAIL**: no greeting", {"passed": False, "score": None, "reason": "no greeting"}),
    ("Verdict: pass - fine", {"passed": True, "score": None, "reason": "fine"}),
    ("SCORE: 0.7\nmostly", {"passed": None, "score": 0.7, "reason": "mostly"}),
    ("Score: 3/4 close", {"passed": None, "score": 0.75, "reason": "close"}),
])
def test_the_judges_answer_is_read(grading, answer, verdict):
    assert grading.parse_judgement(answer) == verdict


def test_a_judges_answer_without_a_verdict_is_named(grading):
    with pytest.raises(grading.BadVerdict, match="the judge's answer has no PASS, FAIL or SCORE on its first line: "
                                                 "'I think so'"):
        grading.parse_judgement("I think so")


def test_the_harness_asks_an_openai_compatible_judge_with_the_cases_key(harness, grading, monkeypatch):
    """The judge's request as a real OpenAI-compatible endpoint takes it (the fake checks the key);
    a refused one is the assertion's reason, never the test's crash."""
    from agenttui.harness import JUDGE_MARK

    from ..providers.fakes import JUDGE_MARK as FAKES_MARK
    from ..providers.fakes import JudgingOpenAI

    assert grading.JUDGE_MARK == JUDGE_MARK == FAKES_MARK
    rubric = {"rubric": 'greets "Ada"', "provider": "openai", "model": "gpt-judge"}
    with JudgingOpenAI(api_key="sk-judge") as fake:
        monkeypatch.setitem(harness._PROVIDER_ENV, "OPENAI_BASE_URL", fake.url + "/v1")
        monkeypatch.setitem(harness._PROVIDER_ENV, "OPENAI_API_KEY", "sk-judge")
        passed = grading.run_rubric(harness, rubric, "say hi", "Hello Ada")
        failed = grading.run_rubric(harness, rubric, "say hi", "Hello Bob")
        monkeypatch.setitem(harness._PROVIDER_ENV, "OPENAI_API_KEY", "sk-wrong")
        refused = grading.run_rubric(harness, rubric, "say hi", "Hello Ada")
    assert fake.requests[0]["body"]["messages"][0]["content"].startswith(JUDGE_MARK)
    assert "RUBRIC:\ngreets \"Ada\"\n\nQUESTION:\nsay hi\n\nANSWER:\nHello Ada" == \
        fake.requests[0]["body"]["messages"][1]["content"]
    assert passed["passed"] is True and passed["judge"] == "openai gpt-judge" and passed["tokens_in"] > 0
    assert failed["passed"] is False and failed["reason"] == "the answer does not mention Ada"
    assert refused["error"] == "the judge did not answer: HTTPError: HTTP Error 401: Unauthorized"
