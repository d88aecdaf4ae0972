"""The app stays responsive while an agent floods its log (issue 4, Quality): key presses are
handled within 200 ms (95th percentile; none over 500 ms) while 100k lines stream into the log pane.

Two floods: a simulated one (another process appends lines to the store as fast as it can,
as the server does; always runs) and the real one (a Docker container printing 100k lines,
run by the agenttui server; marked docker). Keys are pressed the way a user watching the
flood would (a few a second: switch tabs, open and close the help), each timed from delivery
to its visible effect. Each test prints its figures (`pytest -s` shows them)."""

from __future__ import annotations

import asyncio
import dataclasses
import statistics
import sys
import time

import pytest
from textual import events
from textual.widgets import Input

from agenttui.client.local import LocalClient
from agenttui.client.remote import SocketClient
from agenttui.core.config import load_settings
from agenttui.engine.store import Owner
from agenttui.tui.screens.help import HelpScreen

from .conftest import make_app, status_of, wait_until
from .seed import ACTIVE, seed_store

pytestmark = pytest.mark.alone  # key latencies: measured with nothing else running

FLOOD_LINES = 100_000
KEY_BUDGET_S = 0.200
# A single key may meet a scheduling pause of a shared CI box; none may take this long.
KEY_WORST_S = 0.500


async def _press_and_time(app, key: str, character: str | None, done) -> float:
    """Deliver a key like the terminal driver does and time until its effect is visible."""
    started = time.perf_counter()
    event = events.Key(key, character)
    event.set_sender(app)
    app._driver.send_message(event)
    while not done():
        await asyncio.sleep(0.002)
    return time.perf_counter() - started


async def _probe_keys(app, until, pause_s: float = 0.4) -> list[float]:
    """Press keys a user would press while watching a flood, timing each until its effect
    shows: switch the Queue/History tabs (F4/F3), open and close the help (? / esc)."""
    presses = [
        ("f4", None, lambda: app.tabs.active == "tab-history"),
        ("f3", None, lambda: app.tabs.active == "tab-queue"),
        ("question_mark", "?", lambda: isinstance(app.screen, HelpScreen)),
        ("escape", None, lambda: not isinstance(app.screen, HelpScreen)),
    ]
    latencies: list[float] = []
    while not until():
        for key, character, done in presses:
            latencies.append(await _press_and_time(app, key, character, done))
            await asyncio.sleep(pause_s)
    return latencies


def _report(label: str, latencies: list[float], lines: int, seconds: float) -> str:
    ordered = sorted(latencies)
    p95 = ordered[int(0.95 * (len(ordered) - 1))]
    return (
        f"{label}: {lines:,} lines in {seconds:.2f} s ({lines / seconds:,.0f} lines/s end to end); "
        f"{len(latencies)} key presses during the flood: median {statistics.median(latencies) * 1000:.0f} ms, "
        f"p95 {p95 * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms"
    )


WRITER = """
import asyncio, sys, time
from agenttui.engine.store import Store

async def main(url, test_id, total):
    store = await Store.open(url)
    now = time.time()
    for start in range(0, total, 500):
        lines = [(now, "stdout", f"flood line {i} " + "x" * 40) for i in range(start, min(total, start + 500))]
        await store.append_logs(test_id, lines)
    await store.close()

asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
"""


async def test_keys_answer_within_200ms_while_100k_lines_arrive(noop_settings):
    """An agent floods its log: another process (as the server would) stores 100k lines as
    fast as it can while the TUI follows them and the user presses keys."""
    me = Owner.current()
    await seed_store(noop_settings, [dataclasses.replace(ACTIVE[0], owner=me, logs=[])], t0=time.time() - 60)
    app = make_app(noop_settings, client=LocalClient(noop_settings, owner=me))
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: app.selected_id == 1, what="running test followed")
        await pilot.press("f3")  # the queue table: `?` is a key there, not text
        started = time.perf_counter()
        writer = await asyncio.create_subprocess_exec(
            sys.executable, "-c", WRITER, noop_settings.resolved_db_url, "1", str(FLOOD_LINES)
        )
        try:
            # The store takes 100k lines in under 2 s here: press keys quickly enough to sample it.
            latencies = await _probe_keys(app, lambda: app.log_view.lines_received >= FLOOD_LINES, pause_s=0.1)
        finally:
            assert await writer.wait() == 0
        elapsed = time.perf_counter() - started
        print("\n" + _report("simulated flood", latencies, FLOOD_LINES, elapsed))
        app.log_view.flush()
        assert app.log_view.line_count >= FLOOD_LINES
        assert len(latencies) >= 8
        ordered = sorted(latencies)
        assert ordered[int(0.95 * (len(ordered) - 1))] < KEY_BUDGET_S, [round(x * 1000) for x in ordered[-5:]]
        assert ordered[-1] < KEY_WORST_S, [round(x * 1000) for x in ordered[-5:]]


@pytest.mark.docker
async def test_keys_answer_within_200ms_while_a_container_prints_100k_lines(monkeypatch):
    """The real thing: the default setup (the TUI talks to the agenttui server, which runs the
    container and stores its output) while the agent prints 100k lines. Everything shares the
    machine's CPUs with the container and Docker, so the bar is on the 95th percentile; the
    maximum is reported."""
    monkeypatch.setenv("AGENTTUI_DEFAULT_EGRESS", "none")  # no model endpoint needed
    settings = load_settings()
    app = make_app(settings, client=SocketClient(settings))
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, app.data_loaded.is_set, timeout=30, what="server started")
        app.query_one("#agent-code").load_text(
            "import sys\n\n\ndef run(query):\n"
            f"    for i in range({FLOOD_LINES}):\n"
            "        sys.stdout.write(f'flood line {i} ' + 'x' * 40 + '\\n')\n"
            "    return 'flooded'\n"
        )
        app.query_one("#query", Input).value = "flood"
        await pilot.pause()
        await pilot.press("ctrl+j")
        await wait_until(pilot, lambda: status_of(app, 1) in ("RUNNING", "COMPLETED"), timeout=60,
                         what="container running")
        await pilot.press("f3")
        started = time.perf_counter()
        latencies = await _probe_keys(app, lambda: app.log_view.ended or time.perf_counter() - started > 90)
        elapsed = time.perf_counter() - started
        print("\n" + _report("docker flood via the server", latencies, app.log_view.lines_received, elapsed))
        assert status_of(app, 1) == "COMPLETED"
        assert app.log_view.lines_received >= FLOOD_LINES
        ordered = sorted(latencies)
        assert ordered[int(0.95 * (len(ordered) - 1))] < KEY_BUDGET_S, [round(x * 1000) for x in ordered[-5:]]
