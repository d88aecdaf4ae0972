"""The suite reports: JSON, JUnit XML read back by junitparser (as CI servers read it), the HTML
file opened in a real headless browser (Debian's chromium), and the terminal table."""

import json
import shutil
import subprocess
from html.parser import HTMLParser

from junitparser import Failure, JUnitXml, Skipped

from agenttui.suites.compare import compare
from agenttui.suites.report import (
    CaseReport,
    RepeatResult,
    SuiteReport,
    summary_lines,
    to_html,
    to_json,
    to_junit,
)

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def case(case_id: str, passes: int, n: int = 5, pending: int = 0,
         response: str = "Hello <b>world</b> & co") -> CaseReport:
    repeats = [
        RepeatResult(i + 1, 10 + i, "COMPLETED", i < passes,
                     [] if i < passes else [f"regex 'ab+c' did not match 'xyz' (repeat {i + 1})"],
                     response, tokens_in=40, tokens_out=60, cost_usd=0.002, duration_s=1.25)
        for i in range(n)
    ]
    repeats += [RepeatResult(n + i + 1, None, None, None, [], None) for i in range(pending)]
    return CaseReport(case_id, f"say hello ({case_id})", repeats)


def runs() -> tuple[SuiteReport, SuiteReport]:
    baseline = SuiteReport(7, "greetings", "a" * 64, "b" * 64, 1_700_000_000.0, "ana",
                           [case("c1", 5), case("c2", 5), case("c3", 5), case("gone", 5)])
    candidate = SuiteReport(8, "greetings", "a" * 64, "c" * 64, 1_700_000_100.0, "ana",
                            [case("c1", 1), case("c2", 4), case("c3", 5, pending=1),
                             case("fresh", 0, n=2)], baseline_run_id=7)
    return baseline, candidate


def test_junit_is_read_by_junitparser(tmp_path):
    baseline, candidate = runs()
    path = tmp_path / "report.xml"
    path.write_text(to_junit(candidate, compare(baseline, candidate)), encoding="utf-8")
    xml = JUnitXml.fromfile(str(path))
    suites = list(xml)
    assert len(suites) == 1
    suite = suites[0]
    assert suite.name == "greetings"
    cases = list(suite)
    assert len(cases) == 5 + 5 + 6 + 2  # a testcase per case x repeat
    assert {c.classname for c in cases} == {"greetings"}
    by_name = {c.name: c for c in cases}
    assert "c1 #1" in by_name and "c3 #6" in by_name and "fresh #2" in by_name
    assert by_name["c1 #1"].is_passed
    failure = by_name["c1 #2"].result[0]
    assert isinstance(failure, Failure)
    assert failure.message == "regex 'ab+c' did not match 'xyz' (repeat 2)"
    assert isinstance(by_name["c3 #6"].result[0], Skipped)  # not finished
    assert suite.failures == 4 + 1 + 2 and suite.skipped == 1 and suite.tests == 18
    properties = {p.name: p.value for p in suite.properties()}
    assert properties["agenttui.run_id"] == "8"
    assert properties["agenttui.agent_digest"] == "c" * 64
    assert properties["agenttui.baseline_run_id"] == "7"
    assert properties["agenttui.regressions"] == "1"
    assert properties["agenttui.verdict.c1"].startswith("regressed: 1/5 after 5/5")
    assert properties["agenttui.verdict.gone"].startswith("removed")


def test_junit_survives_characters_xml_cannot_hold(tmp_path):
    report = SuiteReport(1, "odd", "a", "b", 0.0, "ana",
                         [case("c\x01", 0, n=1, response="bell \x07 and \x1b[31mred\x1b[0m")])
    path = tmp_path / "report.xml"
    path.write_text(to_junit(report), encoding="utf-8")
    (testcase,) = list(next(iter(JUnitXml.fromfile(str(path)))))
    assert testcase.name == "c\ufffd #1"
    assert "bell \ufffd and" in testcase.system_out


class _Rows(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict[str, str]] = []
        self.external: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "tr" and "data-case" in attrs:
            self.rows.append(attrs)
        for key in ("src", "href"):
            if attrs.get(key):
                self.external.append(attrs[key])


def test_html_is_self_contained_and_escaped():
    baseline, candidate = runs()
    html = to_html(candidate, compare(baseline, candidate))
    parser = _Rows()
    parser.feed(html)
    assert [r["data-case"] for r in parser.rows] == ["c1", "c2", "c3", "fresh", "gone"]
    assert parser.external == [] and "<script" not in html and "<link" not in html
    assert "Hello &lt;b&gt;world&lt;/b&gt; &amp; co" in html  # the response is escaped
    assert "<details>" in html


def test_html_in_a_real_headless_browser(tmp_path):
    baseline, candidate = runs()
    path = tmp_path / "report.html"
    path.write_text(to_html(candidate, compare(baseline, candidate)), encoding="utf-8")
    result = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", path.as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    dom = result.stdout
    parser = _Rows()
    parser.feed(dom)
    assert [r["data-case"] for r in parser.rows] == ["c1", "c2", "c3", "fresh", "gone"]
    assert "regressed" in dom and "1/5 after 5/5 (Fisher's exact, p=0.024 &lt; 0.05)" in dom
    assert "1 regression<" in dom and "4 cases" in dom
    # The response reached the DOM as text, not as markup.
    assert "Hello &lt;b&gt;world&lt;/b&gt; &amp; co" in dom


def test_json_and_the_terminal_table():
    baseline, candidate = runs()
    comparison = compare(baseline, candidate)
    data = json.loads(json.dumps(to_json(candidate, comparison)))
    assert data["run_id"] == 8 and data["baseline_run_id"] == 7
    first = data["cases"][0]
    assert first["case_id"] == "c1" and first["stats"]["passes"] == 1
    assert first["verdict"]["kind"] == "regressed"
    assert [r["case_id"] for r in data["removed"]] == ["gone"]
    assert data["totals"]["regressions"] == 1 and data["totals"]["cases"] == 4
    lines = summary_lines(candidate, comparison)
    assert lines[0] == "suite 'greetings', run 8"
    row = next(line for line in lines if line.startswith("c1 "))
    assert "1/5" in row and "flaky" in row and "regressed" in row
    assert lines[-1].startswith("4 cases: 1 passing, 2 flaky, 1 failing, 0 pending; against run 7:")
    assert "1 regressed" in lines[-1]


def test_reports_without_a_baseline():
    _, candidate = runs()
    assert "against the baseline" not in "\n".join(summary_lines(candidate))
    assert to_json(candidate)["cases"][0]["verdict"] is None
    assert "regressions" not in to_html(candidate)


def test_every_report_says_how_the_run_reached_its_model():
    _, candidate = runs()
    assert "model traffic" not in to_html(candidate)  # no repeat says how: nothing is claimed
    for case_report in candidate.cases:
        for repeat in case_report.repeats:
            repeat.model_traffic = "replayed" if repeat.test_id is not None else None
    candidate.cases[0].repeats[0].model_traffic = "recorded"
    totals = to_json(candidate)["totals"]["model_traffic"]
    assert totals == "16 replayed, 1 recorded"
    assert f'<span id="model-traffic">model traffic: {totals}</span>' in to_html(candidate)
    assert summary_lines(candidate)[0] == f"suite 'greetings', run 8, model traffic: {totals}"
    assert f'value="{totals}"' in to_junit(candidate)
