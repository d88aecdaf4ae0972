"""The `?` help screen: every key, generated from the binding tables (so it never drifts), with
any keymap overrides from config.toml applied."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

EDITOR_KEYS: Sequence[tuple[str, str]] = (
    ("tab / shift+tab", "move between fields (in agent.py, tab indents: press esc first)"),
    ("esc", "leave the code editor (then tab moves on)"),
    ("enter", "in the Query field: submit"),
    ("← / →", "on the editor's tab row: switch between agent.py, requirements, Dockerfile, Options"),
)


class HelpScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape,question_mark,q", "dismiss", "Close", id="help.close", tooltip="Close the help"),
    ]

    def __init__(self, sections: Sequence[tuple[str, Iterable[Binding] | Sequence[tuple[str, str]]]]) -> None:
        super().__init__()
        self.sections = sections

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-body") as body:
            body.border_title = "agenttui keys"
            body.border_subtitle = "esc closes"
            for title, rows in self.sections:
                yield Label(title, classes="help-section")
                for keys, description in self._rows(rows):
                    yield Horizontal(
                        Label(keys, classes="help-key", markup=False), Label(description, classes="help-desc", markup=False), classes="help-row"
                    )
            yield Static(
                "Keymap: remap any key by its id in config.toml, e.g.\n"
                '[keymap]\nsubmit = "ctrl+s"\ncancel = "k"',
                id="help-keymap",
                markup=False,
            )

    def _rows(self, rows: Iterable[Binding] | Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        keymap: dict[str, str] = getattr(self.app, "keymap_overrides", {})
        for row in rows:
            if isinstance(row, Binding):
                keys = keymap.get(row.id or "", row.key)
                shown = " / ".join(self.app.get_key_display(Binding(k.strip(), "")) for k in keys.split(","))
                description = row.tooltip or row.description
                if row.id:
                    description += f"  [{row.id}]"
                out.append((shown, description))
            else:
                out.append(row)
        return out
