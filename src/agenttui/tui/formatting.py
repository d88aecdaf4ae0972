"""Pure text helpers for the TUI (no Textual): times, durations, previews, log lines.

Everything agent-produced goes through `printable` (display.py) before it reaches the screen.
"""

from __future__ import annotations

import textwrap
import time
from collections.abc import Callable
from typing import Any

from agenttui.core.display import printable

LocalTime = Callable[[float], time.struct_time]

_STREAM_PREFIX = {"stdout": "", "system": "", "stderr": "[stderr] ", "build": "[build] "}


def log_line(record: Any) -> str:
    """One stored log record as shown in the log panes (control sequences escaped)."""
    return _STREAM_PREFIX.get(record.stream, f"[{record.stream}] ") + printable(record.text)


def log_lines(records: list[Any]) -> list[str]:
    prefix = _STREAM_PREFIX
    out: list[str] = []
    append = out.append
    for record in records:
        text = printable(record.text)
        p = prefix.get(record.stream)
        if p is None:
            p = f"[{record.stream}] "
        if "\n" in text:  # printable() escapes newlines; belt and braces for the Log widget
            text = text.replace("\n", "\\n")
        append(p + text if p else text)
    return out


def printable_text(text: str) -> str:
    """Multi-line agent text made safe: newlines kept, every other control escaped."""
    return "\n".join(printable(line) for line in text.split("\n"))


def log_title(test_id: int | None, view: Any) -> str:
    """The log pane's border title: the test it shows, with its status and owner once known."""
    if test_id is None:
        return "log · F5"
    title = f"log · test {test_id}"
    if view is not None:
        title += f" · {view.status.value} · {view.owner_name}"
        if view.log_truncated:
            title += " · truncated"
    return title


def outcome_lines(view: Any, width: int | None = None) -> list[str]:
    """What the log pane appends when a test ends: its response, else its error (the reason
    it failed), wrapped to `width` so it reads whole without scrolling sideways."""
    if view.response is not None:
        heading, text = "[agenttui] response:", view.response
    elif view.error:
        heading, text = "[agenttui] error:", view.error
    else:
        return []
    lines = printable_text(text).split("\n")
    if width is not None:
        lines = [part for line in lines for part in (textwrap.wrap(line, max(width, 20)) or [""])]
    return [heading, *lines]


def package_lines(path: Any, copy_hint: str, url: str | None = None) -> list[str]:
    """Where a test's deployment package is: its path first, then how to get it off the box."""
    lines = [str(path), f"copy it off this box with: {copy_hint}"]
    if url:  # the AWS backend also put it in S3
        lines.append(f"or download it for 24 hours from: {url}")
    return lines


def package_log_lines(lines: list[str]) -> list[str]:
    """`package_lines` as the log pane shows them, after the test's own lines."""
    return [f"[agenttui] package: {line}" if i == 0 else f"[agenttui] {line}" for i, line in enumerate(lines)]


def duration(seconds: float | None) -> str:
    """1.2s, 42s, 3m04s, 1h02m; '-' when unknown."""
    if seconds is None:
        return "-"
    if seconds < 0:
        seconds = 0.0
    if seconds < 10:
        return f"{seconds:.1f}s"
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        minutes, secs = divmod(int(seconds), 60)
        return f"{minutes}m{secs:02d}s"
    hours, rest = divmod(int(seconds), 3600)
    return f"{hours}h{rest // 60:02d}m"


def clock_time(ts: float | None, localtime: LocalTime = time.localtime, fmt: str = "%m-%d %H:%M") -> str:
    if ts is None:
        return "-"
    return time.strftime(fmt, localtime(ts))


def size(num_bytes: float | None) -> str:
    if num_bytes is None:
        return "unknown"
    value = float(num_bytes)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


def preview(text: str | None, width: int = 60) -> str:
    """First line of `text`, made printable, cut to `width` characters."""
    if not text:
        return ""
    first = text.strip().splitlines()[0] if text.strip() else ""
    shown = printable(first)
    more = len(text.strip().splitlines()) > 1
    if len(shown) > width:
        return shown[: width - 1] + "…"
    return shown + (" …" if more else "")
