"""Typed messages: the only way engine results reach the UI (Harlequin/Toolong style).

Workers call the client and post these; handlers decorated with ``@on(...)`` update widgets.
Status-like messages coalesce (``can_replace``): when the UI is busy only the newest queue /
history snapshot is applied. Log batches never coalesce: every line must arrive.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from textual.message import Message

from agenttui.core.wire import LogEntry, QueueView, TestView

if TYPE_CHECKING:
    from agenttui.core.domain import TestRequest


class QueueUpdated(Message):
    """A fresh snapshot of the queue (running + queued tests, cap, utilization)."""

    def __init__(self, queue: QueueView) -> None:
        super().__init__()
        self.queue = queue

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, QueueUpdated)


class HistoryUpdated(Message):
    """A fresh snapshot of finished tests matching `search`."""

    def __init__(self, tests: list[TestView], search: str) -> None:
        super().__init__()
        self.tests = tests
        self.search = search

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, HistoryUpdated)


class EngineStatus(Message):
    """Whether the engine answers (`problem` is None) or what is wrong."""

    def __init__(self, problem: str | None) -> None:
        super().__init__()
        self.problem = problem

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, EngineStatus)


class LogLines(Message):
    """A batch of stored log lines of one test. `token` identifies the follow session so
    lines of a test the user has since navigated away from are dropped."""

    def __init__(self, test_id: int, token: int, records: list[LogEntry]) -> None:
        super().__init__()
        self.test_id = test_id
        self.token = token
        self.records = records


class LogEnded(Message):
    """The followed test has ended and every line of it has been delivered; `view` is its
    final state."""

    def __init__(self, test_id: int, token: int, view: TestView | None = None) -> None:
        super().__init__()
        self.test_id = test_id
        self.token = token
        self.view = view


class LogUnavailable(Message):
    """The followed test's log cannot be read (e.g. another user's test): say why in the pane."""

    def __init__(self, test_id: int, token: int, reason: str) -> None:
        super().__init__()
        self.test_id = test_id
        self.token = token
        self.reason = reason


class TestSubmitted(Message):
    """A new test (a submit, a retry or an edit-and-retry) is queued."""

    __test__ = False

    def __init__(self, view: TestView, parent_id: int | None = None) -> None:
        super().__init__()
        self.view = view
        self.parent_id = parent_id


class TestCancelled(Message):
    """A cancel was accepted (queued tests end at once; running ones shortly)."""

    __test__ = False

    def __init__(self, view: TestView) -> None:
        super().__init__()
        self.view = view


class RequestRejected(Message):
    """The engine refused a request as invalid: field -> message."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__()
        self.errors = errors


class RequestLoaded(Message):
    """A test's full request, fetched for edit-and-retry."""

    def __init__(self, test_id: int, request: TestRequest) -> None:
        super().__init__()
        self.test_id = test_id
        self.request = request


class HistoryCleared(Message):
    def __init__(self, archived: int, older_than_s: float) -> None:
        super().__init__()
        self.archived = archived
        self.older_than_s = older_than_s


class PackageReady(Message):
    def __init__(self, test_id: int, path: Path, copy_hint: str, url: str | None = None) -> None:
        super().__init__()
        self.test_id = test_id
        self.path = path
        self.copy_hint = copy_hint
        self.url = url


class ActionFailed(Message):
    """An engine call failed; `text` is shown to the user as is."""

    def __init__(self, action: str, text: str) -> None:
        super().__init__()
        self.action = action
        self.text = text


class DetailLoaded(Message):
    """The detail screen's test (refreshed when it ends)."""

    def __init__(self, view: TestView) -> None:
        super().__init__()
        self.view = view

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, DetailLoaded) and message.view.id == self.view.id
