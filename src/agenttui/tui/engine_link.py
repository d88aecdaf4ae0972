"""The app's link to the engine: the Client, and every call the TUI makes through it.

A plain object, not a widget: the app runs its coroutines as workers and the results come back
as typed messages (tui/messages.py) through `post`, so tui/app.py is only about the screen.
- Every engine call goes through `call`, shielded: a worker cancelled at exit never abandons a
  half-done store query, and `close` waits for those calls before closing the client (which
  leaves running tests running: R-26).
- `open` reaches the engine (retrying while a shared server is down), `watch` polls the queue
  and reloads the history, `follow_log` streams the selected test's log.
- The user's actions (`submit`, `cancel`, ...) run through `run`, which turns their failures
  into ActionFailed / RequestRejected messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from agenttui.client.hints import copy_hint
from agenttui.core.wire import QueueView, TestView
from agenttui.core.lifecycle import InvalidRequest
from agenttui.tui.follow import follow
from agenttui.tui import messages
from agenttui.tui.snapshot import HISTORY_LIMIT

if TYPE_CHECKING:
    from concurrent.futures import Future

    from textual.message import Message

    from agenttui.client.base import Client
    from agenttui.client.settings import ClientSettings
    from agenttui.core.config import Settings
    from agenttui.core.domain import TestRequest
    from agenttui.tui.snapshot import Snapshot

T = TypeVar("T")
Post = Callable[["Message"], object]

HISTORY_REFRESH_S = 30.0  # fallback: the history reloads at once when the queue changes
OPEN_RETRY_S = 5.0  # retry reaching the engine (a shared server that is down)
WATCH_INTERVAL_S = 1.0  # queue polling (woken at once by the user's own actions); logs: follow.py


def make_client(settings: Settings | ClientSettings) -> Client:
    """The agenttui server's client (the personal server starts on demand), or with
    `in_process` the engine inside the TUI working the whole queue."""
    if settings.in_process:
        from agenttui.client.local import LocalClient

        return LocalClient(settings, work_whole_queue=True)
    from agenttui.client.remote import SocketClient

    return SocketClient(settings)


def failure_text(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


class EngineLink:
    """Owns the app's Client; posts what the engine answers as messages."""

    def __init__(
        self,
        client: Client,
        post: Post,
        *,
        backend: str,
        watch_interval_s: float = WATCH_INTERVAL_S,
        first_snapshot: Future[Snapshot] | None = None,
    ) -> None:
        self.client = client
        self.backend = backend
        self.watch_interval_s = watch_interval_s
        self.ready = asyncio.Event()  # the engine answered
        self.closed = False
        self.problem: str | None = None  # why the engine cannot be reached, until it is
        self.history_search = ""  # the history filter the watcher reads with
        self._post = post
        # The first queue + history, fetched in a thread while Textual loaded (tui/launch.py).
        self._first_snapshot = first_snapshot
        self._first_taken = False
        self._opened = False
        self._inflight: set[asyncio.Future[Any]] = set()
        self._wake = asyncio.Event()
        self._history_dirty = True

    async def call(self, awaitable: Awaitable[T]) -> T:
        """Await an engine call from a worker. Shielded: if the worker is cancelled (the app
        exits, the user selects another test) the call still completes, so no store query is
        abandoned half-way; `close` waits for those before closing the client."""
        task = asyncio.ensure_future(awaitable)
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)
        return await asyncio.shield(task)

    async def close(self) -> None:
        """Stop the loops, let in-flight engine calls finish, then close the client (which
        leaves running tests running: R-26)."""
        if self.closed:
            return
        self.closed = True
        self._wake.set()
        if self._inflight:
            await asyncio.wait(set(self._inflight), timeout=10)
        if self._opened:
            with contextlib.suppress(Exception):
                await self.client.close()

    # ------------------------------------------------------------------ queue and history
    def take_first_snapshot(self) -> Snapshot | None:
        """The snapshot read at launch, the first time it is asked for once it has arrived
        (None before that, after that, or when reading it failed)."""
        first = self._first_snapshot
        if self._first_taken or first is None or not first.done() or first.exception() is not None:
            return None
        self._first_taken = True
        self._history_dirty = False  # (set again by any action meanwhile, which wakes the watcher)
        return first.result()

    async def open(self) -> Snapshot | None:
        """Reach the engine, saying what is wrong and trying again every OPEN_RETRY_S while it
        cannot be reached (e.g. a shared server that is down); then `ready` is set. Returns the
        snapshot read at launch when there is one (the server answered it). Returns early,
        `ready` unset, when the link is closed meanwhile."""
        self._opened = True
        first: Snapshot | None = None
        if self._first_snapshot is not None:
            try:
                first = await asyncio.wrap_future(self._first_snapshot)  # the server answered: open
            except Exception:
                pass  # tried again (and reported) below
        while first is None:
            try:
                await self.call(self.client.open())
                break
            except Exception as exc:
                self.problem = f"cannot reach the engine: {exc}"
                self._post(messages.EngineStatus(self.problem))
            await asyncio.sleep(OPEN_RETRY_S)
            if self.closed:
                return None
        self.problem = None
        self._post(messages.EngineStatus(None))
        self.ready.set()
        return first

    async def check_backend(self) -> None:
        try:
            await self.call(self.client.check_backend())
        except Exception as exc:
            self._post(messages.EngineStatus(f"{self.backend} unavailable: {exc}"))

    async def watch(self, first: Snapshot | None = None) -> None:
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
            await self._nap()  # woken at once by an action meanwhile
        while not self.closed:
            try:
                queue = await self.call(self.client.queue())
                if queue != last_queue:
                    self._post(messages.QueueUpdated(queue))
                    last_queue = queue
                active = tuple((t.id, t.status.value) for t in queue.tests)
                now = time.monotonic()
                if self._history_dirty or active != last_active or now - last_history_at > HISTORY_REFRESH_S:
                    self._history_dirty = False
                    search = self.history_search
                    tests = await self.call(self.client.history(search=search or None, limit=HISTORY_LIMIT))
                    self._post(messages.HistoryUpdated(tests, search))
                    last_active, last_history_at = active, now
                if problem:
                    self._post(messages.EngineStatus(None))
                    problem = False
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                problem = True
                self._post(messages.EngineStatus(f"store unreachable: {exc}"))
            self._wake.clear()
            await self._nap()

    async def _nap(self) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._wake.wait(), self.watch_interval_s)

    def wake(self, *, history: bool = False) -> None:
        """Poll now (and reload the history), rather than at the next interval."""
        if history:
            self._history_dirty = True
        self._wake.set()

    def filter_history(self, search: str) -> None:
        self.history_search = search
        self.wake(history=True)

    # ------------------------------------------------------------------ logs
    async def follow_log(
        self,
        test_id: int,
        token: int,
        *,
        current: Callable[[], bool],
        may_have_ended: Callable[[], bool],
    ) -> None:
        """Post the test's log as LogLines (tagged with `token`) while `current()`, then
        LogEnded with its final view."""
        await self.ready.wait()
        try:
            await self._relay_log(
                test_id, token, self._post, keep_going=lambda: current() and not self.closed,
                may_have_ended=may_have_ended,
            )
        except Exception as exc:
            self._post(messages.ActionFailed("follow the log", failure_text(exc)))

    async def show_and_follow(self, test_id: int, post: Post, *, keep_going: Callable[[], bool]) -> None:
        """For the detail screen: the test's view (DetailLoaded), then its whole log."""
        try:
            post(messages.DetailLoaded(await self.call(self.client.show(test_id))))
            await self._relay_log(test_id, 0, post, keep_going=keep_going)
        except Exception as exc:  # shown, never a crash: the engine may be unreachable
            post(messages.ActionFailed("load test", failure_text(exc)))

    async def _relay_log(
        self,
        test_id: int,
        token: int,
        post: Post,
        *,
        keep_going: Callable[[], bool],
        may_have_ended: Callable[[], bool] = lambda: False,
    ) -> None:
        try:
            async for item in follow(
                self.call, self.client, test_id, keep_going=keep_going, may_have_ended=may_have_ended
            ):
                if isinstance(item, TestView):
                    post(messages.LogEnded(test_id, token, item))
                else:
                    post(messages.LogLines(test_id, token, item))
        except PermissionError as exc:  # another user's test: its log is theirs
            post(messages.LogUnavailable(test_id, token, str(exc)))

    # ------------------------------------------------------------------ the user's actions
    async def run(self, action: str, operation: Callable[..., Awaitable[None]], *args: Any) -> None:
        """Await `operation(*args)` (one of the actions below) once the engine answers; its
        failures become messages."""
        if not self.ready.is_set() and self.problem:
            self._post(messages.ActionFailed(action, self.problem))
            return
        await self.ready.wait()
        try:
            await operation(*args)
        except InvalidRequest as exc:
            self._post(messages.RequestRejected(exc.errors))
        except Exception as exc:
            self._post(messages.ActionFailed(action, failure_text(exc)))

    async def submit(self, request: TestRequest, parent_id: int | None) -> None:
        view = await self.call(self.client.submit(request, parent_id=parent_id))
        self._post(messages.TestSubmitted(view, parent_id))

    async def cancel(self, test_id: int) -> None:
        self._post(messages.TestCancelled(await self.call(self.client.cancel(test_id))))

    async def retry(self, test_id: int) -> None:
        self._post(messages.TestSubmitted(await self.call(self.client.retry(test_id)), test_id))

    async def load_request(self, test_id: int) -> None:
        self._post(messages.RequestLoaded(test_id, await self.call(self.client.request(test_id))))

    async def clear_history(self, older_than_s: float) -> None:
        archived = await self.call(self.client.clear_history(older_than_s))
        self._post(messages.HistoryCleared(archived, older_than_s))

    @property
    def can_package(self) -> bool:
        return hasattr(self.client, "package")

    async def package(self, test_id: int) -> None:
        result = await self.call(self.client.package(test_id))
        hint = await asyncio.to_thread(copy_hint, result.path)  # may ask DNS: not on the UI loop
        self._post(messages.PackageReady(test_id, result.path, hint, getattr(result, "url", None)))
