"""`suite run --record/--replay DIR` without containers (issue 19): the cassettes' file names, the
flags refused with the fix before anything is queued (through the installed command), and how a
report says its run's model traffic. tests/suites/test_suite_replay_docker.py runs them for real."""

from __future__ import annotations

import subprocess
import textwrap

import pytest

from agenttui.cli.suite_cassettes import cassette_name
from agenttui.suites.report import CaseReport, RepeatResult, SuiteReport, model_traffic, summary_lines, to_json, to_junit

SUITE = '''
name = "taped"
agent = "agent.py"
{egress}

[[case]]
id = "greets"
query = "hi"
'''


def test_a_cassette_is_named_from_its_case_and_repeat_and_no_two_ids_share_one():
    assert cassette_name("greets", 1) == "greets.1.cassette.json"
    assert cassette_name("v2.search-web_1", 12) == "v2.search-web_1.12.cassette.json"
    odd = [cassette_name(case_id, 1) for case_id in ("a/b", "a b", "a?b", "../a", "")]
    assert len(set(odd)) == len(odd)
    for name in odd:
        assert "/" not in name and " " not in name and not name.startswith(".")
    assert len(cassette_name("x" * 200, 10_000)) < 255


@pytest.fixture
def cli(agenttui_cmd, tmp_path):
    (tmp_path / "agent.py").write_text("def run(query):\n    return query\n")

    def run(egress: str, *args: str) -> subprocess.CompletedProcess:
        suite = tmp_path / "suite.toml"
        suite.write_text(textwrap.dedent(SUITE.format(egress=egress)))
        return subprocess.run([*agenttui_cmd, "suite", "run", str(suite), *args], capture_output=True, text=True,
                              timeout=60)

    return run


@pytest.mark.parametrize(("egress", "flags", "says"), [
    ('egress = "provider-only"', ["--record", "{tmp}/t", "--replay", "{tmp}/t"], "give --record DIR or --replay DIR, not both"),
    ('egress = "full"', ["--record", "{tmp}/t"], 'case "greets" egress full: --record and --replay need egress provider-only'),
    ("", ["--replay-mode", "new-calls-live"], "--replay-mode and --replay-realtime go with --replay DIR"),
    ("", ["--replay", "{tmp}/nowhere"], "--replay {tmp}/nowhere: no such folder; record one with `suite run --record DIR`"),
    ("", ["--replay", "{tmp}/agent.py"], "--replay {tmp}/agent.py is a file; suites take a folder"),
    ("", ["--record", "{tmp}/t", "--no-wait"], "drop --no-wait"),
    ("", ["--record", "{tmp}/no/such/t"], "--record {tmp}/no/such/t: the folder {tmp}/no/such does not exist"),
    ("", ["--replay", "{tmp}"], "no cassette for 1 case run(s) (greets.1.cassette.json), nothing was queued"),
])
def test_bad_cassette_flags_are_refused_with_the_fix_and_nothing_queued(cli, tmp_path, egress, flags, says):
    done = cli(egress, *(flag.format(tmp=tmp_path) for flag in flags))
    assert done.returncode == 2, done.stdout + done.stderr
    assert says.format(tmp=tmp_path) in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and "queued (" not in done.stderr  # nothing was queued


def _report(*traffic: str | None) -> SuiteReport:
    repeats = [RepeatResult(i + 1, i + 1, "COMPLETED" if kind else None, True if kind else None, [], "ok",
                            model_traffic=kind) for i, kind in enumerate(traffic)]
    return SuiteReport(5, "taped", "a" * 64, "b" * 64, 0.0, "ada", [CaseReport("greets", "hi", repeats)])


def test_the_report_says_how_the_run_reached_its_model():
    assert model_traffic(_report(None, None)) is None
    assert model_traffic(_report("replayed", "replayed", None)) == "replayed"
    mixed = _report("replayed", "recorded", "replayed")
    assert model_traffic(mixed) == "2 replayed, 1 recorded"
    assert summary_lines(mixed)[0] == "suite 'taped', run 5, model traffic: 2 replayed, 1 recorded"
    assert summary_lines(_report(None))[0] == "suite 'taped', run 5"
    data = to_json(mixed)
    assert data["totals"]["model_traffic"] == "2 replayed, 1 recorded"
    assert [r["model_traffic"] for r in data["cases"][0]["repeats"]] == ["replayed", "recorded", "replayed"]
    assert '<property name="agenttui.model_traffic" value="2 replayed, 1 recorded"' in to_junit(mixed)
