"""The agenttui full-screen app (R-24): editor, queue, live log and history panes.

Shape (Harlequin / Toolong / Posting):
- the engine is reached only through a `Client` (agenttui.client), always from workers;
- results come back as typed messages (tui/messages.py) handled with `@on`; status-like
  snapshots coalesce, log batches never do;
- every Binding has an id (remappable from config.toml's [keymap]) and a tooltip; single
  letters live on the queue/history tables only, so typing in the editor is never hijacked;
- all styling is in styles/*.tcss.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import getpass
import gc
import socket
import time
import tomllib
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer, Input, Static, TabbedContent, TabPane, TextArea

from agenttui.client.models import QueueView, TestView
from agenttui.core.lifecycle import InvalidRequest
from agenttui.core.paths import config_file
from agenttui.core.resources import resource_dir
from agenttui.tui.follow import follow
from agenttui.tui.formatting import LocalTime, log_lines, printable_text
from agenttui.tui.launch import HISTORY_LIMIT
from agenttui.tui.messages import (
    ActionFailed,
    EngineStatus,
    HistoryCleared,
    HistoryUpdated,
    LogEnded,
    LogLines,
    LogUnavailable,
    PackageReady,
    QueueUpdated,
    RequestLoaded,
    RequestRejected,
    TestCancelled,
    TestSubmitted,
)
from agenttui.tui.widgets.editor import EditorDefaults, EditorPane, OptionsForm
from agenttui.tui.widgets.history_table import HistoryTable
from agenttui.tui.widgets.log_view import LogView
from agenttui.tui.widgets.queue_table import QueueTable
from agenttui.tui.widgets.status_bar import StatusBar
from agenttui.tui.widgets.test_table import TestTable

if TYPE_CHECKING:
    from concurrent.futures import Future

    from agenttui.client.base import Client
    from agenttui.client.settings import ClientSettings
    from agenttui.core.config import Settings
    from agenttui.tui.launch import Snapshot

T = TypeVar("T")
GC_GEN0_THRESHOLD = 20_000  # allocations between young collections (CPython default: 700)

HISTORY_REFRESH_S = 30.0  # fallback: the history reloads at once when the queue changes
OPEN_RETRY_S = 5.0  # retry reaching the engine (a shared server that is down)
WATCH_INTERVAL_S = 1.0  # queue polling (woken at once by the user's own actions); logs: follow.py
CLEAR_CHOICES = (("older than 1 hour", 3600.0), ("older than 1 day", 86400.0), ("older than 7 days", 7 * 86400.0))


def live(handler: Callable[..., None]) -> Callable[..., None]:
    """Drop engine results that arrive while the app is shutting down (no widgets left)."""

    @functools.wraps(handler)
    def wrapper(self: AgentTUI, *args: Any) -> None:
        if self.ui_live:
            handler(self, *args)

    return wrapper


def _styles() -> list[str | Path]:
    folder = resource_dir("styles")
    return sorted(folder.glob("*.tcss"))


def load_keymap(path: Path | None = None) -> dict[str, str]:
    """`[keymap]` of config.toml: binding id -> keys (e.g. submit = "ctrl+s")."""
    path = path or config_file()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return {}
    keymap = data.get("keymap", {})
    return {str(k): str(v) for k, v in keymap.items() if isinstance(v, str)} if isinstance(keymap, dict) else {}


def make_client(settings: Settings | ClientSettings) -> Client:
    """The agenttui server's client (the personal server starts on demand), or with
    `in_process` the engine inside the TUI working the whole queue."""
    if settings.in_process:
        from agenttui.client.local import LocalClient

        return LocalClient(settings, work_whole_queue=True)
    from agenttui.client.remote import SocketClient

    return SocketClient(settings)


class MainScreen(Screen[None]):
    """The four panes. (A named screen so modal screens and the detail screen stack on it.)"""

    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (110, "-wide")]
    AUTO_FOCUS = "#agent-code"  # focused once: each focus change restyles the editor (:focus-within)

    def __init__(self, backend: str, defaults: EditorDefaults) -> None:
        super().__init__(id="main-screen")
        self.backend = backend
        self.defaults = defaults

    def compose(self) -> ComposeResult:
        # The breakpoint class the first Resize would set, set before the widgets are styled:
        # set after, it restyles every one of them.
        width = self.app.size.width
        current = max((b for b in self.HORIZONTAL_BREAKPOINTS if width >= b[0]), default=(0, ""))[1]
        for _, name in self.HORIZONTAL_BREAKPOINTS:
            self.set_class(name == current, name, update=False)
        yield StatusBar(self.backend, id="status-bar")
        with Horizontal(id="panes"):
            editor = EditorPane(self.defaults, id="editor")
            editor.border_title = "editor · F2"
            yield editor
            with Vertical(id="right"):
                with TabbedContent(id="tests-tabs", initial="tab-queue"):
                    with TabPane("Queue", id="tab-queue"):
                        yield QueueTable(id="queue-table")
                        yield Static("No running or queued tests. Write an agent and press ctrl+j.",
                                     id="queue-empty", classes="empty")
                    with TabPane("History", id="tab-history"):
                        yield Input(placeholder="/ filter: query, response, error, owner, status",
                                    compact=True, id="history-filter")
                        yield HistoryTable(id="history-table")
                        yield Static("No finished tests.", id="history-empty", classes="empty")
                log = LogView(id="log-view")
                log.border_title = "log · F5"
                yield log
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.app.main_screen_mounted()  # type: ignore[attr-defined]


class AgentTUI(App[int]):
    TITLE = "agenttui"
    CSS_PATH = _styles()
    ENABLE_COMMAND_PALETTE = True
    BINDINGS = [
        Binding("ctrl+j,alt+enter", "submit", "Submit", id="submit", priority=True,
                tooltip="Validate the editor's request and queue it (ctrl+j; alt+enter where the terminal sends it)"),
        Binding("question_mark", "help", "Help", id="help", tooltip="Show every key"),
        Binding("slash", "filter_history", "Filter", id="filter", tooltip="Filter the history (query, response, owner, status)"),
        Binding("ctrl+q", "quit", "Quit", id="quit", priority=True,
                tooltip="Quit; running tests keep running and are shown again next time"),
        Binding("f2", "focus_pane('editor')", "Editor", show=False, id="focus_editor", tooltip="Go to the editor"),
        Binding("f3", "focus_pane('queue')", "Queue", show=False, id="focus_queue", tooltip="Go to the queue"),
        Binding("f4", "focus_pane('history')", "History", show=False, id="focus_history", tooltip="Go to the history"),
        Binding("f5", "focus_pane('log')", "Log", show=False, id="focus_log", tooltip="Go to the log pane"),
    ]

    def __init__(
        self,
        settings: Settings | ClientSettings,
        *,
        client: Client | None = None,
        agent_path: Path | None = None,
        clock: Callable[[], float] = time.time,
        localtime: LocalTime = time.localtime,
        cursor_blink: bool = True,
        keymap: dict[str, str] | None = None,
        watch_interval_s: float | None = None,
        first_snapshot: Future[Snapshot] | None = None,
    ) -> None:
        super().__init__()
        self.settings = settings
        self.client: Client = client if client is not None else make_client(settings)
        self.agent_path = agent_path
        self.clock = clock
        self.localtime = localtime
        self.cursor_blink = cursor_blink
        self.keymap_overrides = load_keymap() if keymap is None else dict(keymap)
        self.watch_interval_s = watch_interval_s or WATCH_INTERVAL_S
        # The first queue + history, fetched in a thread while Textual loaded (tui/launch.py).
        self.first_snapshot = first_snapshot
        self._first_shown = False

        self.selected_id: int | None = None
        self.views: dict[int, TestView] = {}
        self.queue_view: QueueView | None = None
        self.history_search = ""
        self.engine_ready = asyncio.Event()
        self.data_loaded = asyncio.Event()  # first queue + history snapshot shown
        self._history_loaded = False
        self._queue_loaded = False
        self._wake = asyncio.Event()
        self._inflight: set[asyncio.Future[Any]] = set()
        self._history_dirty = True
        self._log_token = 0
        self._closed = False
        self._open_started = False
        self._gc_thresholds: tuple[int, ...] | None = None
        self._engine_problem: str | None = None
        self._main_ready = False
        self.main_screen = MainScreen(
            settings.backend,
            EditorDefaults(
                timeout_s=settings.default_timeout_s,
                cpus=settings.default_cpus,
                memory_mb=settings.default_memory_mb,
                pids=settings.default_pids,
                egress=settings.default_egress,
            ),
        )

    # ------------------------------------------------------------------ lifecycle
    def get_default_screen(self) -> Screen[Any]:
        return self.main_screen

    def on_mount(self) -> None:
        if self.keymap_overrides:
            self.set_keymap(self.keymap_overrides)
        self._open_engine()  # reach the engine while the main screen is being built

    @property
    def ui_live(self) -> bool:
        # is_running turns False as soon as shutdown starts, before widgets are pruned.
        return self._main_ready and not self._closed and self.is_running and self.main_screen.is_attached

    def main_screen_mounted(self) -> None:
        """Set up once the main screen's widgets exist."""
        screen = self.main_screen
        self.editor = screen.query_one(EditorPane)
        self.queue_table = screen.query_one(QueueTable)
        self.history_table = screen.query_one(HistoryTable)
        self.log_view = screen.query_one("#log-view", LogView)
        self.tabs = screen.query_one("#tests-tabs", TabbedContent)
        self.status_bar = screen.query_one(StatusBar)
        self._main_ready = True
        self._set_cursor_blink(self.main_screen)
        self.queue_table.clock = self.history_table.clock = self.clock
        self.queue_table.localtime = self.history_table.localtime = self.localtime
        if self.agent_path is not None:
            try:
                self.editor.load_file(self.agent_path)
            except (OSError, UnicodeDecodeError) as exc:
                self.notify(f"cannot load {self.agent_path}: {exc}", severity="error", markup=False)
        self.log_view.reset(None, "Select a test in the queue or history to see its log.")
        self.editor.query_one("#agent-code", TextArea).focus()
        self.set_interval(1.0, self._tick)
        first = self.first_snapshot
        if first is not None and first.done() and first.exception() is None:
            self._show_first(*first.result())  # in the first frame, not after it

    def _set_cursor_blink(self, root: Widget) -> None:
        if not self.cursor_blink:
            for widget in root.query("Input, TextArea"):
                widget.cursor_blink = False  # type: ignore[attr-defined]

    @on(OptionsForm.Mounted)
    def _options_mounted(self, message: OptionsForm.Mounted) -> None:
        self._set_cursor_blink(message.control)

    def _show_first(self, queue: QueueView, history: list[TestView]) -> None:
        if not self._first_shown:
            self._first_shown = True
            self._history_dirty = False  # (set again by any action meanwhile, which wakes the watcher)
            self._queue_updated(QueueUpdated(queue))
            self._history_updated(HistoryUpdated(history, ""))

    async def on_unmount(self) -> None:
        await self._close_client()
        self._restore_gc()

    async def action_quit(self) -> None:
        await self._close_client()
        self.exit(0)

    async def _close_client(self) -> None:
        """Stop the loops, let in-flight engine calls finish, then close the client (which
        leaves running tests running: R-26)."""
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        if self._inflight:
            await asyncio.wait(set(self._inflight), timeout=10)
        if self._open_started:
            with contextlib.suppress(Exception):
                await self.client.close()

    # The main screen's widgets, found once when it mounts (they live as long as the app).
    editor: EditorPane
    queue_table: QueueTable
    history_table: HistoryTable
    log_view: LogView
    tabs: TabbedContent
    status_bar: StatusBar

    # ------------------------------------------------------------------ engine workers
    async def call(self, awaitable: Awaitable[T]) -> T:
        """Await an engine call from a worker. Shielded: if the worker is cancelled (the app
        exits, the user selects another test) the call still completes, so no store query is
        abandoned half-way; `_close_client` waits for those before closing the client."""
        task = asyncio.ensure_future(awaitable)
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)
        return await asyncio.shield(task)

    @work(group="engine", exit_on_error=False)
    async def _open_engine(self) -> None:
        self._open_started = True
        first: Snapshot | None = None
        if self.first_snapshot is not None:
            try:
                first = await asyncio.wrap_future(self.first_snapshot)  # the server answered: open
            except Exception:
                pass  # tried again (and reported) below
        while first is None:  # e.g. a shared server that is down: say so, and keep trying
            try:
                await self.call(self.client.open())
                break
            except Exception as exc:
                self._engine_problem = f"cannot reach the engine: {exc}"
                self.post_message(EngineStatus(self._engine_problem))
            await asyncio.sleep(OPEN_RETRY_S)
            if self._closed:
                return
        self._engine_problem = None
        self.post_message(EngineStatus(None))
        self.engine_ready.set()
        if self._closed:
            return
        while not self._main_ready:  # snapshots are handled by the main screen's widgets
            await asyncio.sleep(0.01)
        if first is not None:
            self._show_first(*first)
        self._watch_engine(first)
        try:
            await self.call(self.client.check_backend())
        except Exception as exc:
            self.post_message(EngineStatus(f"{self.settings.backend} unavailable: {exc}"))

    @work(group="watch", exclusive=True, exit_on_error=False)
    async def _watch_engine(self, first: Snapshot | None = None) -> None:
        """Poll the queue (cheap) and reload the history when tests finish, the filter
        changes, or every HISTORY_REFRESH_S; post snapshots as coalescing messages. `first`
        is already shown: the polling starts one interval later."""
        last_queue: QueueView | None = None
        last_active: tuple[tuple[int, str], ...] | None = None
        last_history_at = 0.0
        problem = False
        if first is not None:
            last_queue = first[0]
            last_active = tuple((t.id, t.status.value) for t in last_queue.tests)
            last_history_at = time.monotonic()
            with contextlib.suppress(asyncio.TimeoutError):  # woken at once by an action meanwhile
                await asyncio.wait_for(self._wake.wait(), self.watch_interval_s)
        while not self._closed:
            try:
                queue = await self.call(self.client.queue())
                if queue != last_queue:
                    self.post_message(QueueUpdated(queue))
                    last_queue = queue
                active = tuple((t.id, t.status.value) for t in queue.tests)
                now = time.monotonic()
                if self._history_dirty or active != last_active or now - last_history_at > HISTORY_REFRESH_S:
                    self._history_dirty = False
                    search = self.history_search
                    tests = await self.call(self.client.history(search=search or None, limit=HISTORY_LIMIT))
                    self.post_message(HistoryUpdated(tests, search))
                    last_active, last_history_at = active, now
                if problem:
                    self.post_message(EngineStatus(None))
                    problem = False
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                problem = True
                self.post_message(EngineStatus(f"store unreachable: {exc}"))
            self._wake.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.watch_interval_s)

    def wake_watcher(self, *, history: bool = False) -> None:
        if history:
            self._history_dirty = True
        self._wake.set()

    async def _follow_logs(self, test_id: int, token: int) -> None:
        await self.engine_ready.wait()

        def current() -> bool:
            return token == self._log_token and not self._closed

        def may_have_ended() -> bool:
            view = self.views.get(test_id)
            return view is None or view.status.is_terminal

        try:
            async for item in follow(
                self.call, self.client, test_id, keep_going=current, may_have_ended=may_have_ended
            ):
                if isinstance(item, TestView):
                    self.post_message(LogEnded(test_id, token, item))
                else:
                    self.post_message(LogLines(test_id, token, item))
        except asyncio.CancelledError:
            raise
        except PermissionError as exc:  # another user's test: its log is theirs
            self.post_message(LogUnavailable(test_id, token, str(exc)))
        except Exception as exc:
            self.post_message(ActionFailed("follow the log", str(exc) or type(exc).__name__))

    def _engine_call(self, action: str, call: Callable[[], Any]) -> None:
        """Run `call()` (a coroutine function using the client) in a worker; its failures
        become ActionFailed messages."""

        async def runner() -> None:
            if not self.engine_ready.is_set() and self._engine_problem:
                self.post_message(ActionFailed(action, self._engine_problem))
                return
            await self.engine_ready.wait()
            try:
                await call()
            except InvalidRequest as exc:
                self.post_message(RequestRejected(exc.errors))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.post_message(ActionFailed(action, str(exc) or type(exc).__name__))

        self.run_worker(runner, group="engine", exit_on_error=False)

    # ------------------------------------------------------------------ selection
    def select_test(self, test_id: int, *, move_cursor: bool = True) -> None:
        """Make `test_id` the selected test: the log pane follows it, actions act on it."""
        if move_cursor:
            for table in (self.queue_table, self.history_table):
                if test_id in table.views and not table.has_focus:
                    table.select_test(test_id)
        if test_id == self.selected_id:
            return
        self.selected_id = test_id
        self._log_token += 1
        self.log_view.reset(test_id)
        self._update_log_title()
        self.run_worker(
            functools.partial(self._follow_logs, test_id, self._log_token),
            group="log", exclusive=True, exit_on_error=False,
        )

    def _update_log_title(self) -> None:
        test_id = self.selected_id
        if test_id is None:
            self.log_view.border_title = "log · F5"
            return
        view = self.views.get(test_id)
        title = f"log · test {test_id}"
        if view is not None:
            title += f" · {view.status.value} · {view.owner_name}"
            if view.log_truncated:
                title += " · truncated"
        self.log_view.border_title = title

    @on(TestTable.TestHighlighted)
    @live
    def _highlighted(self, message: TestTable.TestHighlighted) -> None:
        self.select_test(message.test_id, move_cursor=False)

    def _selected(self, action: str) -> int | None:
        if self.selected_id is None:
            self.notify(f"Select a test in the queue or history to {action}.", severity="warning")
        return self.selected_id

    # ------------------------------------------------------------------ snapshots in
    @on(QueueUpdated)
    @live
    def _queue_updated(self, message: QueueUpdated) -> None:
        queue = self.queue_view = message.queue
        for view in queue.tests:
            self.views[view.id] = view
        self.status_bar.set_queue(queue)
        self.queue_table.set_tests(queue.tests)
        self.main_screen.query_one("#queue-empty").display = not queue.tests
        self.queue_table.display = bool(queue.tests)
        if not self._queue_loaded:
            self._queue_loaded = True
            # Reopening: show a running test and the log it printed meanwhile.
            if self.selected_id is None and queue.tests:
                self.select_test(queue.tests[0].id)
            self._check_loaded()
        self._update_log_title()

    @on(HistoryUpdated)
    @live
    def _history_updated(self, message: HistoryUpdated) -> None:
        if message.search != self.history_search:
            return  # a newer filter is on its way
        finished_selected = False
        for view in message.tests:
            previous = self.views.get(view.id)
            if view.id == self.selected_id and (previous is None or not previous.status.is_terminal):
                finished_selected = True
            self.views[view.id] = view
        self.history_table.set_tests(message.tests)
        self.main_screen.query_one("#history-empty").display = not message.tests
        self.history_table.display = bool(message.tests)
        if finished_selected and self.selected_id is not None:
            # The test being watched has ended: show it where it now lives.
            self.history_table.select_test(self.selected_id)
            if self.tabs.active == "tab-queue" and not self.queue_table.has_focus:
                self.tabs.active = "tab-history"
        if not self._history_loaded:
            self._history_loaded = True
            if self.selected_id is None and message.tests and self._queue_loaded:
                self.select_test(message.tests[0].id)
            self._check_loaded()
        self._update_log_title()

    def _check_loaded(self) -> None:
        if self._queue_loaded and self._history_loaded and not self.data_loaded.is_set():
            if self.selected_id is None and self.history_table.views:
                self.select_test(next(iter(self.history_table.views)))
            self.data_loaded.set()
            self.call_after_refresh(self._tune_gc)  # after the first full frame is out

    def _tune_gc(self) -> None:
        """Keep the cyclic GC from stalling keys during a log flood: freeze what start-up built
        (Textual, widgets, modules) so full collections skip it, and collect less often. Measured
        on a 100k-line flood: gen-2 pauses 100-270 ms before, 20-40 ms after."""
        if self._gc_thresholds is not None:
            return
        self._gc_thresholds = gc.get_threshold()
        gc.collect()
        gc.freeze()
        gc.set_threshold(GC_GEN0_THRESHOLD, *self._gc_thresholds[1:])

    def _restore_gc(self) -> None:
        if self._gc_thresholds is not None:
            gc.unfreeze()
            gc.set_threshold(*self._gc_thresholds)
            self._gc_thresholds = None

    @on(EngineStatus)
    @live
    def _engine_status(self, message: EngineStatus) -> None:
        self.status_bar.set_problem(printable_text(message.problem) if message.problem else None)

    @on(LogLines)
    @live
    def _log_lines(self, message: LogLines) -> None:
        if message.token == self._log_token:
            self.log_view.feed(log_lines(message.records))

    @on(LogEnded)
    @live
    def _log_ended(self, message: LogEnded) -> None:
        if message.token != self._log_token:
            return
        view = message.view
        if view is not None:
            self.views[view.id] = view
            lines: list[str] = []
            if view.response is not None:
                lines.append("[agenttui] response:")
                lines.extend(printable_text(view.response).split("\n"))
            elif view.error:
                lines.append(f"[agenttui] error: {printable_text(view.error)}")
            self.log_view.feed(lines)
        self.log_view.mark_ended()
        self._update_log_title()

    @on(LogUnavailable)
    @live
    def _log_unavailable(self, message: LogUnavailable) -> None:
        if message.token == self._log_token:
            self.log_view.feed([f"[agenttui] {message.reason}"])
            self.log_view.mark_ended()

    @live
    def _tick(self) -> None:
        if self.queue_table.views:
            self.queue_table.refresh_times()

    # ------------------------------------------------------------------ results of actions
    @on(TestSubmitted)
    @live
    def _submitted(self, message: TestSubmitted) -> None:
        view = message.view
        self.views[view.id] = view
        what = f"retry of test {message.parent_id}" if message.parent_id else "test"
        where = f" (queue position {view.position})" if view.position else ""
        self.notify(f"{what} {view.id} queued{where}", title="Submitted")
        self.tabs.active = "tab-queue"
        self.select_test(view.id)
        self.wake_watcher(history=True)

    @on(TestCancelled)
    @live
    def _cancelled(self, message: TestCancelled) -> None:
        view = message.view
        text = "cancelled" if view.status.is_terminal else "cancel requested; stopping it"
        self.notify(f"test {view.id}: {text}", title="Cancel")
        self.wake_watcher(history=True)

    @on(RequestRejected)
    @live
    def _rejected(self, message: RequestRejected) -> None:
        self.editor.show_errors(message.errors)
        self.notify("The request is invalid; nothing was queued.", severity="error")

    @on(RequestLoaded)
    @live
    def _request_loaded(self, message: RequestLoaded) -> None:
        self.editor.load_request(message.request, retry_of=message.test_id)
        self.editor.query_one(TabbedContent).active = "tab-agent"
        self.editor.query_one("#agent-code", TextArea).focus()
        self.notify(f"test {message.test_id} loaded into the editor; edit it and press ctrl+j to retry",
                    title="Edit and retry")

    @on(HistoryCleared)
    @live
    def _history_cleared(self, message: HistoryCleared) -> None:
        self.notify(f"archived {message.archived} finished test(s) and purged their logs", title="History")
        self.wake_watcher(history=True)

    @on(PackageReady)
    @live
    def _package_ready(self, message: PackageReady) -> None:
        text = f"{message.path}\ncopy it off this box with:\n{message.copy_hint}"
        if message.url:  # the AWS backend also put it in S3
            text += f"\nor download it for 24 hours from:\n{message.url}"
        self.notify(text, title=f"Package of test {message.test_id}", timeout=60, markup=False)

    @on(ActionFailed)
    @live
    def _failed(self, message: ActionFailed) -> None:
        # Engine messages may quote agent output (an error, a log line): escape it.
        self.notify(printable_text(message.text), title=f"Could not {message.action}", severity="error",
                    markup=False)

    # ------------------------------------------------------------------ actions
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("submit", "filter_history", "focus_pane") and self.screen is not self.main_screen:
            return False
        return True

    def action_submit(self) -> None:
        editor = self.editor
        try:
            request = editor.collect()
        except InvalidRequest as exc:
            editor.show_errors(exc.errors)
            self.notify("The request is invalid; nothing was queued. See the marked fields.", severity="error")
            return
        editor.clear_errors()
        parent_id = editor.retry_of

        async def submit() -> None:
            view = await self.call(self.client.submit(request, parent_id=parent_id))
            self.post_message(TestSubmitted(view, parent_id))

        if parent_id is not None:
            editor.set_retry_of(None)
        self._engine_call("submit", submit)

    def action_cancel_test(self) -> None:
        test_id = self._selected("cancel")
        if test_id is None:
            return

        async def cancel() -> None:
            self.post_message(TestCancelled(await self.call(self.client.cancel(test_id))))

        self._engine_call("cancel", cancel)

    def action_retry_test(self) -> None:
        test_id = self._selected("retry")
        if test_id is None:
            return

        async def retry() -> None:
            self.post_message(TestSubmitted(await self.call(self.client.retry(test_id)), test_id))

        self._leave_detail()
        self._engine_call("retry", retry)

    def action_edit_retry(self) -> None:
        test_id = self._selected("edit and retry")
        if test_id is None:
            return

        async def load() -> None:
            self.post_message(RequestLoaded(test_id, await self.call(self.client.request(test_id))))

        self._leave_detail()
        self._engine_call("load the test", load)

    def action_download_package(self) -> None:
        test_id = self._selected("package")
        if test_id is None:
            return
        if not hasattr(self.client, "package"):
            self.notify("Deployment packages are not available yet.", severity="warning")
            return

        async def package() -> None:
            result = await self.call(self.client.package(test_id))
            host = await asyncio.to_thread(socket.getfqdn)  # may ask DNS: not on the UI loop
            hint = f"scp {getpass.getuser()}@{host}:{result.path} ."
            self.post_message(PackageReady(test_id, result.path, hint, getattr(result, "url", None)))

        self.notify(f"building the package of test {test_id}…")
        self._engine_call("build the package", package)

    def action_show_detail(self) -> None:
        from agenttui.tui.screens.detail import DetailScreen  # not needed for the first frame

        test_id = self._selected("open")
        if test_id is not None:
            self.push_screen(DetailScreen(test_id, localtime=self.localtime))

    def action_filter_history(self) -> None:
        self.tabs.active = "tab-history"
        self.main_screen.query_one("#history-filter", Input).focus()

    def action_clear_history(self) -> None:
        from agenttui.tui.screens.confirm import ConfirmScreen

        def chosen(older_than_s: float | None) -> None:
            if older_than_s is None:
                return

            async def clear() -> None:
                self.post_message(HistoryCleared(await self.call(self.client.clear_history(older_than_s)), older_than_s))

            self._engine_call("clear the history", clear)

        self.push_screen(
            ConfirmScreen(
                "Archive finished tests (everyone's) and purge their logs? Archived tests leave the history "
                "for good.",
                CLEAR_CHOICES,
                title="Clear old history",
            ),
            chosen,
        )

    def action_help(self) -> None:
        from agenttui.tui.screens.detail import DetailScreen
        from agenttui.tui.screens.help import EDITOR_KEYS, HelpScreen

        sections: list[tuple[str, Iterable[Any]]] = [
            ("Everywhere", self.BINDINGS),
            ("Editor", EDITOR_KEYS),
            ("Queue & history", HistoryTable.BINDINGS),
            ("Log pane", LogView.BINDINGS),
            ("Detail screen", DetailScreen.BINDINGS),
            ("Command palette", (("ctrl+p", "every action above, searchable (and Maximize a pane)"),)),
        ]
        self.push_screen(HelpScreen(sections))

    def action_focus_pane(self, pane: str) -> None:
        if pane == "editor":
            self.editor.query_one("#agent-code", TextArea).focus()
        elif pane == "queue":
            self.tabs.active = "tab-queue"
            self.queue_table.focus()
        elif pane == "history":
            self.tabs.active = "tab-history"
            self.history_table.focus()
        elif pane == "log":
            self.log_view.focus()

    def _leave_detail(self) -> None:
        from agenttui.tui.screens.detail import DetailScreen

        if isinstance(self.screen, DetailScreen):
            self.pop_screen()

    # ------------------------------------------------------------------ filter
    @on(Input.Changed, "#history-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.history_search = event.value.strip()
        self.wake_watcher(history=True)

    @on(Input.Submitted, "#history-filter")
    def _filter_done(self, event: Input.Submitted) -> None:
        self.history_table.focus()

    # ------------------------------------------------------------------ command palette
    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        commands = (
            ("Submit test", "Validate the editor's request and queue it (ctrl+j)", self.action_submit),
            ("Cancel selected test", "Stop a running test or dequeue a queued one (c)", self.action_cancel_test),
            ("Retry selected test", "Run it again as a new linked test (r)", self.action_retry_test),
            ("Edit and retry selected test", "Load it into the editor (e)", self.action_edit_retry),
            ("Download package of selected test", "Write its deployment zip (d)", self.action_download_package),
            ("Show test details", "Response, error, metrics and full log (enter)", self.action_show_detail),
            ("Filter history", "Search query, response, owner, status (/)", self.action_filter_history),
            ("Clear old history", "Archive old finished tests (x)", self.action_clear_history),
            ("Follow log", "Jump to the end of the log and follow it (End)", self.log_view.action_follow),
            ("Focus editor", "F2", lambda: self.action_focus_pane("editor")),
            ("Focus queue", "F3", lambda: self.action_focus_pane("queue")),
            ("Focus history", "F4", lambda: self.action_focus_pane("history")),
            ("Focus log", "F5", lambda: self.action_focus_pane("log")),
            ("New test", "Forget the retry link of an edited test", lambda: self.editor.set_retry_of(None)),
        )
        for title, help_text, callback in commands:
            yield SystemCommand(title, help_text, callback)


def run_app(
    settings: Settings | ClientSettings,
    agent_path: Path | None = None,
    first_snapshot: Future[Snapshot] | None = None,
) -> int:
    """Entry point used by `agenttui` (tui/launch.py)."""
    app = AgentTUI(settings, agent_path=agent_path, first_snapshot=first_snapshot)
    result = app.run()
    return int(result or 0) if app.return_code is None else app.return_code
