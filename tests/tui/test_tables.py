"""The queue and history tables on their own, in a bare app: cells follow their tests' changes."""

from __future__ import annotations

import dataclasses

from textual.app import App, ComposeResult

from agenttui.core.lifecycle import Status
from agenttui.core.wire import TestView
from agenttui.tui.widgets.queue_table import QueueTable

QUEUED_VIEW = TestView(
    id=1, status=Status.QUEUED, owner_name="alice", owner_uid=1000, priority="normal", query="q",
    provider="ollama", model_id="m", attempt=0, parent_id=None, created_at=0.0, claimed_at=None,
    running_at=None, finished_at=None, exit_code=None, oom_killed=False, failure_kind=None, error=None,
    response=None, metrics={}, log_lines=0, log_truncated=False, cancel_requested=False, position=1,
)


class TableApp(App[None]):
    def compose(self) -> ComposeResult:
        yield QueueTable(id="queue")


def row_text(table: QueueTable) -> str:
    return "".join(segment.text for segment in table.render_line(1))  # line 0 is the header


async def test_a_status_longer_than_its_column_widens_it_instead_of_being_cut():
    app = TableApp()
    async with app.run_test(size=(120, 10)) as pilot:
        table = app.query_one(QueueTable)
        table.set_tests([QUEUED_VIEW])  # the column is sized for "QUEUED"
        await pilot.pause()
        assert "QUEUED" in row_text(table)
        running = dataclasses.replace(QUEUED_VIEW, status=Status.RUNNING, position=None, running_at=1.0)
        table.set_tests([running])  # the same rows: the cells are updated in place
        await pilot.pause()
        assert "RUNNING " in row_text(table)
        cancelling = dataclasses.replace(running, cancel_requested=True)
        table.set_tests([cancelling])
        await pilot.pause()
        assert "RUNNING ✗" in row_text(table)


async def test_another_users_hidden_content_says_so_instead_of_showing_blank():
    app = TableApp()
    async with app.run_test(size=(120, 10)) as pilot:
        table = app.query_one(QueueTable)
        table.set_tests([dataclasses.replace(QUEUED_VIEW, query="", content_hidden=True)])
        await pilot.pause()
        assert "(hidden: not your test)" in row_text(table)
