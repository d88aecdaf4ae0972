"""Budgets in a suite file (issue 18, point 4): `max_cost`, `max_tokens`, `max_model_calls` at the
top (every case's tests) and per case (over the top's), a bad one named by case and key."""

from __future__ import annotations

import pytest

from agenttui.suites.file import SuiteFileError, load_suite

SUITE = '''
agent = "agent.py"
max_tokens = 5000
max_model_calls = 4

[[case]]
id = "cheap"
query = "hello"
max_cost = 0.05
[[case.expect]]
type = "contains"
value = "hello"

[[case]]
id = "plain"
query = "hi"
[[case.expect]]
type = "contains"
value = "hi"
'''


def test_budgets_at_the_top_and_per_case(tmp_path):
    (tmp_path / "agent.py").write_text("def run(query):\n    return query\n")
    (tmp_path / "suite.toml").write_text(SUITE)
    suite = load_suite(tmp_path / "suite.toml")
    assert [case.request["budget"] for case in suite.cases] == [
        {"max_tokens": 5000, "max_model_calls": 4, "max_cost_usd": 0.05}, {"max_tokens": 5000, "max_model_calls": 4}]


def test_a_bad_budget_is_named_by_its_case_and_key(tmp_path):
    (tmp_path / "agent.py").write_text("def run(query):\n    return query\n")
    (tmp_path / "suite.toml").write_text(SUITE.replace("max_cost = 0.05", 'max_cost = "lots"'))
    with pytest.raises(SuiteFileError) as caught:
        load_suite(tmp_path / "suite.toml")
    assert any(p.startswith('case "cheap" max_cost: must be a number of US dollars, e.g. 0.50')
               for p in caught.value.problems), caught.value.problems
