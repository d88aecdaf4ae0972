"""The agenttui full-screen app (R-24): editor, queue, live log and history panes.

Shape (Harlequin / Toolong / Posting):
- the engine is reached only through a `Client` (agenttui.client), held by the app's
  EngineLink (tui/engine_link.py), always from workers;
- results come back as typed messages (tui/messages.py) handled with `@on`; status-like
  snapshots coalesce, log batches never do;
- every Binding has an id (remappable from config.toml's [keymap]) and a tooltip; single
  letters live on the queue/history tables only, so typing in the editor is never hijacked;
- all styling is in styles/*.tcss.
"""

from __future__ import annotations

import asyncio
import functools
import time
import tomllib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual import on, work
from textual.app import App, SystemCommand
from textual.notifications import SeverityLevel
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Input, TabbedContent, TextArea

from agenttui.core.lifecycle import InvalidRequest
from agenttui.core.paths import config_file
from agenttui.core.resources import resource_dir
from agenttui.tui.engine_link import WATCH_INTERVAL_S, EngineLink, make_client
from agenttui.tui.formatting import (
    LocalTime,
    log_lines,
    log_title,
    outcome_lines,
    package_lines,
    package_log_lines,
    printable_text,
)
from agenttui.tui.gc_tuning import GcTuning
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
from agenttui.tui.screens.main import MainScreen
from agenttui.tui.widgets.editor import EditorPane
from agenttui.tui.widgets.history_table import HistoryTable
from agenttui.tui.widgets.log_view import LogView
from agenttui.tui.widgets.queue_table import QueueTable
from agenttui.tui.widgets.status_bar import StatusBar
from agenttui.tui.widgets.test_table import TestTable

if TYPE_CHECKING:
    from concurrent.futures import Future

    from agenttui.client.base import Client
    from agenttui.core.wire import TestView
    from agenttui.client.settings import ClientSettings
    from agenttui.core.config import Settings
    from agenttui.tui.screens.detail import DetailScreen
    from agenttui.tui.snapshot import Snapshot


def live(handler: Callable[..., None]) -> Callable[..., None]:
    """Drop engine results that arrive while the app is shutting down (no widgets left)."""

    @functools.wraps(handler)
    def wrapper(self: AgentTUI, *args: Any) -> None:
        if self.ui_live:
            handler(self, *args)

    return wrapper


def on_live(message_type: type[Message]) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """`@on(message_type)` for a handler that updates the main screen: `live`."""
    return lambda handler: on(message_type)(live(handler))


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


