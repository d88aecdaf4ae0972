"""TUI benchmarks: the log pane's sustained lines/s and the app's first paint.

    .venv/bin/python bench/bench_tui.py [--lines 300000] [--skip-tmux]

1. Log pane throughput: lines are fed to the real app's log pane (AgentTUI, 120x40, every
   other pane on screen) in batches as the follow worker delivers them, flushed every 50 ms
   into Log.write_lines, and the screen keeps rendering. Reported as lines/s, next to two
   baselines in the same harness: a bare Textual `Log` fed the same batches (the ceiling) and
   a bare `Log` fed one `write_line` per line (what a message per line costs).
2. First paint: (a) in-process, from App.run_test() to the first frame with the queue and
   history loaded; (b) the real `agenttui` binary in tmux, from launch to the
   status bar showing the queue (Python start-up and imports included), with the personal
   server already running (as after the first launch); (c) the very first launch, which
   starts the server; (d) `agenttui --in-process` (the engine inside the TUI, a new store);
   (e) with `--history N`: (b) over a store holding N finished tests (bench/bench_history.py
   writes them), its server running.

`--first-paint-only --repeat N` measures only the first paints, N times each (the load
average is printed first; compare runs taken close together).

Not part of the test run; numbers depend on the machine (and on its other load).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

os.environ.setdefault("TEXTUAL_ANIMATIONS", "none")


def _isolate() -> Path:
    home = Path(tempfile.mkdtemp(prefix="agenttui-bench-"))
    for var in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME"):
        (home / var).mkdir()
        os.environ[var] = str(home / var)
    runtime = Path(tempfile.mkdtemp(prefix="at-", dir="/tmp"))
    os.environ["XDG_RUNTIME_DIR"] = str(runtime)
    return home


LINE = "flood line {i} " + "x" * 60


def _batches(total: int, size: int):
    for start in range(0, total, size):
        yield [LINE.format(i=i) for i in range(start, min(total, start + size))]


async def _drive(app, feed, flushed, total: int, batch: int, interval: float) -> float:
    """Feed `total` lines in batches every `interval` s; seconds until all are on the pane."""
    started = time.perf_counter()
    for lines in _batches(total, batch):
        feed(lines)
        await asyncio.sleep(interval)
    while flushed() < total:
        await asyncio.sleep(0.005)
    return time.perf_counter() - started


async def bench_app_log_pane(total: int, batch: int) -> float:
    from agenttui.client.local import LocalClient
    from agenttui.core.config import load_settings
    from agenttui.tui.app import AgentTUI

    settings = load_settings(backend="noop")
    app = AgentTUI(settings, client=LocalClient(settings), cursor_blink=False, keymap={})
    async with app.run_test(size=(120, 40)) as pilot:
        await app.data_loaded.wait()
        log = app.log_view
        log.max_lines = None  # measure the writes, not the pane's cap
        log.reset(1)
        await pilot.pause()
        seconds = await _drive(app, log.feed, lambda: log.line_count, total, batch, 0.01)
        await pilot.pause()
        assert log.line_count == total, log.line_count
    return total / seconds


async def bench_bare_log(total: int, batch: int, per_line: bool) -> float:
    from textual.app import App, ComposeResult
    from textual.widgets import Log

    class Bare(App[None]):
        def compose(self) -> ComposeResult:
            yield Log(max_lines=None)

    app = Bare()
    async with app.run_test(size=(120, 40)) as pilot:
        log = app.query_one(Log)

        def feed(lines: list[str]) -> None:
            if per_line:
                for line in lines:
                    log.write_line(line)
            else:
                log.write_lines(lines)

        seconds = await _drive(app, feed, lambda: log.line_count, total, batch, 0.01)
        await pilot.pause()
    return total / seconds


async def bench_first_paint_in_process() -> float:
    from agenttui.client.local import LocalClient
    from agenttui.core.config import load_settings
    from agenttui.tui.app import AgentTUI

    settings = load_settings(backend="noop")
    started = time.perf_counter()
    app = AgentTUI(settings, client=LocalClient(settings), cursor_blink=False, keymap={})
    async with app.run_test(size=(120, 40)) as pilot:
        await app.data_loaded.wait()
        await pilot.pause()
        return time.perf_counter() - started


def bench_first_paint_tmux(*, in_process: bool = True) -> float | None:
    """Launch the real binary in a private tmux server; seconds until the status bar shows
    the queue (so the engine answered). Without in_process it talks to the personal server."""
    if not shutil.which("tmux"):
        return None
    import re

    exe = Path(sys.executable).parent / "agenttui"
    tmux = ["tmux", "-L", f"agenttui-bench-{uuid.uuid4().hex[:8]}"]  # a private tmux server
    env = " ".join(f"{k}={os.environ[k]}" for k in os.environ if k.startswith("XDG_"))
    command = f"env {env} AGENTTUI_BACKEND=noop {exe}" + (" --in-process" if in_process else "")
    started = time.perf_counter()
    subprocess.run([*tmux, "new-session", "-d", "-s", "bench", "-x", "120", "-y", "40", command], check=True)
    try:
        while time.perf_counter() - started < 30:
            screen = subprocess.run([*tmux, "capture-pane", "-p", "-t", "bench"], capture_output=True,
                                    text=True).stdout
            if re.search(r"running \d+/", screen) and "Queue" in screen:
                return time.perf_counter() - started
            time.sleep(0.01)
        return None
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True)


def stop_personal_server(wait: bool = False) -> None:
    lock = Path(os.environ["XDG_RUNTIME_DIR"]) / "agenttui" / "agenttui.sock.lock"
    try:
        pid = int(lock.read_text().strip())
        os.kill(pid, signal.SIGTERM)
        while wait:  # until it has gone: the next launch must start a server of its own
            time.sleep(0.05)
            os.kill(pid, 0)
    except (OSError, ValueError):
        pass


def _median_line(label: str, samples: list[float | None], note: str) -> str:
    good = sorted(x for x in samples if x is not None)
    if not good:
        return f"{label} no paint within 30 s"
    return (f"{label} {good[len(good) // 2] * 1000:>12,.0f} ms  (median of {len(good)}, best "
            f"{good[0] * 1000:,.0f} ms; {note})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=300_000)
    parser.add_argument("--batch", type=int, default=5_000, help="lines per delivered batch")
    parser.add_argument("--skip-tmux", action="store_true")
    parser.add_argument("--first-paint-only", action="store_true", help="skip the log pane figures")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each first-paint figure")
    parser.add_argument("--history", type=int, default=0, metavar="N",
                        help="also the binary's first paint over a store of N finished tests")
    args = parser.parse_args()
    _isolate()
    if not args.first_paint_only:
        bench_log_pane(args)
    bench_first_paint(args)


def bench_log_pane(args: argparse.Namespace) -> None:
    pane = asyncio.run(bench_app_log_pane(args.lines, args.batch))
    bare = asyncio.run(bench_bare_log(args.lines, args.batch, per_line=False))
    per_line_total = min(args.lines, 30_000)
    per_line = asyncio.run(bench_bare_log(per_line_total, args.batch, per_line=True))
    print(f"log pane (agenttui, 120x40):     {pane:>12,.0f} lines/s  (target >= 100,000)")
    print(f"bare Log, batched write_lines:   {bare:>12,.0f} lines/s  (pane / bare = {pane / bare:.2f})")
    print(f"bare Log, one write_line a line: {per_line:>12,.0f} lines/s  (pane / per-line = {pane / per_line:.1f}x)")


def bench_first_paint(args: argparse.Namespace) -> None:
    n = args.repeat
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    firsts = [asyncio.run(bench_first_paint_in_process()) for _ in range(n)]
    print(_median_line("first paint, in-process app:    ", firsts, "run_test -> queue and history shown"))
    if not args.skip_tmux:
        try:
            cold = bench_first_paint_tmux(in_process=False)  # this one starts the personal server
            samples = [bench_first_paint_tmux(in_process=False) for _ in range(n)]
        finally:
            stop_personal_server(wait=True)
        print(_median_line("first paint, agenttui in tmux:  ", samples,
                           "launch -> status bar with the queue, Python start-up included; the personal "
                           "server running, as after the first launch"))
        print(_median_line("first paint, first launch:      ", [cold], "the personal server starts too"))
        samples = [bench_first_paint_tmux() for _ in range(n)]
        print(_median_line("first paint, --in-process:      ", samples, "the engine in the TUI, new store"))
        if args.history:
            bench_first_paint_history(args.history, n)


def bench_first_paint_history(finished: int, repeat: int) -> None:
    """The binary in tmux over a store of `finished` finished tests, its server running."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import bench_history

    data = Path(tempfile.mkdtemp(prefix="agenttui-bench-history-"))
    (data / "agenttui").mkdir()
    bench_history.build(data / "agenttui" / "agenttui.db", finished, waiting=False)
    os.environ["XDG_DATA_HOME"] = str(data)  # the personal server's store from now on
    try:
        bench_first_paint_tmux(in_process=False)  # starts the server over that store
        samples = [bench_first_paint_tmux(in_process=False) for _ in range(repeat)]
    finally:
        stop_personal_server(wait=True)
        shutil.rmtree(data, ignore_errors=True)  # the store of that many tests
    print(_median_line(f"first paint, {finished // 1000}k history in tmux:", samples,
                       f"launch -> status bar with the queue, {finished:,} finished tests in the store"))


if __name__ == "__main__":
    main()
