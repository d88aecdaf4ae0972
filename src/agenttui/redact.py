"""Secret masking for every line that is stored or shown (R-18)."""

from __future__ import annotations

import re
from collections.abc import Iterable

# Shapes of well-known credentials, masked even when we were not told the value.
_KNOWN_SHAPES = re.compile(
    r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"  # AWS access key ids
    r"|\bsk-[A-Za-z0-9_\-]{16,}\b"  # OpenAI-style API keys
)
MIN_SECRET_LEN = 4  # shorter values would mask ordinary words


class Redactor:
    def __init__(self, secrets: Iterable[str] = ()):
        values = sorted({s for s in secrets if s and len(s) >= MIN_SECRET_LEN}, key=len, reverse=True)
        self._values = re.compile("|".join(re.escape(v) for v in values)) if values else None

    def __call__(self, text: str) -> str:
        if self._values is not None:
            text = self._values.sub(_mask, text)
        return _KNOWN_SHAPES.sub(_mask, text)


def _mask(match: re.Match[str]) -> str:
    value = match.group(0)
    return f"{value[:2]}…[redacted]" if len(value) > 12 else "[redacted]"
