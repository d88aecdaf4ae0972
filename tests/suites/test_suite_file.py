"""The suite file (issue 20): every problem named by its case and field, all at once; each
assertion kind's failure reason says what was expected and what the test gave."""

from __future__ import annotations

import json

import pytest

from agenttui.suites.assertions import Assertion, Outcome, evaluate, parse_assertion
from agenttui.suites.file import Suite, SuiteFileError, load_suite

AGENT = "def run(query):\n    return query\n"


def write(tmp_path, text: str):
    (tmp_path / "agent.py").write_text(AGENT)
    path = tmp_path / "suite.toml"
    path.write_text(text)
    return path


def test_a_good_suite_reads_with_its_overrides_and_round_trips(tmp_path):
    path = write(tmp_path, '''
name = "greeter"
agent = "agent.py"
timeout = 60
repeat = 3

[[case]]
id = "greets"
query = "hello"
[[case.expect]]
type = "contains"
value = ["hello", "hi"]
match = "any"

[[case]]
id = "slow"
query = "wait"
timeout = 120
memory = 512
[[case.expect]]
type = "outcome"
value = "timed-out"
''')
    suite = load_suite(path)
    assert (suite.name, suite.repeat, [c.id for c in suite.cases]) == ("greeter", 3, ["greets", "slow"])
    assert suite.cases[0].request["timeout_s"] == 60 and suite.cases[1].request["timeout_s"] == 120
    assert suite.cases[1].request["limits"] == {"memory_mb": 512}
    assert suite.cases[1].expect == [Assertion("outcome", {"value": "timed_out"})]
    again = Suite.from_json(suite.to_json())
    assert again.to_json() == suite.to_json()
    assert load_suite(path, repeat=5, only=["slow"]).repeat == 5


def test_every_problem_is_named_by_case_and_field(tmp_path):
    path = write(tmp_path, '''
agent = "agent.py"
colour = "blue"

[[case]]
id = "greets"
query = "hello"
timeout = 5
[[case.expect]]
type = "contains"
value = "x"
[[case.expect]]
type = "regex"
value = "ab(c"

[[case]]
id = "greets"
query = ""
[[case.expect]]
type = "json-schema"
schema = { type = "no-such-type" }

[[case]]
query = "no id"
agent = "missing.py"
[[case.expect]]
type = "guess"
''')
    with pytest.raises(SuiteFileError) as caught:
        load_suite(path)
    problems = caught.value.problems
    assert any(p.startswith("colour: not a suite key") for p in problems), problems
    assert any(p.startswith('case "greets" timeout: must be between 10 s and 600 s') for p in problems), problems
    assert any(p.startswith('case "greets" expect[2] regex value: \'ab(c\' is not a valid regular expression')
               for p in problems), problems
    assert any(p.startswith('case "greets" id: another case has the same id') for p in problems), problems
    assert any(p.startswith('case "greets" query: must be 1–2000 characters') for p in problems), problems
    assert any(p.startswith('case "greets" expect[1] json-schema schema: not a valid JSON Schema')
               for p in problems), problems
    assert any(p.startswith("case[3] id: every case needs an id") for p in problems), problems
    assert any(p.startswith("case[3] agent: no such file") for p in problems), problems
    assert any(p.startswith("case[3] expect[1] type: must be one of equals") for p in problems), problems
    assert "Traceback" not in str(caught.value) and "nothing was queued" in str(caught.value)


def test_broken_toml_and_no_cases_are_said_plainly(tmp_path):
    with pytest.raises(SuiteFileError, match="not valid TOML"):
        load_suite(write(tmp_path, "name = \n"))
    with pytest.raises(SuiteFileError, match="the suite has no cases"):
        load_suite(write(tmp_path, 'agent = "agent.py"\n'))


def reasons(table: dict, **outcome) -> list[str]:
    return evaluate([parse_assertion(table)], Outcome(**{"status": "COMPLETED", "response": "", **outcome}))


