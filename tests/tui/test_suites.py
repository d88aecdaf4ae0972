"""The Suites view (F8) under the pilot: a live run started from the view with `n` (real store,
the in-process engine, the noop backend), the case × repeat matrix and the verdicts, a case
beside its baseline after `b`, resume with `r`; snapshots at 80x24 and 120x40 of seeded runs."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from sqlalchemy import update

from agenttui.client.local import LocalClient
from agenttui.core.config import load_settings
from agenttui.engine.store import TESTS, Store
from agenttui.engine.store.tables import SUITE_RUNS
from agenttui.suites.file import load_suite
from agenttui.suites.runner import start_run
from agenttui.tui.screens.suites import SuitesScreen
from agenttui.tui.widgets.suite_matrix import SuiteMatrix
from agenttui.tui.widgets.suite_runs_table import SuiteRunsTable

from .conftest import fixed_app, make_app, screen_text, type_text, wait_until
from .seed import ALICE, T0

AGENT = "def run(query):\n    return query\n"


def write_suite(folder: Path, cases: dict[str, tuple[str, str]], repeat: int, name: str = "greeter") -> Path:
    """A suite of cases id -> (query, the text its response must contain)."""
    (folder / "agent.py").write_text(AGENT)
    lines = [f'name = "{name}"', 'agent = "agent.py"', f"repeat = {repeat}"]
    for case_id, (query, wanted) in cases.items():
        lines += ["[[case]]", f'id = "{case_id}"', f'query = "{query}"', "[[case.expect]]", 'type = "contains"',
                  f'value = "{wanted}"']
    path = folder / "suite.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def matrix_marks(app) -> dict[str, str]:
    """case id -> its repeats' marks, as the matrix shows them."""
    matrix = app.screen.query_one(SuiteMatrix)
    repeats = matrix.detail.run.repeat
    marks = {}
    for row_key in matrix.rows:
        row = matrix.get_row(row_key)
        marks[row_key.value] = "".join(str(cell) for cell in row[1:1 + repeats])
    return marks


def matrix_column(app, column: str) -> dict[str, str]:
    matrix = app.screen.query_one(SuiteMatrix)
    return {key.value: str(matrix.get_cell(key, column)) for key in matrix.rows}


async def run_from_view(pilot, path: Path) -> None:
    await pilot.press("n")
    await wait_until(pilot, lambda: pilot.app.screen.query("#suite-path"), what="the suite path question")
    field = pilot.app.screen.query_one("#suite-path")
    field.value = ""
    await type_text(pilot, str(path))
    await pilot.press("enter")


async def test_a_run_started_from_the_view_is_followed_live_to_its_verdicts(tmp_path):
    settings = load_settings(backend="noop", noop_run_s=1.0, max_concurrent=2)
    path = write_suite(tmp_path, {"echoes": ("hello", "hello"), "fails": ("world", "absent")}, repeat=3)
    app = make_app(settings)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, app.data_loaded.is_set, what="first snapshot")
        await pilot.press("f8")
        screen = app.screen
        assert isinstance(screen, SuitesScreen)
        await wait_until(pilot, lambda: screen.loaded, what="the runs read")
        assert "No suite runs yet" in screen_text(app)
        await run_from_view(pilot, path)
        # Live: 6 tests, 2 at a time for 1 s each: the matrix shows some running while others wait.
        seen_live = set()

        def progressed() -> bool:
            detail = screen.snapshot.detail if screen.snapshot else None
            if detail is None:
                return False
            seen_live.update("".join(matrix_marks(app).values()))
            return all(r.status is not None for c in detail.report.cases for r in c.repeats)

        await wait_until(pilot, progressed, timeout=60, what="every repeat judged")
        assert "●" in seen_live  # a running cell was shown while the run went
        await pilot.pause(1.5)  # the next snapshot after the last end
        assert matrix_marks(app) == {"echoes": "✓✓✓", "fails": "✗✗✗"}
        assert matrix_column(app, "passes") == {"echoes": "3/3", "fails": "0/3"}
        assert matrix_column(app, "stability") == {"echoes": "stable", "fails": "failing"}
        table = screen.query_one(SuiteRunsTable)
        row = table.runs[1]
        assert (row.finished, row.total, row.passed, row.verdict) == (6, 6, 3, "1 failing")
        await pilot.press("tab", "down")  # the matrix: the failing case
        await pilot.pause(0.2)
        text = screen_text(app)
        assert "contains 'absent': not found in 'noop: world'" in text  # the reason a user needs
        assert "no baseline yet (b blesses a run)" in text


