"""Secret masking for every line that is stored or shown (R-18).

A Redactor masks the secret values it was given (every value handed to a container is
registered) and, even when nobody told it the value, well-known credential shapes: AWS access
key ids and secret keys, OpenAI-style keys, bearer tokens and private key blocks. It is called
once per log line; a private key block spans lines, so a Redactor remembers that it is inside
one (use one Redactor per stream of lines). bench/bench_redact.py measures its cost.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "[redacted]"
MIN_SECRET_LEN = 4  # shorter values would mask ordinary words
# Shapes of well-known credentials, masked even when we were not told the value.
_KEY_IDS = re.compile(
    r"\b(?:AKIA|ASIA|AIDA|AROA)[0-9A-Z]{16}\b"  # AWS access key ids
    r"|\bsk-[A-Za-z0-9_\-]{16,}"  # OpenAI-style API keys
)
_KEY_ID_MARKS = ("AKIA", "ASIA", "AIDA", "AROA", "sk-")
# A candidate AWS secret access key: exactly 40 characters of base64 (checked in _mask_secret_key).
_LONG_RUN = re.compile(r"[A-Za-z0-9/+]{40}")
_SECRET_KEY = re.compile(r"(?<![A-Za-z0-9/+])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])")
# "Bearer <token>" (HTTP Authorization headers and their echoes).
_BEARER = re.compile(r"(?i)(\bbearer\s+)([A-Za-z0-9\-._~+/]{8,}=*)")
_PEM_BEGIN = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----")
_PEM_END = re.compile(r"-----END [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----")
# A whole block on one line (e.g. inside JSON with \n escapes).
_PEM_INLINE = re.compile(
    r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----.*?-----END [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----"
)
# What the Docker backend appends to a line it had to cut.
_TRUNCATION_MARK = " …[line truncated"


class Redactor:
    def __init__(self, secrets: Iterable[str] = ()):
        values = sorted({s for s in secrets if s and len(s) >= MIN_SECRET_LEN}, key=len, reverse=True)
        self._secrets = tuple(values)
        self._values = re.compile("|".join(re.escape(v) for v in values)) if values else None
        self._in_key_block = False

    @property
    def secrets(self) -> tuple[str, ...]:
        return self._secrets

    def __call__(self, text: str) -> str:
        if self._in_key_block:
            if _PEM_END.search(text):
                self._in_key_block = False
                return MASK + text[_PEM_END.search(text).end():]  # type: ignore[union-attr]
            return MASK
        if self._values is not None:
            text = self._values.sub(_mask, text)
            if _TRUNCATION_MARK in text:
                text = self._mask_cut_secret(text)
        # Cheap tests first: most lines hold none of these shapes (bench/bench_redact.py).
        if any(mark in text for mark in _KEY_ID_MARKS):
            text = _KEY_IDS.sub(_mask, text)
        if _LONG_RUN.search(text):
            text = _SECRET_KEY.sub(_mask_secret_key, text)
        if "earer" in text or "EARER" in text:
            text = _BEARER.sub(lambda m: m.group(1) + MASK, text)
        if "PRIVATE KEY" in text:
            text = _PEM_INLINE.sub(MASK, text)
            begin = _PEM_BEGIN.search(text)
            if begin is not None:
                self._in_key_block = True
                text = text[: begin.start()] + MASK
        return text

    def lines(self, texts: list[str]) -> list[str]:
        """Each of a stream's lines through __call__, in order. Most batches of log lines hold
        no secret and no credential shape at all: one look over the joined batch shows that
        (whatever matches in a line matches in the joined text), and they are returned as is."""
        if not self._in_key_block and not self._might_mask("\n".join(texts)):
            return texts
        return [self(text) for text in texts]

    def _might_mask(self, text: str) -> bool:
        """Whether __call__ could change `text` (the same tests, run once)."""
        if self._values is not None and (_TRUNCATION_MARK in text or self._values.search(text)):
            return True
        return (
            any(mark in text for mark in _KEY_ID_MARKS)
            or _LONG_RUN.search(text) is not None
            or "earer" in text
            or "EARER" in text
            or "PRIVATE KEY" in text
        )

    def _mask_cut_secret(self, text: str) -> str:
        """A line cut in the middle of a secret keeps only its head: mask that head too."""
        cut = text.index(_TRUNCATION_MARK)
        head = text[:cut]
        for secret in self._secrets:
            for size in range(min(len(secret) - 1, len(head)), MIN_SECRET_LEN - 1, -1):
                if head.endswith(secret[:size]):
                    return head[:-size] + MASK + text[cut:]
        return text


def _mask_secret_key(match: re.Match[str]) -> str:
    value = match.group(0)
    # An AWS secret key mixes upper, lower case and digits; git SHAs and other hex do not.
    if any(c.islower() for c in value) and any(c.isupper() for c in value) and any(c.isdigit() for c in value):
        return _mask(match)
    return value


def _mask(match: re.Match[str]) -> str:
    value = match.group(0)
    return f"{value[:2]}…{MASK}" if len(value) > 12 else MASK
