"""Secrets (R-18): values of the provider's secret options, of any option whose name looks
secret, of the same variables in this process's environment, `extra` values, and well-known
credential shapes (AWS key ids, `sk-` keys) are scrubbed from every file of a package."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping

from agenttui.core.domain import TestRequest
from agenttui.core.providers import PROVIDERS, provider_for
from agenttui.core.redact import Redactor

# A hard-coded AWS secret key next to its name (the bare 40-character shape alone would
# also match ordinary hashes and identifiers).
_AWS_SECRET_ASSIGNMENT = re.compile(
    r"(?i)(aws_?secret_?access_?key[\"']?\s*[:=]\s*[\"']?)([A-Za-z0-9/+=]{40})(?![A-Za-z0-9/+=])"
)
MIN_FILE_SCRUB_LEN = 8  # shorter secret values are scrubbed from the test's free text only


def secret_values(request: TestRequest, extra: Iterable[str] = (), *, environ: Mapping[str, str] | None = None) -> list[str]:
    """Every value this package must not contain."""
    provider = provider_for(request.provider)
    values = set(extra)
    for key, value in request.provider.options.items():
        if provider.is_secret(key):
            values.add(value)
    environ = os.environ if environ is None else environ
    for known in PROVIDERS.values():
        for name in known.secret_names:
            if environ.get(name):
                values.add(environ[name])
    return sorted(v for v in values if v and v.strip())


def scrub_files(files: dict[str, str], request: TestRequest, secrets: list[str]) -> list[str]:
    """Replace every secret in `files` (in place) by a placeholder; the warnings to show.
    Values too short to tell from ordinary words (a dummy key such as "ollama" or "EMPTY")
    are left in whole files: they must not mangle the Dockerfile."""
    redact = Redactor(v for v in secrets if len(v) >= MIN_FILE_SCRUB_LEN)
    warnings: list[str] = []
    for name, text in files.items():
        clean = _AWS_SECRET_ASSIGNMENT.sub(lambda m: m.group(1) + "[redacted]", redact(text))
        if clean != text:
            files[name] = clean
            warnings.append(f"{name}: secret values were replaced by [redacted] placeholders")
    short = sorted(
        k for k, v in request.provider.options.items() if v in secrets and len(v) < MIN_FILE_SCRUB_LEN
    )
    if short:
        warnings.append(
            f"{', '.join(short)}: values under {MIN_FILE_SCRUB_LEN} characters look like placeholders; "
            "they were removed from the query, response and error only"
        )
    return warnings
