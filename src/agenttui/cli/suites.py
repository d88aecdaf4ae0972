"""`agenttui suite run|resume|list|show|bless|diff`: regression suites (docs/suites.md)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agenttui.cli.common import EXIT_AGENT, EXIT_INFRA, EXIT_OK, UserError, client_settings, open_client
from agenttui.cli.suite_cassettes import add_cassette_flags, suite_cassettes, with_cassettes
from agenttui.core import errors as codes

if TYPE_CHECKING:
    from agenttui.client.base import Client
    from agenttui.core.suite_wire import SuiteRunView
    from agenttui.suites.compare import Comparison
    from agenttui.suites.report import SuiteReport

PROGRESS_WIDTH = 30


def _defaults(settings: Any) -> dict[str, Any]:
    """The request fields the user's settings give a case that sets none (as `submit` does)."""
    return {"timeout_s": settings.default_timeout_s,
            "limits": {"cpus": settings.default_cpus, "memory_mb": settings.default_memory_mb,
                       "pids": settings.default_pids}}


def _duration(settings: Any) -> int | None:
    return getattr(settings, "aws_session_duration_s", None)


def _invalid(exc: Any, slots: list[Any]) -> UserError:
    """The server's field errors (`tests[3].query`) said by case and repeat."""
    lines = []
    for field, message in exc.errors.items():
        place, _, rest = field.partition("].")
        if place.startswith("tests[") and rest:
            slot = slots[int(place[6:])]
            lines.append(f"case {json.dumps(slot.case_id)} {rest}: {message}")
        else:
            lines.append(f"{field}: {message}")
    return UserError("invalid suite, nothing was queued:\n  " + "\n  ".join(dict.fromkeys(lines)))


class Progress:
    """A bar that rewrites itself on a terminal; plain lines (one per ended test) when piped."""

    def __init__(self, run_id: int):
        self.run_id = run_id
        self.tty = sys.stderr.isatty()

    def __call__(self, done: int, failed: int, total: int, line: str | None) -> None:
        if not self.tty:
            if line:
                print(f"[{done}/{total}] {line}", file=sys.stderr, flush=True)
            return
        filled = PROGRESS_WIDTH * done // max(total, 1)
        bar = "#" * filled + "." * (PROGRESS_WIDTH - filled)
        end = "\n" if done == total else ""
        print(f"\r\x1b[Ksuite run {self.run_id} [{bar}] {done}/{total} ended, {failed} failing", end=end,
              file=sys.stderr, flush=True)


async def _baseline(client: Client, run: SuiteRunView) -> SuiteReport | None:
    from agenttui.suites.runner import build_report

    found = await client.suite_runs(name=run.name, baseline=True)
    if not found or found[0].id == run.id:
        return None
    return await build_report(client, await client.suite_run(found[0].id))


async def _finish(client: Client, run: SuiteRunView, args: argparse.Namespace, views: dict[int, Any]) -> int:
    """Build the report, compare it with the baseline, write the reports, say the verdict."""
    from agenttui.suites.report import note_model_traffic
    from agenttui.suites.runner import build_report, resumable

    report = await build_report(client, await client.suite_run(run.id), views=views)
    note_model_traffic(report, views)
    baseline = await _baseline(client, run)
    comparison = None
    if baseline is not None:
        from agenttui.suites.compare import compare

        comparison = compare(baseline, report)
        report.baseline_run_id = baseline.run_id
    _write_reports(report, comparison, args)
    rerun = 0
    for repeat in (r for case in report.cases for r in case.repeats):
        if repeat.test_id is None or repeat.status not in ("COMPLETED", "TIMED_OUT"):
            view = views.get(repeat.test_id) if repeat.test_id else None
            if repeat.test_id is None or resumable(view or await client.show(repeat.test_id)):
                rerun += 1
    missed = sum(1 for view in views.values() if view.failure_kind == "replay_miss")
    return _exit_code(report, comparison, rerun, missed)


def _write_reports(report: SuiteReport, comparison: Comparison | None, args: argparse.Namespace) -> None:
    from agenttui.suites import report as reports

    for path, write in ((getattr(args, "junit", None), reports.to_junit), (getattr(args, "html", None), reports.to_html)):
        if path is not None:
            try:
                Path(path).write_text(write(report, comparison), encoding="utf-8")
            except OSError as exc:
                raise UserError(f"cannot write {path}: {exc.strerror or exc}") from None
            print(f"agenttui: wrote {path}", file=sys.stderr)
    if getattr(args, "json", False):
        print(json.dumps(reports.to_json(report, comparison)))
    else:
        print("\n".join(reports.summary_lines(report, comparison)))