class AgentTUI(App[int]):
    TITLE = "agenttui"
    CSS_PATH = _styles()
    ENABLE_COMMAND_PALETTE = True
    PANES = Binding.Group("panes")  # one footer entry: "f2 f3 f4 f5 f6 panes"
    BINDINGS = [
        # Function keys: typing never sends them and tmux over SSH passes them on; priority,
        # so no focused widget keeps one (the code editor binds f6 to "select line").
        Binding("f2", "focus_pane('editor')", "Editor", id="focus_editor", priority=True, group=PANES,
                tooltip="Go to the code editor"),
        Binding("f3", "focus_pane('queue')", "Queue", id="focus_queue", priority=True, group=PANES, tooltip="Go to the queue"),
        Binding("f4", "focus_pane('history')", "History", id="focus_history", priority=True, group=PANES,
                tooltip="Go to the history"),
        Binding("f5", "focus_pane('log')", "Log", id="focus_log", priority=True, group=PANES, tooltip="Go to the log pane"),
        Binding("f6", "focus_pane('options')", "Options", id="focus_options", priority=True, group=PANES,
                tooltip="Go to the editor's options, at the Network field"),
        Binding("f8", "suites", "Suites", id="suites", priority=True,
                tooltip="Suite runs: progress, verdicts, the case × repeat matrix; run, resume, bless"),
        Binding("ctrl+j,alt+enter", "submit", "Submit", id="submit", priority=True,
                tooltip="Validate the editor's request and queue it (ctrl+j; alt+enter where the terminal sends it)"),
        Binding("question_mark", "help", "Help", id="help", tooltip="Show every key"),
        Binding("slash", "filter_history", "Filter", id="filter", tooltip="Filter the history (query, response, owner, status)"),
        Binding("ctrl+q", "quit", "Quit", id="quit", priority=True,
                tooltip="Quit; running tests keep running and are shown again next time"),
    ]
    TYPED_IN_TEXT_FIELDS = ("help", "filter_history")  # `?` and `/` are text there: not offered
    # Seconds a notification stays (top right, over the queue: styles/app.tcss). What must stay
    # longer stays elsewhere: a package's path in its log and detail screen.
    NOTICE_S: dict[str, float] = {"information": 3.0, "warning": 5.0, "error": 8.0}

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
        self.engine = EngineLink(
            client if client is not None else make_client(settings),
            self.post_message,
            backend=settings.backend,
            watch_interval_s=watch_interval_s or WATCH_INTERVAL_S,
            first_snapshot=first_snapshot,
        )
        self.localtime = localtime
        self._editor_queued: tuple[str, ...] | None = None  # the editor's text, while its submit travels
        self.keymap_overrides = load_keymap() if keymap is None else dict(keymap)

        self.selected_id: int | None = None
        self.views: dict[int, TestView] = {}
        self.data_loaded = asyncio.Event()  # first queue + history snapshot shown
        self._main_mounted = asyncio.Event()
        self._history_loaded = False
        self._queue_loaded = False
        self._log_token = 0
        self._gc_tuning = GcTuning()
        self.packages: dict[int, list[str]] = {}  # test id -> where its package is (package_lines)
        self._ended_unseen: dict[int, TestView] = {}  # ended, by its log; still queued by the last poll
        self.main_screen = MainScreen(
            settings, agent_path=agent_path, clock=clock, localtime=localtime, cursor_blink=cursor_blink
        )

    def notify(self, message: str, *, title: str = "", severity: SeverityLevel = "information",
               timeout: float | None = None, markup: bool = True) -> None:
        timeout = self.NOTICE_S.get(severity, self.NOTIFICATION_TIMEOUT) if timeout is None else timeout
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=markup)

    @property
    def client(self) -> Client:
        return self.engine.client

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
        mounted = self._main_mounted.is_set()
        return mounted and not self.engine.closed and self.is_running and self.main_screen.is_attached

    @on(MainScreen.Mounted)
    def _main_screen_mounted(self, message: MainScreen.Mounted) -> None:
        """The main screen's widgets exist (set up by the screen): keep them at hand and show
        the first snapshot if it has come."""
        screen = message.screen
        self.editor = screen.query_one(EditorPane)
        self.queue_table = screen.query_one(QueueTable)
        self.history_table = screen.query_one(HistoryTable)
        self.log_view = screen.query_one("#log-view", LogView)
        self.tabs = screen.query_one("#tests-tabs", TabbedContent)
        self.status_bar = screen.query_one(StatusBar)
        self._main_mounted.set()
        self.set_interval(1.0, self._tick)
        self._show_first()  # already read: in the first frame, not after it

    def on_detail_screen_mounted(self, message: DetailScreen.Mounted) -> None:
        # (Found by name: the detail screen's module loads when one is first opened.)
        screen = message.screen
        screen.run_worker(
            functools.partial(self.engine.show_and_follow, screen.test_id, screen.post_message,
                              keep_going=lambda: screen.is_attached),
            group="detail", exclusive=True, exit_on_error=False,
        )

    def _show_first(self) -> None:
        first = self.engine.take_first_snapshot()
        if first is not None:
            self._queue_updated(QueueUpdated(first[0]))
            self._history_updated(HistoryUpdated(first[1], ""))

    async def on_unmount(self) -> None:
        await self.engine.close()
        self._gc_tuning.restore()

    async def action_quit(self) -> None:
        await self.engine.close()
        self.exit(0)

    # The main screen's widgets, found once when it mounts (they live as long as the app).
    editor: EditorPane
    queue_table: QueueTable
    history_table: HistoryTable
    log_view: LogView
    tabs: TabbedContent
    status_bar: StatusBar

    # ------------------------------------------------------------------ engine workers
    @work(group="engine", exit_on_error=False)
    async def _open_engine(self) -> None:
        first = await self.engine.open()
        if self.engine.closed:
            return
        await self._main_mounted.wait()  # snapshots are handled by the main screen's widgets
        if first is not None:
            self._show_first()
        self.run_worker(functools.partial(self.engine.watch, first), group="watch", exclusive=True,
                        exit_on_error=False)
        await self.engine.check_backend()

    def wake_watcher(self, *, history: bool = False) -> None:
        self.engine.wake(history=history)

    def _engine_call(self, action: str, operation: Callable[..., Any], *args: Any) -> None:
        """Run one of the engine link's actions in a worker; its failures become ActionFailed
        messages."""
        self.run_worker(functools.partial(self.engine.run, action, operation, *args), group="engine",
                        exit_on_error=False)

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
        token = self._log_token
        self.log_view.reset(test_id)
        self._update_log_title()

        def may_have_ended() -> bool:
            view = self.views.get(test_id)
            return view is None or view.status.is_terminal

        self.run_worker(
            functools.partial(self.engine.follow_log, test_id, token, current=lambda: token == self._log_token,
                              may_have_ended=may_have_ended),
            group="log", exclusive=True, exit_on_error=False,
        )

    def _update_log_title(self) -> None:
        test_id = self.selected_id
        self.log_view.border_title = log_title(test_id, None if test_id is None else self.views.get(test_id))

    @on_live(TestTable.TestHighlighted)
    def _highlighted(self, message: TestTable.TestHighlighted) -> None:
        self.select_test(message.test_id, move_cursor=False)

    def _selected(self, action: str) -> int | None:
        if self.selected_id is None:
            self.notify(f"Select a test in the queue or history to {action}.", severity="warning")
        return self.selected_id

    # ------------------------------------------------------------------ snapshots in
    @on_live(QueueUpdated)
    def _queue_updated(self, message: QueueUpdated) -> None:
        queue = message.queue
        for view in queue.tests:
            self.views[view.id] = view
        for test_id in self._ended_unseen.keys() - {view.id for view in queue.tests}:
            self.views[test_id] = self._ended_unseen.pop(test_id)
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

    @on_live(HistoryUpdated)
    def _history_updated(self, message: HistoryUpdated) -> None:
        if message.search != self.engine.history_search:
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
            self.call_after_refresh(self._gc_tuning.apply)  # after the first full frame is out

    @on_live(EngineStatus)
    def _engine_status(self, message: EngineStatus) -> None:
        self.status_bar.set_problem(printable_text(message.problem) if message.problem else None)

    @on_live(LogLines)
    def _log_lines(self, message: LogLines) -> None:
        if message.token == self._log_token:
            self.log_view.feed(log_lines(message.records))

    @on_live(LogEnded)
    def _log_ended(self, message: LogEnded) -> None:
        if message.token != self._log_token:
            return
        view = message.view
        if view is not None:
            self.log_view.feed(outcome_lines(view, self.log_view.scrollable_content_region.width - 1))
            self._ended_under_watch(view)
        self.log_view.feed(package_log_lines(self.packages.get(message.test_id, [])))
        self.log_view.mark_ended()
        self._update_log_title()

    def _ended_under_watch(self, view: TestView) -> None:
        """The log's reader saw the test end (its final view): the queue and history show the
        change first, read at once, and the log header with them (never a poll apart)."""
        if view.id in self.queue_table.views and view.status.is_terminal:
            self._ended_unseen[view.id] = view  # shown with the QueueUpdated that drops its row
            self.engine.wake(history=True)
        else:
            self.views[view.id] = view

    @on_live(LogUnavailable)
    def _log_unavailable(self, message: LogUnavailable) -> None:
        if message.token == self._log_token:
            self.log_view.feed([f"[agenttui] {message.reason}"])
            self.log_view.mark_ended()

    @live
    def _tick(self) -> None:
        if self.queue_table.views:
            self.queue_table.refresh_times()

    # ------------------------------------------------------------------ results of actions
    @on_live(TestSubmitted)
    def _submitted(self, message: TestSubmitted) -> None:
        view = message.view
        if self._editor_queued is not None:  # the editor's own submit: its text is now in a test
            self.editor.mark_saved(self._editor_queued)
            self._editor_queued = None
        self.views[view.id] = view
        retry = f": retry of test {message.parent_id}" if message.parent_id else ""
        where = f" (queue position {view.position})" if view.position else ""
        self.notify(f"test {view.id} queued{retry}{where}", title="Submitted")
        self.tabs.active = "tab-queue"
        self.select_test(view.id)
        self.engine.wake(history=True)

    @on_live(TestCancelled)
    def _cancelled(self, message: TestCancelled) -> None:
        view = message.view
        text = "cancelled" if view.status.is_terminal else "cancel requested; stopping it"
        self.notify(f"test {view.id}: {text}", title="Cancel")
        self.engine.wake(history=True)

    @on_live(RequestRejected)
    def _rejected(self, message: RequestRejected) -> None:
        self.editor.show_errors(message.errors)
        self.notify("The request is invalid; nothing was queued.", severity="error")

    @on_live(RequestLoaded)
    def _request_loaded(self, message: RequestLoaded) -> None:
        if not self.editor.has_unsaved_changes:
            self._load_for_retry(message)
            return
        from agenttui.tui.screens.confirm import ConfirmScreen

        question = f"The editor holds changes that were never submitted. Replace them with test {message.test_id}'s request?"
        self.push_screen(
            ConfirmScreen(question, [("Replace", True)], title="Edit and retry"),
            lambda replace: self._load_for_retry(message) if replace else None,
        )

    def _load_for_retry(self, message: RequestLoaded) -> None:
        self.editor.load_request(message.request, retry_of=message.test_id)
        self.editor.query_one(TabbedContent).active = "tab-agent"
        self.editor.query_one("#agent-code", TextArea).focus()
        self.notify(f"test {message.test_id} loaded into the editor; edit it and press ctrl+j to retry",
                    title="Edit and retry")

    @on_live(HistoryCleared)
    def _history_cleared(self, message: HistoryCleared) -> None:
        self.notify(f"archived {message.archived} finished test(s) and purged their logs", title="History")
        self.engine.wake(history=True)

    @on_live(PackageReady)
    def _package_ready(self, message: PackageReady) -> None:
        lines = package_lines(message.path, message.copy_hint, message.url)
        self.notify("\n".join(lines), title=f"Package of test {message.test_id}", markup=False)
        # The notice goes in seconds: the path stays in the test's log pane and detail screen.
        self.packages[message.test_id] = lines
        if message.test_id == self.selected_id:
            self.log_view.feed(package_log_lines(lines))
        from agenttui.tui.screens.detail import DetailScreen

        if isinstance(self.screen, DetailScreen) and self.screen.test_id == message.test_id:
            self.screen.show_package(lines)

    @on_live(ActionFailed)
    def _failed(self, message: ActionFailed) -> None:
        # Engine messages may quote agent output (an error, a log line): escape it.
        self.notify(printable_text(message.text), title=f"Could not {message.action}", severity="error",
                    markup=False)

    # ------------------------------------------------------------------ actions
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("submit", "filter_history", "focus_pane") and self.screen is not self.main_screen:
            return False
        if action in self.TYPED_IN_TEXT_FIELDS and isinstance(self.focused, (Input, TextArea)):
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
        if parent_id is not None:
            editor.set_retry_of(None)
        self._editor_queued = editor.content()
        self._engine_call("submit", self.engine.submit, request, parent_id)

    def action_cancel_test(self) -> None:
        test_id = self._selected("cancel")
        if test_id is not None:
            self._engine_call("cancel", self.engine.cancel, test_id)

    def action_retry_test(self) -> None:
        test_id = self._selected("retry")
        if test_id is not None:
            self._leave_detail()
            self._engine_call("retry", self.engine.retry, test_id)

    def action_edit_retry(self) -> None:
        test_id = self._selected("edit and retry")
        if test_id is not None:
            self._leave_detail()
            self._engine_call("load the test", self.engine.load_request, test_id)

    def action_download_package(self) -> None:
        test_id = self._selected("package")
        if test_id is None:
            return
        if not self.engine.can_package:
            self.notify("Deployment packages are not available yet.", severity="warning")
            return
        self.notify(f"building the package of test {test_id}…")
        self._engine_call("build the package", self.engine.package, test_id)

    def action_show_detail(self) -> None:
        from agenttui.tui.screens.detail import DetailScreen  # not needed for the first frame

        test_id = self._selected("open")
        if test_id is not None:
            self.push_screen(DetailScreen(test_id, localtime=self.localtime, package=self.packages.get(test_id)))

    def action_show_calls(self) -> None:
        """The command palette's way to the calls view: the detail screen's test, else the selected one."""
        from agenttui.tui.screens.calls import CallsScreen  # not needed for the first frame

        test_id = getattr(self.screen, "test_id", None) or self._selected("see the model calls of")
        if test_id is not None:
            self.push_screen(CallsScreen(test_id, localtime=self.localtime))

    def action_filter_history(self) -> None:
        self.tabs.active = "tab-history"
        self.main_screen.query_one("#history-filter", Input).focus()

    def action_clear_history(self) -> None:
        from agenttui.tui.screens.confirm import clear_history_screen

        def chosen(older_than_s: float | None) -> None:
            if older_than_s is not None:
                self._engine_call("clear the history", self.engine.clear_history, older_than_s)

        self.push_screen(clear_history_screen(), chosen)

    def action_help(self) -> None:
        from agenttui.tui.screens.help import HelpScreen, help_sections

        self.push_screen(HelpScreen(help_sections(self.BINDINGS), self.keymap_overrides))

    def action_suites(self) -> None:
        from agenttui.tui.screens.suites import SuitesScreen  # not needed for the first frame

        if isinstance(self.screen, SuitesScreen):
            self.pop_screen()
        else:
            self.push_screen(SuitesScreen(localtime=self.localtime))

    def action_focus_pane(self, pane: str) -> None:
        self.main_screen.focus_pane(pane)

    def _leave_detail(self) -> None:
        from agenttui.tui.screens.detail import DetailScreen

        if isinstance(self.screen, DetailScreen):
            self.pop_screen()

    # ------------------------------------------------------------------ filter
    @on(Input.Changed, "#history-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.engine.filter_history(event.value.strip())

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
            ("Show model calls", "The selected test's calls: tokens, latency, cost, messages (t)", self.action_show_calls),
            ("Filter history", "Search query, response, owner, status (/)", self.action_filter_history),
            ("Clear old history", "Archive old finished tests (x)", self.action_clear_history),
            ("Follow log", "Jump to the end of the log and follow it (End)", self.log_view.action_follow),
            ("Focus editor", "F2", lambda: self.action_focus_pane("editor")),
            ("Focus queue", "F3", lambda: self.action_focus_pane("queue")),
            ("Focus history", "F4", lambda: self.action_focus_pane("history")),
            ("Focus log", "F5", lambda: self.action_focus_pane("log")),
            ("Focus options", "F6: the Network field", lambda: self.action_focus_pane("options")),
            ("Suites", "Suite runs, their matrix and baseline; run, resume, bless (F8)", self.action_suites),
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
