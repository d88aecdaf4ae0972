"""The one-line header: queue status (running / queued / cap / utilization, R-7) and engine health."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from agenttui.core.wire import QueueView


class StatusBar(Static):
    COMPONENT_CLASSES = {"status-bar--title", "status-bar--problem", "status-bar--busy", "status-bar--dim"}

    def __init__(self, backend: str, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.backend = backend
        self.queue: QueueView | None = None
        self.problem: str | None = None

    def on_mount(self) -> None:
        self._refresh_text()

    def set_queue(self, queue: QueueView) -> None:
        self.queue = queue
        self._refresh_text()

    def set_problem(self, problem: str | None) -> None:
        self.problem = problem
        self._refresh_text()

    def _refresh_text(self) -> None:
        style = self.get_component_rich_style
        text = Text()
        text.append(" agenttui ", style("status-bar--title", partial=True))
        q = self.queue
        if q is None:
            text.append(" loading…", style("status-bar--dim", partial=True))
        else:
            busy = style("status-bar--busy", partial=True) if q.running >= q.cap else ""
            text.append(f" running {q.running}/{q.cap}", busy)
            text.append(f" · {q.utilization:.0f}% used")
            text.append(f" · queued {q.queued}")
        text.append(f" · {self.backend}", style("status-bar--dim", partial=True))
        if self.problem:
            text.append(f" · {self.problem}", style("status-bar--problem", partial=True))
        self.update(text)