def _exit_code(report: SuiteReport, comparison: Comparison | None, rerun: int, missed: int = 0) -> int:
    """8 when a case regressed against the baseline; 3 when `rerun` tests could not run (never
    submitted, cancelled, failed by the infrastructure: resume runs them); 9 when `missed` tests
    asked their model what their cassette lacks (strict --replay); without a baseline 1 when a
    case did not pass every repeat; else 0."""
    repeats = [r for case in report.cases for r in case.repeats]
    if comparison is not None and comparison.regressions:
        return codes.REGRESSIONS_FOUND.exit
    if rerun:
        print(f"agenttui: {rerun} case run(s) did not finish; `agenttui suite resume {report.run_id}` "
              "runs only those", file=sys.stderr)
        return EXIT_INFRA
    if missed:
        print(f"agenttui: {missed} case run(s) asked their model what their cassette lacks (replay miss, "
              "named in the report); record them again with --record DIR, or replay with --replay-mode "
              "new-calls-live", file=sys.stderr)
        return codes.REPLAY_MISS.exit
    if comparison is None and not all(r.passed for r in repeats):
        return EXIT_AGENT
    return EXIT_OK


async def cmd_suite(args: argparse.Namespace) -> int:
    handler = {"run": _run, "resume": _resume, "list": _list, "show": _show, "bless": _bless, "diff": _diff}
    return await handler[args.suite_command](args)


def _need_server(settings: Any, what: str) -> None:
    if settings.in_process:
        raise UserError(f"`agenttui suite {what}` needs the server to run the tests (a run outlives this "
                        "command); drop --in-process")


async def _run(args: argparse.Namespace) -> int:
    from agenttui.core.lifecycle import InvalidRequest
    from agenttui.suites.file import SuiteFileError, load_suite
    from agenttui.suites.follow import follow_run
    from agenttui.suites.runner import start_run

    settings = client_settings(args)
    _need_server(settings, "run")
    try:
        suite = load_suite(args.file, defaults=_defaults(settings), repeat=args.repeat, only=args.case or None)
    except SuiteFileError as exc:
        raise UserError(str(exc)) from None
    slots = [(c.id, r) for c in suite.cases for r in range(1, suite.repeat + 1)]
    cassettes = suite_cassettes(args, {c.id: c.request.get("egress") for c in suite.cases})
    slot_fields = cassettes.prepare(slots) if cassettes else None
    try:
        async with open_client(settings) as client:
            await client.check_backend()
            try:
                run = await start_run(with_cassettes(client, slot_fields), suite,
                                      credentials_duration_s=_duration(settings))
            except InvalidRequest as exc:
                from agenttui.core.suite_wire import SuiteSlot

                raise _invalid(exc, [SuiteSlot(c, r) for c, r in slots]) from None
            print(f"agenttui: suite run {run.id} of {suite.name!r}: {len(slots)} test(s) queued "
                  f"({len(suite.cases)} case(s) × {suite.repeat})", file=sys.stderr)
            if args.no_wait:
                print(json.dumps({"run_id": run.id, "tests": len(slots)}) if args.json else run.id)
                return EXIT_OK
            views = await follow_run(client, run, Progress(run.id))
            if cassettes:
                await cassettes.write(client, run.slots, views)
            return await _finish(client, run, args, views)
    except codes.InfraError as exc:
        print(f"agenttui: infrastructure failure: {exc}", file=sys.stderr)
        return EXIT_INFRA


async def _resume(args: argparse.Namespace) -> int:
    from agenttui.suites.file import Suite
    from agenttui.suites.follow import follow_run
    from agenttui.suites.runner import SuiteResumeError, resume_run

    settings = client_settings(args)
    _need_server(settings, "resume")
    async with open_client(settings) as client:
        cassettes = None
        if args.record is not None or args.replay is not None:
            stored = await client.suite_run(args.run)
            cases = Suite.from_json(stored.suite_json).cases
            cassettes = suite_cassettes(args, {c.id: c.request.get("egress") for c in cases})
        try:
            run, queued = await resume_run(with_cassettes(client, cassettes.checked_fields if cassettes else None),
                                           args.run, credentials_duration_s=_duration(settings))
        except SuiteResumeError as exc:
            raise UserError(f"cannot resume suite run {args.run}, nothing was queued: {exc}") from None
        print(f"agenttui: suite run {run.id}: {queued} test(s) queued again; the rest ran or are running",
              file=sys.stderr)
        if args.no_wait:
            print(run.id)
            return EXIT_OK
        views = await follow_run(client, run, Progress(run.id))
        if cassettes:
            await cassettes.write(client, (await client.suite_run(run.id)).slots, views)
        return await _finish(client, run, args, views)


