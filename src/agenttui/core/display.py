"""Make untrusted agent output safe to show: control sequences become visible escapes,
so an agent cannot move the cursor, clear the screen or retitle the terminal."""

from __future__ import annotations

import re

# C0 controls except tab, DEL, and C1 controls (ESC-less CSI 0x9b among them).
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")


def _escape(match: re.Match[str]) -> str:
    return "\\x%02x" % ord(match.group(0))


def printable(text: str) -> str:
    return _CONTROL.sub(_escape, text)


def has_control(text: str) -> bool:
    """Whether printable() would change `text`."""
    return _CONTROL.search(text) is not None