async def test_bless_then_a_candidate_shows_the_regression_beside_the_baseline(tmp_path):
    settings = load_settings(backend="noop", noop_run_s=0.0, max_concurrent=10)
    good = {"greets": ("hello", "hello"), "answers": ("beta", "beta")}
    path = write_suite(tmp_path, good, repeat=4)
    app = make_app(settings)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, app.data_loaded.is_set, what="first snapshot")
        await pilot.press("f8")
        screen = app.screen

        def run_done(run_id: int) -> bool:
            table = screen.query_one(SuiteRunsTable)
            row = table.runs.get(run_id)
            return row is not None and row.done and screen.snapshot.detail is not None \
                and screen.snapshot.detail.run.id == run_id

        await run_from_view(pilot, path)
        await wait_until(pilot, lambda: run_done(1), timeout=60, what="run 1 done")
        await pilot.press("b")
        await wait_until(pilot, lambda: screen.query_one(SuiteRunsTable).runs[1].verdict == "baseline",
                         what="run 1 blessed")
        # The candidate: "answers" now gets another query, so its response no longer holds "beta".
        write_suite(tmp_path, {**good, "answers": ("gamma", "beta")}, repeat=4)
        await run_from_view(pilot, path)
        await wait_until(pilot, lambda: run_done(2), timeout=60, what="run 2 done")
        await pilot.pause(1.2)
        assert screen.query_one(SuiteRunsTable).runs[2].verdict == "1 regressed"
        assert matrix_marks(app) == {"greets": "✓✓✓✓", "answers": "✗✗✗✗"}
        assert matrix_column(app, "verdict") == {"greets": "unchanged", "answers": "regressed"}
        await pilot.press("tab", "down")
        await pilot.pause(0.2)
        text = screen_text(app)
        assert "case answers: regressed: 0/4 after 4/4 (Fisher's exact, p=0.014 < 0.05)" in text
        assert "baseline · run 1" in text and "run 2" in text
        assert "noop: gamma" in text and "noop: beta" in text  # both responses, side by side
        assert "(changed)" in text
        # Resume: nothing left to run; said so, nothing queued.
        await pilot.press("shift+tab", "r")
        await wait_until(pilot, lambda: any("nothing to resume" in n.message for n in app._notifications),
                         what="resume's notice")


async def test_a_suite_file_with_problems_queues_nothing_and_says_why(tmp_path):
    settings = load_settings(backend="noop")
    path = tmp_path / "bad.toml"
    path.write_text('agent = "missing.py"\n[[case]]\nid = "one"\nquery = "hi"\n[[case.expect]]\ntype = "regex"\n'
                    'value = "ab("\n')
    app = make_app(settings)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, app.data_loaded.is_set, what="first snapshot")
        await pilot.press("f8")
        await run_from_view(pilot, tmp_path / "nowhere.toml")
        await wait_until(pilot, lambda: "no such file" in screen_text(app), what="the path refused")
        await pilot.press("escape")
        await run_from_view(pilot, path)
        await wait_until(pilot, lambda: any("invalid suite, nothing was queued" in n.message
                                            for n in app._notifications), what="the file's problems")
        text = "\n".join(n.message for n in app._notifications)
        assert "agent" in text and "regular expression" in text
        assert (await app.client.queue()).tests == []


# ---------------------------------------------------------------------------- snapshots
def _finish(test_id: int, minute: float, status: str, response: str | None, wall_s: float) -> tuple[int, dict]:
    created = T0 + minute * 60
    return test_id, dict(status=status, created_at=created, queued_at=created, updated_at=created,
                         claimed_at=created + 0.5, running_at=created + 0.75, finished_at=created + 0.75 + wall_s,
                         attempt=1, exit_code=0, response=response,
                         metrics_json=json.dumps({"wall_s": wall_s, "exit_code": 0}))


