"""The calls view of one test (issue 18): its recorded model calls, oldest first, and the one
under the cursor whole below them (messages, response, tool calls, error), scrollable.

Reached with `t` from the queue, the history or the detail screen. Once mounted it runs
`follow` in a worker of its own, through the app's engine link (whose calls are shielded): the
calls arrive as they are stored while the test runs (tui/calls_link.py), with no key pressed."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Static

from agenttui.core.display import printable
from agenttui.tui.calls_link import CallsUpdate, follow_calls
from agenttui.tui.formatting import LocalTime
from agenttui.tui.widgets.call_detail import CallDetail
from agenttui.tui.widgets.call_table import CallTable

if TYPE_CHECKING:
    from agenttui.tui.engine_link import EngineLink


class CallsScreen(Screen[None]):
    BINDINGS = [
        Binding("escape,q", "app.pop_screen", "Back", id="calls.back", tooltip="Back to where the calls view was opened"),
    ]

    class Read(Message):
        """What the follower read: new calls, the totals, the test's status."""

        def __init__(self, update: CallsUpdate) -> None:
            super().__init__()
            self.update = update

    class Unavailable(Message):
        """The calls cannot be read (another user's test, the engine unreachable): say why."""

        def __init__(self, reason: str) -> None:
            super().__init__()
            self.reason = reason

    def __init__(self, test_id: int, *, localtime: LocalTime = time.localtime) -> None:
        super().__init__()
        self.test_id = test_id
        self.localtime = localtime
        self.ended = False  # the test has ended and every call it stored is shown
        self.status = ""
        self.note: str | None = None

    def compose(self) -> ComposeResult:
        yield Static("reading the model calls…", id="calls-header", markup=False)
        table = CallTable(id="calls-table")
        table.border_title = f"model calls · test {self.test_id}"
        yield table
        detail = CallDetail(id="call-detail", localtime=self.localtime)
        detail.border_title = "call"
        yield detail
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(CallDetail).show_call(None, "reading the model calls…")
        self.query_one(CallTable).focus()
        engine: EngineLink = self.app.engine  # type: ignore[attr-defined]  # the AgentTUI's link
        self.run_worker(self.follow(engine, may_have_ended=self._may_have_ended), group="calls", exclusive=True,
                        exit_on_error=False)

    def _may_have_ended(self) -> bool:
        view = getattr(self.app, "views", {}).get(self.test_id)  # the app's last queue / history
        return view is not None and view.status.is_terminal

    async def follow(self, engine: EngineLink, *, may_have_ended: Callable[[], bool] = lambda: False) -> None:
        """Read the calls through the app's engine link (its shielded calls) until the test has
        ended or this screen is closed, posting each update to this screen."""
        await engine.ready.wait()
        try:
            async for update in follow_calls(
                engine.call, engine.client, self.test_id,
                keep_going=lambda: self.is_attached and not engine.closed, may_have_ended=may_have_ended,
            ):
                self.post_message(self.Read(update))
        except PermissionError as exc:  # another user's test: its messages and answers are theirs
            self.post_message(self.Unavailable(str(exc)))
        except Exception as exc:  # shown, never a crash: the engine may be unreachable
            self.post_message(self.Unavailable(f"cannot read the model calls: {exc or type(exc).__name__}"))

    @on(Read)
    def _read(self, message: Read) -> None:
        message.stop()
        update = message.update
        table = self.query_one(CallTable)
        table.add_calls(update.calls)
        self.ended = update.ended
        if update.view is not None:
            self.status = update.view.status.value
        self.note = update.note
        totals = update.totals.line() if update.totals is not None else "no model call recorded"
        lines = [f"{self.status} · {totals}" if self.status else totals]
        if update.note:
            lines.append(update.note)
        self.query_one("#calls-header", Static).update("\n".join(lines))
        count = len(table.calls)
        table.border_subtitle = f"{count} recorded · " + ("ended" if self.ended else "following")
        if not table.calls:
            empty = "No model call was recorded." if self.ended else "No model call yet; new calls show here as they are made."
            self.query_one(CallDetail).show_call(None, empty + (f"\n{update.note}" if update.note else ""))

    @on(Unavailable)
    def _unavailable(self, message: Unavailable) -> None:
        message.stop()
        self.ended = True
        self.query_one("#calls-header", Static).update(printable(message.reason))
        self.query_one(CallDetail).show_call(None, f"[agenttui] {printable(message.reason)}")

    @on(CallTable.CallHighlighted)
    def _highlighted(self, message: CallTable.CallHighlighted) -> None:
        message.stop()
        detail = self.query_one(CallDetail)
        detail.show_call(message.call)
        detail.border_title = f"call #{message.call.seq}"

    @on(CallTable.ReadCall)
    def _read_call(self, message: CallTable.ReadCall) -> None:
        message.stop()
        self.query_one(CallDetail).focus()
