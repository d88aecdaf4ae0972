"""Asks for the suite file to run (`n` in the Suites view); dismisses with its path or None. A
path that is no file is refused under the field, and the question stays."""

from __future__ import annotations

from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static


class SuitePathScreen(ModalScreen[Path | None]):
    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel", id="suite_path.cancel", tooltip="Run nothing")]

    def __init__(self, initial: str = "") -> None:
        super().__init__()
        self.initial = initial

    def compose(self) -> ComposeResult:
        with Vertical(id="suite-path-body") as body:
            body.border_title = "Run a suite"
            body.border_subtitle = "enter runs · esc cancels"
            yield Static("The suite file (TOML, docs/suites.md): every case × repeat is queued.",
                         id="suite-path-question")
            yield Input(self.initial, placeholder="path/to/suite.toml", id="suite-path")
            yield Static("", id="suite-path-error", markup=False)

    def on_mount(self) -> None:
        self.query_one("#suite-path-error").display = False
        self.query_one("#suite-path", Input).focus()

    @on(Input.Changed, "#suite-path")
    def _edited(self) -> None:
        self.query_one("#suite-path-error").display = False

    @on(Input.Submitted, "#suite-path")
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        text = event.value.strip()
        path = Path(text).expanduser() if text else None
        problem = None
        if path is None:
            problem = "give the path of a suite file (TOML), e.g. examples/suite/suite.toml"
        elif not path.is_file():
            problem = f"{text}: no such file; give the path of a suite file (TOML)"
        if problem is not None:
            error = self.query_one("#suite-path-error", Static)
            error.update(problem)
            error.display = True
            return
        self.dismiss(path)