async def _seed_runs(settings, folder: Path) -> None:
    """Run 1 (the baseline, every case passes), run 2: one case regressed, one still going."""
    cases = {"greets": ("hello", "hello"), "answers": ("beta", "beta"), "lists": ("a list", "list")}
    path = write_suite(folder, cases, repeat=4)
    client = LocalClient(settings, owner=ALICE)
    await client.open()
    try:
        for _ in range(2):
            await start_run(client, load_suite(path))
        await client.bless_suite_run(1)
    finally:
        await client.close()
    fixed = []
    for index in range(12):  # run 1: tests 1..12, greets / answers / lists × 4
        query = list(cases.values())[index // 4][0]
        fixed.append(_finish(index + 1, index, "COMPLETED", f"noop: {query}", 0.5 + index / 10))
    for index in range(4):  # run 2, greets: as before
        fixed.append(_finish(13 + index, 60 + index, "COMPLETED", "noop: hello", 0.6))
    for index in range(4):  # run 2, answers: another answer every time
        fixed.append(_finish(17 + index, 64 + index, "COMPLETED", "noop: gamma\nand a second line", 0.7))
    fixed.append(_finish(21, 68, "COMPLETED", "noop: a list", 0.4))  # run 2, lists: one done, one running
    running = T0 + 69 * 60
    store = await Store.open(settings.resolved_db_url, log_max_bytes=settings.log_max_bytes)
    try:
        async with store._write() as conn:  # noqa: SLF001 - fixed data for snapshots
            for test_id, values in fixed:
                await conn.execute(update(TESTS).where(TESTS.c.id == test_id).values(**values))
            await conn.execute(update(TESTS).where(TESTS.c.id == 22).values(
                status="RUNNING", created_at=running, queued_at=running, claimed_at=running, running_at=running,
                attempt=1, lease_owner="otherhost:4242:feedbeef", lease_expires_at=T0 + 10 * 365 * 86400,
                handle="0123456789ab"))
            for run_id, minute in ((1, 0), (2, 60)):
                await conn.execute(update(SUITE_RUNS).where(SUITE_RUNS.c.id == run_id)
                                   .values(created_at=T0 + minute * 60, agent_digest="a" * 64))
    finally:
        await store.close()


@pytest.fixture
def seeded_runs(noop_settings, tmp_path):
    asyncio.run(_seed_runs(noop_settings, tmp_path))
    return noop_settings


async def _suites_ready(pilot) -> None:
    app = pilot.app
    await wait_until(pilot, app.data_loaded.is_set, what="first snapshot")
    await pilot.press("f8")
    screen = app.screen
    await wait_until(pilot, lambda: screen.loaded and screen.selected_run_id == 2, what="run 2 shown")
    await pilot.press("tab", "down")  # the matrix: the regressed case
    await wait_until(pilot, lambda: "case answers: regressed" in screen_text(app), what="the case shown")
    await pilot.pause()


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
def test_suites_view_snapshot(seeded_runs, snap_compare, size):
    assert snap_compare(fixed_app(seeded_runs), terminal_size=size, run_before=_suites_ready)


async def test_f8_opens_the_view_from_the_code_editor_without_typing_and_help_lists_its_keys(noop_settings):
    app = make_app(noop_settings)
    async with app.run_test(size=(100, 40)) as pilot:
        await wait_until(pilot, app.data_loaded.is_set, what="first snapshot")
        code = app.query_one("#agent-code")
        code.focus()
        before = code.text
        await pilot.press("f8")
        assert isinstance(app.screen, SuitesScreen)
        assert "f8 Suites" in screen_text(app)  # the footer shows the way back too
        await pilot.press("question_mark")
        await wait_until(pilot, lambda: hasattr(app.screen, "sections"), what="the help")
        sections = dict(app.screen.sections)
        assert {b.id for b in sections["Suites view (F8)"]} >= {"suites.run", "suites.resume", "suites.bless"}
        assert "suites" in {b.id for b in sections["Everywhere"]}
        await pilot.press("escape")
        await pilot.press("f8")
        assert app.screen is app.main_screen
        assert code.text == before  # nothing was typed into the agent's code
