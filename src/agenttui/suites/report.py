"""A suite run's results (built by the runner from the store) and what is written from them:
JSON, JUnit XML (what GitHub, GitLab and Jenkins render), one self-contained HTML file
(templates/suite_report.html.j2, no network) and the terminal's end-of-run table."""

from __future__ import annotations

import re
import time
import xml.etree.ElementTree as ET
from dataclasses import asdict
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import jinja2

from agenttui.core.resources import resource_dir
from agenttui.suites.results import CaseReport, RepeatResult, SuiteReport
from agenttui.suites.stats import ALPHA, case_stats

if TYPE_CHECKING:
    from agenttui.suites.compare import Comparison

# The results' dataclasses live in agenttui.suites.results (below stats and compare, so no
# import cycle) and are re-exported here, where the runner and the CLI take them from.
__all__ = ["CaseReport", "RepeatResult", "SuiteReport", "model_traffic", "note_model_traffic", "summary_lines",
           "to_html", "to_json", "to_junit"]

HTML_TEMPLATE = "suite_report.html.j2"
# Characters XML 1.0 cannot hold at all (not even escaped): an agent's response may carry them.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def model_traffic(report: SuiteReport) -> str | None:
    """How the run's finished tests reached their model (docs/replay.md): `replayed` when all
    did alike, else the counts (`3 replayed, 1 recorded`); None before any has finished."""
    counts: dict[str, int] = {}
    for repeat in (r for c in report.cases for r in c.repeats):
        if repeat.model_traffic is not None:
            counts[repeat.model_traffic] = counts.get(repeat.model_traffic, 0) + 1
    if len(counts) <= 1:
        return next(iter(counts), None)
    return ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items(), key=lambda item: -item[1]))


def note_model_traffic(report: SuiteReport, views: dict[int, Any]) -> None:
    """Each finished repeat's `model_traffic`, from its test's view (`TestView.model_traffic`)."""
    for repeat in (r for c in report.cases for r in c.repeats):
        view = views.get(repeat.test_id) if repeat.test_id is not None else None
        if view is not None and repeat.status is not None:
            repeat.model_traffic = view.model_traffic


def _totals(report: SuiteReport, comparison: Comparison | None) -> dict[str, Any]:
    stats = [case_stats(c) for c in report.cases]
    totals: dict[str, Any] = {
        "cases": len(report.cases),
        "passing": sum(1 for s in stats if s.stability == "stable"),
        "flaky": sum(1 for s in stats if s.stability == "flaky"),
        "failing": sum(1 for s in stats if s.stability == "failing"),
        "pending": sum(1 for s in stats if s.stability == "pending"),
        "repeats": sum(s.repeats for s in stats),
        "finished": sum(s.finished for s in stats),
        "passes": sum(s.passes for s in stats),
    }
    traffic = model_traffic(report)
    if traffic is not None:
        totals["model_traffic"] = traffic
    if comparison is not None:
        totals["verdicts"] = comparison.totals()
        totals["regressions"] = len(comparison.regressions)
    return totals


def to_json(report: SuiteReport, comparison: Comparison | None = None) -> dict:
    """The run, its cases with their repeats and statistics, the verdicts when compared, totals."""
    verdicts = comparison.by_case() if comparison is not None else {}
    cases = []
    for case in report.cases:
        entry = asdict(case)
        entry["stats"] = asdict(case_stats(case))
        v = verdicts.get(case.case_id)
        entry["verdict"] = asdict(v) if v is not None else None
        cases.append(entry)
    removed = [asdict(v) for v in verdicts.values() if v.kind == "removed"]
    return {
        "run_id": report.run_id,
        "suite_name": report.suite_name,
        "suite_digest": report.suite_digest,
        "agent_digest": report.agent_digest,
        "created_at": report.created_at,
        "owner": report.owner,
        "baseline_run_id": comparison.baseline_run_id if comparison else report.baseline_run_id,
        "alpha": ALPHA,
        "cases": cases,
        "removed": removed,
        "totals": _totals(report, comparison),
    }


def _xml_text(text: str | None) -> str:
    return _NOT_XML.sub("\ufffd", text or "")


