"""The in-container harness: the runner's source (to copy into containers) and its result record.

runner.py runs inside the container with no agenttui installed, and grading.py beside it runs a
suite case's scorers and rubrics; this module is the host side: it hands out their text, makes the
per-attempt nonce, and reads the record back.
"""

from __future__ import annotations

import hmac
import json
import secrets
from importlib import resources
from typing import Any

RESULT_TAG = "@@agenttui-result"  # must match runner.RESULT_TAG
RUNNER_FILENAME = "agenttui_harness.py"  # the runner's name inside a container
GRADING_FILENAME = "agenttui_grading.py"  # grading.py's, beside it (the runner imports it by that name)
# The first words of the judge's system prompt (must match grading.JUDGE_MARK): a model call that
# opens with them is a suite rubric's judge, recorded and priced apart from the agent's calls.
JUDGE_MARK = "You are agenttui's judge."
_REQUIRED_KEYS = ("success", "response", "error")


def runner_source() -> str:
    """The text of runner.py (read as package data, so it works from a wheel too)."""
    return resources.files(__name__).joinpath("runner.py").read_text(encoding="utf-8")


def harness_files() -> dict[str, str]:
    """What a test's container gets beside its agent: the runner and its grading, by their names there."""
    text = resources.files(__name__)
    return {RUNNER_FILENAME: runner_source(), GRADING_FILENAME: text.joinpath("grading.py").read_text(encoding="utf-8")}


def new_nonce() -> str:
    """A fresh token for AGENTTUI_RESULT_NONCE: an agent cannot guess it to forge a result."""
    return secrets.token_hex(16)


def is_judge_request(messages: Any) -> bool:
    """Whether a recorded call's messages are the harness's judge prompt (docs/suites.md)."""
    if not isinstance(messages, list) or not messages or not isinstance(messages[0], dict):
        return False
    content = messages[0].get("content")
    return messages[0].get("role") == "system" and isinstance(content, str) and content.startswith(JUDGE_MARK)


def parse_result_line(text: str | bytes, nonce: str) -> dict[str, Any] | None:
    """The decoded record if `text` is this runner's result line for `nonce`, else None.

    Never raises: log lines are arbitrary agent output.
    """
    try:
        if isinstance(text, (bytes, bytearray)):
            text = bytes(text).decode("utf-8", errors="replace")
        if not isinstance(text, str) or not nonce:
            return None
        line = text.strip()
        if not line.startswith(RESULT_TAG + " "):
            return None
        _tag, got_nonce, payload = line.split(" ", 2)
        if not hmac.compare_digest(got_nonce.encode(), nonce.encode()):
            return None
        record = json.loads(payload)
        if not isinstance(record, dict) or not all(key in record for key in _REQUIRED_KEYS):
            return None
        if not isinstance(record["success"], bool):
            return None
        return record
    except Exception:  # junk, truncated JSON, absurd nesting (RecursionError), ...
        return None
