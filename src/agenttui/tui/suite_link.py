"""The Suites view's reach into the engine (docs/tui.md, docs/suites.md): suite runs with their
progress and verdicts, a run's case × repeat results and its baseline's, read through the client
as the app's other views are; and the view's actions (run a suite file, resume, bless).

No Textual here: `SuitesLink.watch` polls and hands each snapshot to `post` (the screen turns it
into a message). Reading a run costs one call for its slots and one `show` per test that left
the queue since the last look: a test's final result is judged once and kept, and the tests
still queued or running are told by the one queue snapshot of the round.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from agenttui.core.suite_wire import SuiteRunView, SuiteSlot
from agenttui.suites.compare import Comparison, compare
from agenttui.suites.file import Suite
from agenttui.suites.results import CaseReport, RepeatResult, SuiteReport
from agenttui.suites.stats import case_stats

if TYPE_CHECKING:
    from agenttui.client.base import Client

T = TypeVar("T")
Call = Callable[[Awaitable[Any]], Awaitable[Any]]

RUNS_SHOWN = 30  # the newest runs listed
POLL_S = 1.0
REREAD_FINISHED_S = 30.0  # a finished run's slots are read again this often (a resume from elsewhere)


@dataclass
class RunSummary:
    """One row of the runs table."""

    run: SuiteRunView  # from the listing (no slots)
    total: int  # case × repeat slots
    finished: int
    passed: int
    running: int  # queued or running now
    verdict: str  # "3 regressed", "no baseline", "baseline", ...

    @property
    def done(self) -> bool:
        return self.finished == self.total


@dataclass
class RunDetail:
    """A run's results: what the matrix and the side-by-side responses show."""

    run: SuiteRunView
    report: SuiteReport  # unfinished repeats have status None (neither pass nor failure)
    live: dict[int, str]  # test id -> QUEUED / BUILDING / RUNNING, for the repeats not finished
    baseline: SuiteReport | None
    comparison: Comparison | None

    def baseline_case(self, case_id: str) -> CaseReport | None:
        if self.baseline is None:
            return None
        return next((c for c in self.baseline.cases if c.case_id == case_id), None)


@dataclass
class SuitesSnapshot:
    runs: list[RunSummary]
    detail: RunDetail | None  # the selected run's
    problem: str | None = None  # why the engine could not be read, when it could not


@dataclass
class _RunCache:
    view: SuiteRunView  # with slots
    read_at: float
    judged: dict[int, RepeatResult] = field(default_factory=dict)  # test id -> its final result


def request_defaults(settings: Any) -> dict[str, Any]:
    """The request fields the user's settings give a case that sets none, as `agenttui suite run`
    gives them (cli/suites.py; the TUI cannot import the CLI)."""
    return {"timeout_s": settings.default_timeout_s,
            "limits": {"cpus": settings.default_cpus, "memory_mb": settings.default_memory_mb,
                       "pids": settings.default_pids}}