def test_each_assertion_kind_passes_and_fails_with_a_reason():
    assert reasons({"type": "equals", "value": "Paris"}, response=" Paris\n") == []
    assert reasons({"type": "equals", "value": "Paris"}, response="Lyon") == [
        "equals 'Paris': the response was 'Lyon'"]
    assert reasons({"type": "contains", "value": ["a", "b"], "match": "all"}, response="a") == [
        "contains all of 'b': not found in 'a'"]
    assert reasons({"type": "contains", "value": "PARIS", "ignore_case": True}, response="paris") == []
    assert reasons({"type": "not-contains", "value": "sorry"}, response="Sorry, no", ) == []
    assert reasons({"type": "not-contains", "value": "sorry", "ignore_case": True}, response="Sorry, no") == [
        "not-contains 'sorry': found in 'Sorry, no'"]
    long = "x" * 500
    (regex,) = reasons({"type": "regex", "value": "ab+c"}, response=long)
    assert regex.startswith("regex 'ab+c' did not match 'xxx") and regex.endswith("(500 characters)")
    assert len(regex) < 260
    schema = {"type": "json-schema", "schema": {"type": "object", "required": ["city"],
                                                "properties": {"city": {"type": "string"}}}}
    assert reasons(schema, response=json.dumps({"city": "Paris"})) == []
    assert reasons(schema, response=json.dumps({"city": 3})) == ["json-schema: at city: 3 is not of type 'string'"]
    assert reasons(schema, response="not json")[0].startswith("json-schema: the response is not JSON")
    assert reasons({"type": "outcome", "value": "failed"}, status="FAILED") == []
    assert reasons({"type": "outcome", "value": "timed_out"}) == [
        "outcome: expected timed_out, the test ended completed"]
    calls = [{"kind": "call", "tool_calls": [{"name": "lookup", "arguments": '{"query": "x"}'}]}]
    assert reasons({"type": "tool-called", "name": "lookup", "arguments": {"query": "x"}}, calls=calls) == []
    assert reasons({"type": "tool-called", "name": "search"}, calls=calls) == [
        "tool-called search: not called (tools called: lookup; 1 model calls recorded)"]
    assert reasons({"type": "tool-called", "name": "lookup", "arguments": {"query": "y"}}, calls=calls)[0].startswith(
        'tool-called lookup with {"query": "y"}: it was called with')
    assert reasons({"type": "max-model-calls", "value": 0}, calls=calls) == ["max-model-calls 0: it was 1"]
    assert reasons({"type": "max-tokens", "value": 10}, tokens=11) == ["max-tokens 10: it was 11"]
    assert reasons({"type": "max-tokens", "value": 10}) == ["max-tokens 10: not measured for this test"]
    assert reasons({"type": "max-cost", "value": 0.01}, cost_usd=0.5) == ["max-cost 0.01 USD: it was 0.5 USD"]
    assert reasons({"type": "max-latency", "value": 1}, duration_s=2.5) == ["max-latency 1 s: it was 2.5 s"]
    # A text assertion on a test that did not complete says so first.
    assert reasons({"type": "contains", "value": "x"}, status="FAILED", response=None)[0] == (
        "outcome: expected completed, the test ended failed")


def test_the_worked_example_reads_and_its_agent_passes_every_case():
    """examples/suite/ (docs/suites.md): the file is valid and its agent meets each assertion."""
    import importlib.util
    from pathlib import Path

    folder = Path(__file__).parents[2] / "examples" / "suite"
    spec = importlib.util.spec_from_file_location("example_agent", folder / "agent.py")
    agent = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(agent)
    suite = load_suite(folder / "suite.toml")
    assert len(suite.cases) == 6
    modules = {}
    for name in ("runner", "grading"):
        module_spec = importlib.util.spec_from_file_location(
            f"example_{name}", Path(__file__).parents[2] / "src" / "agenttui" / "harness" / f"{name}.py")
        modules[name] = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(modules[name])
    harness, grading = modules["runner"], modules["grading"]
    for case in suite.cases:
        response = agent.run(case.query)
        record = grading._scorer_record(harness, {"response": response, "load_s": 0.1, "run_s": 0.1}, 0)
        # Its scorers as the harness runs them in the test's sandbox.
        scores = [grading.run_scorer(harness, s, response, record) for s in case.request.get("scorers", [])]
        assert evaluate(case.expect, Outcome("COMPLETED", response, duration_s=1.0, scores=scores)) == [], case.id


def test_secret_values_are_never_in_the_stored_suite_and_come_back_from_the_environment(tmp_path):
    from agenttui.suites.file import with_secret_values

    path = write(tmp_path, '''
agent = "agent.py"
provider = "openai"
model = "gpt-4o-mini"
options = { OPENAI_BASE_URL = "http://127.0.0.1:9/v1", OPENAI_API_KEY = "sk-canary-5150" }
[[case]]
id = "a"
query = "hi"
''')
    suite = load_suite(path)
    stored = suite.to_json()
    assert "sk-canary-5150" not in stored
    request = Suite.from_json(stored).case("a").request
    assert request["provider"]["secrets"] == ["OPENAI_API_KEY"] and "OPENAI_API_KEY" not in request["provider"]["options"]
    with pytest.raises(ValueError, match='case "a" needs OPENAI_API_KEY: secret values are never stored'):
        with_secret_values("a", request, {})
    again = with_secret_values("a", request, {"OPENAI_API_KEY": "sk-new"})
    assert again["provider"]["options"]["OPENAI_API_KEY"] == "sk-new" and again["provider"]["secrets"] == []
    from agenttui.core.domain import TestRequest

    TestRequest.parse(**again)  # a valid request again


def test_a_run_too_large_or_an_id_too_long_is_refused(tmp_path):
    body = 'agent = "agent.py"\nrepeat = 100\n' + "".join(f'[[case]]\nid = "c{n}"\nquery = "q"\n' for n in range(101))
    body += '[[case]]\nid = "' + "x" * 300 + '"\nquery = "q"\n'
    with pytest.raises(SuiteFileError) as caught:
        load_suite(write(tmp_path, body))
    assert any(p.startswith("repeat: 102 cases × 100 repeats are 10,200 tests; a run holds at most 10,000")
               for p in caught.value.problems), caught.value.problems
    assert any("id: must be at most 200 characters; it has 300" in p for p in caught.value.problems)
