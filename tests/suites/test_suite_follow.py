"""Following a suite run (agenttui.suites.follow.follow_run, what `suite run` does after queueing):
one queue snapshot a round says which tests still wait or run, and each test is read once, when
it has left the queue; every end is reported once, in progress lines that name its case."""

from __future__ import annotations

import asyncio
from pathlib import Path

from agenttui.client.local import LocalClient
from agenttui.core.config import load_settings
from agenttui.suites.file import load_suite
from agenttui.suites.follow import follow_run
from agenttui.suites.runner import start_run


class CountingClient:
    """The real in-process client, counting the tests it is asked to show."""

    def __init__(self, inner: LocalClient) -> None:
        self.inner = inner
        self.shown: list[int] = []

    async def show(self, test_id: int):
        self.shown.append(test_id)
        return await self.inner.show(test_id)

    def __getattr__(self, name: str):
        return getattr(self.inner, name)


async def test_each_test_is_read_once_when_it_has_left_the_queue(tmp_path: Path):
    (tmp_path / "agent.py").write_text("def run(query):\n    return query\n")
    cases = "".join(f'[[case]]\nid = "c{i}"\nquery = "q{i}"\n[[case.expect]]\ntype = "contains"\nvalue = "q{i}"\n'
                    for i in range(4))
    (tmp_path / "suite.toml").write_text(f'name = "follow"\nagent = "agent.py"\nrepeat = 2\n{cases}')
    suite = load_suite(tmp_path / "suite.toml")
    # Two at a time for 0.4 s each: most of the eight tests wait in the queue for several rounds.
    settings = load_settings(db_url=f"sqlite+aiosqlite:///{tmp_path / 's.db'}", backend="noop", noop_run_s=0.4,
                             max_concurrent=2)
    inner = LocalClient(settings, work_whole_queue=True)
    await inner.open()
    try:
        client = CountingClient(inner)
        run = await start_run(client, suite)
        lines: list[str] = []
        views = await follow_run(client, run, lambda done, failed, total, line: lines.append(line) if line else None)
    finally:
        await inner.close()
    test_ids = sorted(slot.test_id for slot in run.slots)
    assert sorted(views) == test_ids and all(v.status.value == "COMPLETED" for v in views.values())
    assert sorted(client.shown) == test_ids  # once each: never while it waited or ran
    assert len(lines) == 8 and all(": pass" in line for line in lines)
    assert {line.split(" (test")[0] for line in lines} == {f"c{i} #{r}" for i in range(4) for r in (1, 2)}

async def test_a_report_of_a_run_still_going_counts_no_waiting_repeat_as_failed(tmp_path: Path):
    from agenttui.suites.report import to_html, to_junit
    from agenttui.suites.runner import build_report
    from agenttui.suites.stats import case_stats

    (tmp_path / "agent.py").write_text("def run(query):\n    return query\n")
    (tmp_path / "suite.toml").write_text('agent = "agent.py"\nrepeat = 3\n[[case]]\nid = "waits"\nquery = "q"\n')
    # One test "runs" for an hour, the two others wait behind it.
    settings = load_settings(db_url=f"sqlite+aiosqlite:///{tmp_path / 's.db'}", backend="noop", noop_run_s=3600,
                             max_concurrent=1)
    client = LocalClient(settings, work_whole_queue=True)
    await client.open()
    try:
        run = await start_run(client, load_suite(tmp_path / "suite.toml"))
        first = run.slots[0].test_id
        for _ in range(200):
            if (await client.show(first)).status.value == "RUNNING":
                break
            await asyncio.sleep(0.05)
        assert [(await client.show(s.test_id)).status.value for s in run.slots] == ["RUNNING", "QUEUED", "QUEUED"]
        report = await build_report(client, await client.suite_run(run.id))
    finally:
        await client.close()
    [case] = report.cases
    assert [(r.status, r.passed) for r in case.repeats] == [(None, None)] * 3
    stats = case_stats(case)
    assert (stats.passes, stats.finished, stats.stability) == (0, 0, "pending")
    assert to_junit(report).count('<skipped message="not finished"') == 3
    assert "✗" not in to_html(report)