class SuitesLink:
    def __init__(self, client: Client, call: Call, *, clock: Callable[[], float]) -> None:
        self.client = client
        self._call = call
        self._clock = clock
        self._runs: dict[int, _RunCache] = {}
        self._wake = asyncio.Event()

    def wake(self, *, reread: int | None = None) -> None:
        """Read again now; `reread`: that run's slots have changed (a resume)."""
        if reread is not None:
            self._runs.pop(reread, None)
        self._wake.set()

    async def watch(self, post: Callable[[SuitesSnapshot], object], selected: Callable[[], int | None],
                    keep_going: Callable[[], bool], interval_s: float = POLL_S) -> None:
        while keep_going():
            self._wake.clear()
            try:
                snapshot = await self.snapshot(selected())
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                snapshot = SuitesSnapshot([], None, f"cannot read the suite runs: {exc}")
            if not keep_going():
                return
            post(snapshot)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), interval_s)

    async def snapshot(self, selected: int | None) -> SuitesSnapshot:
        queue = await self._call(self.client.queue())
        live = {t.id: t.status.value for t in queue.tests}
        listed: list[SuiteRunView] = await self._call(self.client.suite_runs(limit=RUNS_SHOWN))
        if selected is not None and all(r.id != selected for r in listed):
            selected = None
        baselines = {r.name: r.id for r in listed if r.baseline}
        for name in {r.name for r in listed} - baselines.keys():
            found = await self._call(self.client.suite_runs(name=name, baseline=True, limit=1))
            if found:
                baselines[name] = found[0].id
        reports: dict[int, SuiteReport] = {}

        async def report_of(run_id: int) -> SuiteReport:
            if run_id not in reports:
                reports[run_id] = await self.report(run_id, live)
            return reports[run_id]

        rows = []
        for run in listed:
            report = await report_of(run.id)
            comparison = None
            base_id = baselines.get(run.name)
            if base_id is not None and base_id != run.id:
                comparison = compare(await report_of(base_id), report)
            rows.append(_summary(run, report, comparison, live))
        detail = None
        if selected is not None:
            run = self._runs[selected].view
            base_id = baselines.get(run.name)
            baseline = await report_of(base_id) if base_id is not None and base_id != run.id else None
            report = reports[selected]
            detail = RunDetail(run, report, {t: s for t, s in live.items() if t in _test_ids(run)}, baseline,
                               compare(baseline, report) if baseline is not None else None)
        return SuitesSnapshot(rows, detail)

    async def report(self, run_id: int, live: dict[int, str]) -> SuiteReport:
        """The run's report as it stands: finished repeats judged (once), the others pending."""
        cache = self._runs.get(run_id)
        now = self._clock()
        finished = cache is not None and all(s.test_id in cache.judged for s in cache.view.slots)
        if cache is None or not finished or now - cache.read_at > REREAD_FINISHED_S:
            view = await self._call(self.client.suite_run(run_id))
            judged = cache.judged if cache is not None else {}
            cache = self._runs[run_id] = _RunCache(view, now, judged)
        suite = Suite.from_json(cache.view.suite_json)
        by_case: dict[str, list[RepeatResult]] = {}
        for slot in sorted(cache.view.slots, key=lambda s: s.repeat):
            by_case.setdefault(slot.case_id, []).append(await self._result(suite, slot, cache, live))
        run = cache.view
        cases = [CaseReport(case.id, case.query, by_case.get(case.id, [])) for case in suite.cases]
        return SuiteReport(run_id=run.id, suite_name=run.name, suite_digest=run.suite_digest,
                           agent_digest=run.agent_digest, created_at=run.created_at, owner=run.owner_name,
                           cases=cases)

    async def _result(self, suite: Suite, slot: SuiteSlot, cache: _RunCache, live: dict[int, str]) -> RepeatResult:
        from agenttui.suites.runner import judge

        test_id = slot.test_id
        pending = RepeatResult(repeat=slot.repeat, test_id=test_id, status=None, passed=None, reasons=[],
                               response=None)
        if test_id is None:
            return pending
        if test_id in cache.judged:
            return cache.judged[test_id]
        if test_id in live:
            return pending
        view = await self._call(self.client.show(test_id))
        if not view.status.is_terminal:  # claimed or queued since the queue was read
            live[test_id] = view.status.value
            return pending
        result = cache.judged[test_id] = await judge(self.client, suite, slot, view)
        result.model_traffic = view.model_traffic  # live, recorded or replayed (docs/replay.md)
        return result

    # ------------------------------------------------------------------ actions
    async def start(self, path: Path, settings: Any) -> tuple[SuiteRunView, int]:
        """Read and check the suite file (SuiteFileError lists its problems), store the run and
        queue its tests. (the run, how many tests)."""
        from agenttui.suites.file import load_suite
        from agenttui.suites.runner import start_run

        suite = await asyncio.to_thread(load_suite, path, defaults=request_defaults(settings))
        run = await self._call(start_run(self.client, suite,
                                         credentials_duration_s=getattr(settings, "aws_session_duration_s", None)))
        self.wake()
        return run, len(run.slots)

    async def resume(self, run_id: int, settings: Any) -> int:
        """Queue again what did not finish; how many tests were queued."""
        from agenttui.suites.runner import resume_run

        _run, queued = await self._call(resume_run(
            self.client, run_id, credentials_duration_s=getattr(settings, "aws_session_duration_s", None)))
        self.wake(reread=run_id)
        return int(queued)

    async def bless(self, run_id: int) -> SuiteRunView:
        run = await self._call(self.client.bless_suite_run(run_id))
        self.wake()
        return run


def _test_ids(run: SuiteRunView) -> set[int]:
    return {s.test_id for s in run.slots if s.test_id is not None}


def _summary(run: SuiteRunView, report: SuiteReport, comparison: Comparison | None,
             live: dict[int, str]) -> RunSummary:
    repeats = [r for case in report.cases for r in case.repeats]
    finished = [r for r in repeats if r.status is not None]
    running = sum(1 for r in repeats if r.status is None and r.test_id in live)
    if run.baseline:
        verdict = "baseline"
    elif comparison is not None:
        totals = comparison.totals()
        shown = [f"{totals[k]} {k}" for k in ("regressed", "improved", "inconclusive") if totals[k]]
        verdict = ", ".join(shown) or "unchanged"
    else:
        stats = [case_stats(c) for c in report.cases]
        failing = sum(1 for s in stats if s.stability in ("failing", "flaky"))
        verdict = f"{failing} failing" if failing else "no baseline"
    return RunSummary(run, len(repeats), len(finished), sum(1 for r in finished if r.passed), running, verdict)
