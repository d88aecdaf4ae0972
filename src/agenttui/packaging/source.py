"""What packaging reads of a finished test. The engine's TestRecord has these attributes and is
passed as it is (structural typing): packaging sits below the engine and never imports it."""

from __future__ import annotations

from typing import Any, Protocol

from agenttui.core.domain import TERMINAL, Status, TestRequest

# Statuses a package can be made from (stored as their values).
PACKAGEABLE = frozenset(s.value for s in (*TERMINAL, Status.ARCHIVED))


class FinishedTest(Protocol):
    @property
    def id(self) -> int | None: ...

    @property
    def status(self) -> str: ...

    @property
    def request(self) -> TestRequest: ...

    @property
    def metrics(self) -> dict[str, Any]: ...

    @property
    def result(self) -> dict[str, Any] | None: ...

    @property
    def response(self) -> str | None: ...

    @property
    def error(self) -> str | None: ...

    @property
    def failure_kind(self) -> str | None: ...

    @property
    def owner_name(self) -> str: ...

    @property
    def image(self) -> str | None: ...

    @property
    def created_at(self) -> float: ...

    @property
    def running_at(self) -> float | None: ...

    @property
    def finished_at(self) -> float | None: ...
