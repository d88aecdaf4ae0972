"""What the app shows of the engine at a glance: the queue and the newest finished tests.

Shared by tui/launch.py (which reads the first snapshot before Textual loads, so this module
imports neither Textual nor the client) and the app's engine link (which keeps reading them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agenttui.core.wire import QueueView, TestView

    Snapshot = tuple[QueueView, list[TestView]]

HISTORY_LIMIT = 200  # finished tests the history pane shows
