"""The one gate of every status write: submit, claim, transition, cancel and archive all take
the value they write from `status_after`, which checks core.lifecycle's table (R-4)."""

from __future__ import annotations

import logging

from agenttui.core.lifecycle import IllegalTransition, Status, check_transition

log = logging.getLogger(__name__)


def status_after(test_id: int, current: Status | str, to: Status) -> str:
    """The status value to write for moving test `test_id` from `current` to `to`; raises
    IllegalTransition (logged) when the table does not allow it."""
    current = Status(current)
    try:
        check_transition(test_id, current, to)
    except IllegalTransition:
        log.warning("refused illegal transition of test %s: %s -> %s", test_id, current.value, to.value)
        raise
    return to.value