async def _list(args: argparse.Namespace) -> int:
    async with open_client(client_settings(args)) as client:
        runs = await client.suite_runs(name=args.name, limit=args.limit)
    if args.json:
        print(json.dumps([{"id": r.id, "name": r.name, "created_at": r.created_at, "owner": r.owner_name,
                           "repeat": r.repeat, "suite_digest": r.suite_digest, "agent_digest": r.agent_digest,
                           "baseline": r.baseline} for r in runs]))
        return EXIT_OK
    for r in runs:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(r.created_at))
        mark = "  (baseline)" if r.baseline else ""
        print(f"{r.id:>6}  {when}  {r.owner_name:<12} {r.name}  ×{r.repeat}  agent {r.agent_digest[:12]}{mark}")
    if not runs:
        print("no suite runs yet; `agenttui suite run FILE` starts one", file=sys.stderr)
    return EXIT_OK


async def _show(args: argparse.Namespace) -> int:
    from agenttui.suites import report as reports
    from agenttui.suites.runner import build_report

    async with open_client(client_settings(args)) as client:
        run = await client.suite_run(args.run)
        views = {s.test_id: await client.show(s.test_id) for s in run.slots if s.test_id is not None}
        report = await build_report(client, run, views=views)
        reports.note_model_traffic(report, views)
        baseline = await _baseline(client, run)
    comparison = None
    if baseline is not None:
        from agenttui.suites.compare import compare

        comparison = compare(baseline, report)
        report.baseline_run_id = baseline.run_id
    if args.json:
        print(json.dumps(reports.to_json(report, comparison)))
    else:
        print("\n".join(reports.summary_lines(report, comparison)))
    return EXIT_OK


async def _bless(args: argparse.Namespace) -> int:
    async with open_client(client_settings(args)) as client:
        run = await client.bless_suite_run(args.run)
    print(f"agenttui: suite run {run.id} is now the baseline of {run.name!r}; later runs are compared with it")
    return EXIT_OK


async def _diff(args: argparse.Namespace) -> int:
    from agenttui.suites.compare import diff_text
    from agenttui.suites.runner import build_report

    async with open_client(client_settings(args)) as client:
        a = await build_report(client, await client.suite_run(args.a))
        b = await build_report(client, await client.suite_run(args.b))
    print(diff_text(a, b))
    return EXIT_OK


def add_suite_commands(sub: Any) -> None:
    """`agenttui suite ...` (registered by cli/parser.py)."""
    suite = sub.add_parser("suite", help="regression suites: run a TOML file of cases, compare with a baseline")
    commands = suite.add_subparsers(dest="suite_command", metavar="ACTION", required=True)
    run = commands.add_parser("run", help="queue every case × repeat, follow them, judge and report "
                              "(exit 8: regressions against the baseline)")
    run.add_argument("file", type=Path, help="the suite file (TOML, docs/suites.md)")
    run.add_argument("--repeat", type=int, help="runs of each case (default: the file's repeat, else 1)")
    run.add_argument("--case", action="append", metavar="ID", help="only this case (repeatable)")
    for parser in (run, resume := commands.add_parser("resume", help="run only what did not finish of a run")):
        parser.add_argument("--junit", type=Path, metavar="FILE", help="write a JUnit XML report")
        parser.add_argument("--html", type=Path, metavar="FILE", help="write a self-contained HTML report")
        parser.add_argument("--json", action="store_true", help="print the report as one JSON object")
        parser.add_argument("--no-wait", action="store_true", help="queue, print the run id and exit")
    resume.add_argument("run", type=int, help="the suite run's id")
    for parser in (run, resume):
        add_cassette_flags(parser)
    listing = commands.add_parser("list", help="suite runs, newest first")
    listing.add_argument("--name", help="only this suite's runs")
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--json", action="store_true")
    show = commands.add_parser("show", help="a run's report (compared with its suite's baseline)")
    show.add_argument("run", type=int)
    show.add_argument("--json", action="store_true")
    bless = commands.add_parser("bless", help="make a run the baseline of its suite")
    bless.add_argument("run", type=int)
    diff = commands.add_parser("diff", help="two runs case by case: flips, responses, tokens, cost, latency")
    diff.add_argument("a", type=int, help="the older run")
    diff.add_argument("b", type=int, help="the newer run")
