"""A yes/no (or pick one) question; dismisses with the chosen value or None."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static


class ConfirmScreen(ModalScreen[Any]):
    BINDINGS = [Binding("escape,n", "dismiss(None)", "Cancel", id="confirm.cancel", tooltip="Do nothing")]

    def __init__(self, question: str, choices: Sequence[tuple[str, Any]], *, title: str = "Confirm") -> None:
        super().__init__()
        self.question = question
        self.choices = list(choices)
        self.title_text = title

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-body") as body:
            body.border_title = self.title_text
            body.border_subtitle = "esc cancels"
            yield Static(self.question, id="confirm-question")
            with Horizontal(id="confirm-buttons"):
                for index, (label, _value) in enumerate(self.choices):
                    yield Button(label, id=f"choice-{index}", compact=True)
                yield Button("Cancel", id="choice-cancel", compact=True, variant="primary")

    def on_mount(self) -> None:
        self.query_one("#choice-cancel", Button).focus()

    @on(Button.Pressed)
    def _chosen(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "choice-cancel":
            self.dismiss(None)
            return
        index = int((event.button.id or "choice-0").removeprefix("choice-"))
        self.dismiss(self.choices[index][1])


CLEAR_CHOICES = (("older than 1 hour", 3600.0), ("older than 1 day", 86400.0), ("older than 7 days", 7 * 86400.0))


def clear_history_screen() -> ConfirmScreen:
    """Which finished tests to archive: dismisses with their minimum age in seconds, or None."""
    return ConfirmScreen(
        "Archive finished tests (everyone's) and purge their logs? Archived tests leave the history for good.",
        CLEAR_CHOICES,
        title="Clear old history",
    )
