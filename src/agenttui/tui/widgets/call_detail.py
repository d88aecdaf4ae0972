"""The calls view's reading pane: one model call whole (what, when, tokens, cost, then its
messages, response, tool calls and error), scrollable with the keys (focus it: tab or enter)."""

from __future__ import annotations

import time

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from agenttui.core.wire import ModelCallView
from agenttui.tui.call_text import call_sections, call_summary
from agenttui.tui.formatting import LocalTime


class CallDetail(VerticalScroll):
    COMPONENT_CLASSES = {"call-detail--summary", "call-detail--section", "call-detail--error"}

    def __init__(self, *, id: str | None = None, localtime: LocalTime = time.localtime) -> None:
        super().__init__(id=id)
        self.localtime = localtime
        self.call: ModelCallView | None = None

    def compose(self) -> ComposeResult:
        yield Static("", id="call-text")

    def show_call(self, call: ModelCallView | None, empty: str = "") -> None:
        """Show `call` from its top (or `empty` when there is none)."""
        self.call = call
        body = self.query_one("#call-text", Static)
        if call is None:
            body.update(Text(empty))
            return
        style = self.get_component_rich_style
        text = Text()
        for line in call_summary(call, self.localtime):
            text.append(line + "\n", style=style("call-detail--summary", partial=True))
        for heading, content in call_sections(call):
            text.append("\n" + heading + "\n", style=style("call-detail--section", partial=True))
            text.append(content + "\n", style=style("call-detail--error", partial=True) if heading == "Error" else "")
        text.rstrip()
        body.update(text)
        self.scroll_home(animate=False)