def to_junit(report: SuiteReport, comparison: Comparison | None = None) -> str:
    """JUnit XML: one testsuite named after the suite, a testcase per case × repeat ("case #2"),
    a failure per failed repeat carrying its reasons, a skipped element for a repeat not finished;
    the run, its digests and the baseline verdicts as properties."""
    verdicts = comparison.by_case() if comparison is not None else {}
    results = [r for c in report.cases for r in c.repeats]
    failures = sum(1 for r in results if r.status is not None and not r.passed)
    skipped = sum(1 for r in results if r.status is None)
    seconds = sum(r.duration_s or 0.0 for r in results)
    root = ET.Element("testsuites", name=report.suite_name, tests=str(len(results)),
                      failures=str(failures), errors="0", skipped=str(skipped), time=f"{seconds:.3f}")
    suite = ET.SubElement(root, "testsuite", name=report.suite_name, tests=str(len(results)),
                          failures=str(failures), errors="0", skipped=str(skipped),
                          time=f"{seconds:.3f}",
                          timestamp=time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(report.created_at)))
    properties = ET.SubElement(suite, "properties")

    def prop(name: str, value: Any) -> None:
        ET.SubElement(properties, "property", name=name, value=_xml_text(str(value)))

    prop("agenttui.run_id", report.run_id)
    prop("agenttui.suite_digest", report.suite_digest)
    prop("agenttui.agent_digest", report.agent_digest)
    prop("agenttui.owner", report.owner)
    if (traffic := model_traffic(report)) is not None:
        prop("agenttui.model_traffic", traffic)
    if comparison is not None:
        prop("agenttui.baseline_run_id", comparison.baseline_run_id)
        prop("agenttui.regressions", len(comparison.regressions))
        for v in comparison.cases:
            prop(f"agenttui.verdict.{v.case_id}", f"{v.kind}: {v.detail}")
    for case in report.cases:
        v = verdicts.get(case.case_id)
        for r in case.repeats:
            element = ET.SubElement(suite, "testcase", classname=report.suite_name,
                                    name=_xml_text(f"{case.case_id} #{r.repeat}"),
                                    time=f"{r.duration_s or 0.0:.3f}")
            if r.status is None:
                ET.SubElement(element, "skipped", message="not finished")
            elif not r.passed:
                reasons = r.reasons or [f"the test ended {r.status}"]
                failure = ET.SubElement(element, "failure", message=_xml_text(reasons[0]),
                                        type="assertion")
                failure.text = _xml_text("\n".join(reasons))
            out = [f"status: {r.status or 'not finished'}"]
            if r.test_id is not None:
                out.append(f"test id: {r.test_id}")
            if v is not None:
                out.append(f"against the baseline: {v.kind}: {v.detail}")
            if r.response is not None:
                out.append("response:\n" + r.response)
            ET.SubElement(element, "system-out").text = _xml_text("\n".join(out))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


@lru_cache(maxsize=2)
def _html_environment(folder: str) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(folder),
        undefined=jinja2.StrictUndefined,
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )


def _money(value: float | None) -> str:
    return "—" if value is None else f"${value:.4f}"


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}s"


def to_html(report: SuiteReport, comparison: Comparison | None = None) -> str:
    """One self-contained HTML file: inline CSS, no script, no external resource."""
    verdicts = comparison.by_case() if comparison is not None else {}
    rows = []
    for case in report.cases:
        rows.append({
            "case": case,
            "stats": case_stats(case),
            "verdict": verdicts.get(case.case_id),
        })
    removed = [v for v in verdicts.values() if v.kind == "removed"]
    template = _html_environment(str(resource_dir("templates"))).get_template(HTML_TEMPLATE)
    return template.render(
        report=report,
        comparison=comparison,
        rows=rows,
        removed=removed,
        totals=_totals(report, comparison),
        created=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(report.created_at)),
        alpha=ALPHA,
        money=_money,
        seconds=_seconds,
    )


def summary_lines(report: SuiteReport, comparison: Comparison | None = None) -> list[str]:
    """The terminal's end-of-run table: a row per case, then the totals."""
    verdicts = comparison.by_case() if comparison is not None else {}
    width = max([len("case")] + [len(c.case_id) for c in report.cases])
    header = f"{'case':<{width}}  {'passes':>7}  {'pass@k':>6}  {'pass^k':>6}  {'':<8}"
    if comparison is not None:
        header += "  against the baseline"
    traffic = model_traffic(report)
    title = f"suite {report.suite_name!r}, run {report.run_id}" + (f", model traffic: {traffic}" if traffic else "")
    lines = [title, header.rstrip()]
    for case in report.cases:
        s = case_stats(case)
        row = (f"{case.case_id:<{width}}  {f'{s.passes}/{s.finished}':>7}  "
               f"{s.pass_at_k:>6.2f}  {s.pass_hat_k:>6.2f}  {s.stability:<8}")
        v = verdicts.get(case.case_id)
        if v is not None:
            row += f"  {v.kind}: {v.detail}"
        lines.append(row.rstrip())
    for v in verdicts.values():
        if v.kind == "removed":
            lines.append(f"{v.case_id:<{width}}  {'—':>7}  {'':>6}  {'':>6}  {'':<8}  removed: {v.detail}")
    t = _totals(report, comparison)
    total = (f"{t['cases']} cases: {t['passing']} passing, {t['flaky']} flaky, "
             f"{t['failing']} failing, {t['pending']} pending")
    if comparison is not None:
        shown = ", ".join(f"{n} {kind}" for kind, n in t["verdicts"].items() if n)
        total += f"; against run {comparison.baseline_run_id}: {shown}"
    lines.append(total)
    return lines
