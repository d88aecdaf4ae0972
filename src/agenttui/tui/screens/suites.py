"""The Suites view (docs/tui.md, docs/suites.md): suite runs with their progress and verdicts,
live while a run goes; the selected run's case × repeat matrix; the selected case's responses
beside the baseline's. `n` runs a suite file, `r` resumes the selected run, `b` blesses it.

The screen reads through the app's client (SuitesLink, tui/suite_link.py) in its own worker,
which stops when the screen goes; results arrive as `Updated` messages."""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Any, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Static

from agenttui.tui.formatting import LocalTime, printable_text
from agenttui.tui.suite_link import SuitesLink, SuitesSnapshot
from agenttui.tui.widgets.suite_case_view import SuiteCaseView
from agenttui.tui.widgets.suite_matrix import SuiteMatrix
from agenttui.tui.widgets.suite_runs_table import SuiteRunsTable


class SuitesScreen(Screen[None]):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="suites.back", tooltip="Back to the main screen"),
        Binding("n", "run_suite", "Run suite", id="suites.run", tooltip="Run a suite file: asks for its path"),
        Binding("r", "resume_run", "Resume", id="suites.resume",
                tooltip="Queue again what did not finish of the selected run"),
        Binding("b", "bless_run", "Bless", id="suites.bless",
                tooltip="Make the selected run its suite's baseline; later runs are compared with it"),
    ]
    last_path: ClassVar[str] = ""  # the suite file run last, offered again

    class Updated(Message):
        def __init__(self, snapshot: SuitesSnapshot) -> None:
            super().__init__()
            self.snapshot = snapshot

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, SuitesScreen.Updated)

    def __init__(self, *, localtime: LocalTime = time.localtime, interval_s: float = 1.0) -> None:
        super().__init__()
        self.localtime = localtime
        self.interval_s = interval_s
        self.selected_run_id: int | None = None
        self.snapshot: SuitesSnapshot | None = None
        self.loaded = False  # a first snapshot is shown

    def compose(self) -> ComposeResult:
        yield Static("suite runs · loading…", id="suites-header", markup=False)
        runs = SuiteRunsTable(self.localtime, id="suite-runs")
        yield runs
        yield Static("No suite runs yet: n runs a suite file.", id="suites-empty")
        yield SuiteMatrix(id="suite-matrix")
        yield SuiteCaseView(id="suite-case")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#suites-empty").display = False
        self.query_one(SuiteRunsTable).display = False  # until the first snapshot lists runs
        engine = self.app.engine  # type: ignore[attr-defined]
        self.link = SuitesLink(engine.client, engine.call, clock=time.time)
        self.query_one(SuiteRunsTable).focus()
        self.run_worker(self._watch(engine), group="suites-watch", exclusive=True, exit_on_error=False)

    async def _watch(self, engine: Any) -> None:
        await engine.ready.wait()
        await self.link.watch(lambda snapshot: self.post_message(self.Updated(snapshot)),
                              lambda: self.selected_run_id,
                              keep_going=lambda: self.is_attached and not engine.closed,
                              interval_s=self.interval_s)

    # ------------------------------------------------------------------ snapshots in
    @on(Updated)
    def _updated(self, message: Updated) -> None:
        snapshot = message.snapshot
        self.snapshot = snapshot
        header = self.query_one("#suites-header", Static)
        runs = self.query_one(SuiteRunsTable)
        if snapshot.problem:
            header.update(printable_text(snapshot.problem))
            return
        running = sum(1 for r in snapshot.runs if not r.done)
        header.update(f"suite runs · {len(snapshot.runs)} shown · {running} not finished"
                      " · n run · r resume · b bless · esc back")
        runs.set_runs(snapshot.runs, self.selected_run_id)
        if snapshot.runs and not runs.display:
            runs.display = True
            runs.focus()  # (it could not take the focus while it was hidden)
        runs.display = bool(snapshot.runs)
        self.query_one("#suites-empty").display = not snapshot.runs
        if self.selected_run_id is None and snapshot.runs:
            self._select(runs.selected_run_id or snapshot.runs[0].run.id)
        detail = snapshot.detail
        if detail is not None and detail.run.id == self.selected_run_id:
            matrix = self.query_one(SuiteMatrix)
            matrix.show_run(detail)
            self.query_one(SuiteCaseView).show_case(detail, matrix.selected_case_id)
            self.loaded = True
        elif not snapshot.runs:
            self.loaded = True

    def _select(self, run_id: int) -> None:
        if run_id == self.selected_run_id:
            return
        self.selected_run_id = run_id
        self.query_one(SuiteRunsTable).select_run(run_id)
        self.query_one(SuiteMatrix).show_run(None)
        self.query_one(SuiteCaseView).show_case(None, None)
        self.link.wake()

    @on(SuiteRunsTable.RunHighlighted)
    def _run_highlighted(self, message: SuiteRunsTable.RunHighlighted) -> None:
        self._select(message.run_id)

    @on(SuiteMatrix.CaseHighlighted)
    def _case_highlighted(self, message: SuiteMatrix.CaseHighlighted) -> None:
        matrix = self.query_one(SuiteMatrix)
        self.query_one(SuiteCaseView).show_case(matrix.detail, message.case_id)

    # ------------------------------------------------------------------ actions
    def _act(self, action: str, operation: Any) -> None:
        self.run_worker(functools.partial(self._acting, action, operation), group="suites-action",
                        exit_on_error=False)

    async def _acting(self, action: str, operation: Any) -> None:
        from agenttui.core.lifecycle import InvalidRequest
        from agenttui.suites.file import SuiteFileError
        from agenttui.suites.runner import SuiteResumeError

        try:
            await operation()
        except SuiteFileError as exc:
            self.app.notify(printable_text(str(exc)), title=f"Could not {action}", severity="error", markup=False)
        except InvalidRequest as exc:
            problems = "\n  ".join(f"{field}: {text}" for field, text in exc.errors.items())
            self.app.notify(printable_text(f"invalid suite, nothing was queued:\n  {problems}"),
                            title=f"Could not {action}", severity="error", markup=False)
        except SuiteResumeError as exc:
            self.app.notify(printable_text(f"nothing was queued: {exc}"), title=f"Could not {action}",
                            severity="error", markup=False)
        except Exception as exc:
            self.app.notify(printable_text(str(exc) or type(exc).__name__), title=f"Could not {action}",
                            severity="error", markup=False)

    def action_run_suite(self) -> None:
        from agenttui.tui.screens.suite_path import SuitePathScreen

        def chosen(path: Path | None) -> None:
            if path is None:
                return
            SuitesScreen.last_path = str(path)

            async def start() -> None:
                run, tests = await self.link.start(path, self.app.settings)  # type: ignore[attr-defined]
                self.app.notify(f"suite run {run.id} of {run.name!r}: {tests} test(s) queued", title="Suite",
                                markup=False)
                self._select(run.id)  # shown once the next snapshot lists it

            self._act("run the suite", start)

        self.app.push_screen(SuitePathScreen(SuitesScreen.last_path), chosen)

    def _selected(self, what: str) -> int | None:
        if self.selected_run_id is None:
            self.app.notify(f"No suite run to {what}: n runs a suite file.", severity="warning")
        return self.selected_run_id

    def action_resume_run(self) -> None:
        run_id = self._selected("resume")
        if run_id is None:
            return

        async def resume() -> None:
            queued = await self.link.resume(run_id, self.app.settings)  # type: ignore[attr-defined]
            text = (f"suite run {run_id}: {queued} test(s) queued again" if queued
                    else f"suite run {run_id}: nothing to resume, every case × repeat ran or is running")
            self.app.notify(text, title="Resume", markup=False)

        self._act("resume", resume)

    def action_bless_run(self) -> None:
        run_id = self._selected("bless")
        if run_id is None:
            return

        async def bless() -> None:
            run = await self.link.bless(run_id)
            self.app.notify(f"suite run {run.id} is now the baseline of {run.name!r}", title="Bless", markup=False)

        self._act("bless", bless)
