"""The live log pane: a Textual `Log` fed in batches (never RichLog, never a line per message).

Incoming lines are buffered and flushed every FLUSH_S into `Log.write_lines`, which is what
makes 100k+ lines/s possible. The Log only scrolls to the end when the view is already at
the end, so scrolling up pauses auto-follow and returning to the end (End key) resumes it.
"""

from __future__ import annotations

from collections.abc import Iterable

from rich.highlighter import Highlighter
from rich.text import Text
from textual.binding import Binding
from textual.geometry import Size
from textual.widget import Widget
from textual.widgets import Log
from typing_extensions import Self

FLUSH_S = 0.05
MAX_LINES = 200_000


class LineHighlighter(Highlighter):
    """Styles engine (phase/status) lines, build output and stderr. Applied by the Log only to
    the lines on screen; the styles come from the view's component classes (styles/*.tcss)."""

    def __init__(self, view: LogView) -> None:
        self.view = view

    def highlight(self, text: Text) -> None:
        plain = text.plain
        if plain.startswith("[agenttui]"):
            name = "log-view--truncated" if plain.startswith("[agenttui] log truncated") else "log-view--system"
        elif plain.startswith("[stderr]"):
            name = "log-view--stderr"
        elif plain.startswith("[build]"):
            name = "log-view--build"
        else:
            return
        text.stylize(self.view.get_component_rich_style(name, partial=True))


class LogView(Log):
    """The selected test's log; `feed()` lines, they appear within FLUSH_S."""

    COMPONENT_CLASSES = {"log-view--system", "log-view--stderr", "log-view--build", "log-view--truncated"}

    BINDINGS = [
        Binding("end", "follow", "Follow", id="log.follow", tooltip="Jump to the end and follow new lines"),
        Binding("home", "scroll_home", "Top", show=False, id="log.top", tooltip="Jump to the first line"),
    ]

    def __init__(self, *, max_lines: int | None = MAX_LINES, id: str | None = None, classes: str | None = None):
        super().__init__(highlight=True, max_lines=max_lines, auto_scroll=True, id=id, classes=classes)
        self.highlighter = LineHighlighter(self)
        self._pending: list[str] = []
        self.lines_received = 0
        self.test_id: int | None = None
        self.ended = False
        self._following = True

    def on_mount(self) -> None:
        self.set_interval(FLUSH_S, self.flush)
        self._update_subtitle()

    # ------------------------------------------------------------------ feeding
    def reset(self, test_id: int | None, placeholder: str | None = None) -> None:
        """Start over for another test (drops anything buffered)."""
        self._pending.clear()
        self.clear()
        self.lines_received = 0
        self.test_id = test_id
        self.ended = False
        if placeholder:
            self.write_line(placeholder)
        self.scroll_home(animate=False, immediate=True)
        self._update_subtitle()

    def feed(self, lines: list[str]) -> None:
        self._pending.extend(lines)
        self.lines_received += len(lines)

    def flush(self) -> None:
        if not self._pending:
            return
        lines, self._pending = self._pending, []
        self.write_lines(lines)
        self._update_subtitle()

    # ------------------------------------------------------------------ cheap growth
    # Textual's Log assigns `virtual_size`, a reactive with layout=True: every write would
    # re-layout the whole screen (tens of ms with the editor's form on it), 20 times a second
    # during a flood. Growing a log never moves other widgets, so only the scrollbars are
    # updated (they still trigger a layout themselves when one appears or disappears).
    def _grow(self, size: Size) -> None:
        if size == self.virtual_size:
            return
        self.set_reactive(Widget.virtual_size, size)
        self._scroll_update(size)

    def write_lines(self, lines: Iterable[str], scroll_end: bool | None = None) -> Self:
        """Log.write_lines (Textual 8) without the screen-wide layout per write."""
        is_vertical_scroll_end = self.is_vertical_scroll_end
        auto_scroll = self.auto_scroll if scroll_end is None else scroll_end
        new_lines: list[str] = []
        for line in lines:
            new_lines.extend(line.splitlines())
        start_line = len(self._lines)
        self._lines.extend(new_lines)
        if self.max_lines is not None and len(self._lines) > self.max_lines:
            self._prune_max_lines()
            start_line = max(0, len(self._lines) - len(new_lines))
        self._grow(Size(self._width, len(self._lines)))
        self._update_size(self._updates, new_lines)
        self.refresh_lines(start_line, min(len(new_lines), len(self._lines)))
        if auto_scroll and not self.is_vertical_scrollbar_grabbed and is_vertical_scroll_end:
            self.scroll_end(animate=False, immediate=True, x_axis=False)
        else:
            self.refresh()
        return self

    def _update_maximum_width(self, updates: int, size: int) -> None:
        if updates == self._updates and size > self._width:
            self._width = size
            self._grow(Size(self._width, self.line_count))
            self.refresh()

    def mark_ended(self) -> None:
        self.ended = True
        self.flush()
        self._update_subtitle()

    # ------------------------------------------------------------------ follow state
    @property
    def following(self) -> bool:
        return self.is_vertical_scroll_end or self.max_scroll_y == 0

    def watch_scroll_y(self, old: float, new: float) -> None:
        super().watch_scroll_y(old, new)
        if self.following != self._following:
            self._update_subtitle()

    def action_follow(self) -> None:
        self.flush()
        self.scroll_end(animate=False, immediate=True)
        self._update_subtitle()

    def _update_subtitle(self) -> None:
        self._following = self.following
        parts = []
        if self.test_id is not None:
            parts.append(f"{self.lines_received:,} line{'' if self.lines_received == 1 else 's'}")
            if self.max_lines is not None and self.lines_received > self.max_lines:
                parts.append(f"showing last {self.max_lines:,}")
        if self.ended:
            parts.append("ended")
        elif self.test_id is not None:
            parts.append("following" if self._following else "paused · End to follow")
        self.border_subtitle = " · ".join(parts)
