"""A validation message shown under its field in the editor."""

from __future__ import annotations

from textual.widgets import Static


class FieldError(Static):
    """A validation message shown under its field (hidden while empty)."""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__("", markup=False, id=id, classes=classes)

    message: str | None = None

    def set_message(self, message: str | None) -> None:
        self.message = message
        self.update(f"✗ {message}" if message else "")
        self.set_class(bool(message), "-shown")
