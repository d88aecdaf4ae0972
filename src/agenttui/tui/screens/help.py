"""The `?` help screen: every key, generated from the binding tables (so it never drifts), with
any keymap overrides from config.toml applied.

One widget renders the whole table (cheap to open and close, even while a log floods); its
colours come from component classes styled in styles/screens.tcss."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Static

from agenttui.tui.screens.detail import DetailScreen
from agenttui.tui.widgets.history_table import HistoryTable
from agenttui.tui.widgets.log_view import LogView

EDITOR_KEYS: Sequence[tuple[str, str]] = (
    ("tab / shift+tab", "move between fields (in agent.py, tab indents: press esc first)"),
    ("esc", "leave the code editor (then tab moves on)"),
    ("enter", "in the Query field: submit"),
    ("← / →", "on the editor's tab row: switch between agent.py, reqs (requirements.txt), Dockerfile, Options"),
)

KEYMAP_HINT = 'Remap any key by its [id] in config.toml:  [keymap]  submit = "ctrl+s"  cancel = "k"'

Rows = Iterable[Binding] | Sequence[tuple[str, str]]


def help_sections(app_bindings: Iterable[Binding]) -> list[tuple[str, Rows]]:
    """Every key: the app's own (`app_bindings`), then each pane's and screen's."""
    return [
        ("Everywhere", app_bindings),
        ("Editor", EDITOR_KEYS),
        ("Queue & history", HistoryTable.BINDINGS),
        ("Log pane", LogView.BINDINGS),
        ("Detail screen", DetailScreen.BINDINGS),
        ("Command palette", (("ctrl+p", "every action above, searchable (and Maximize a pane)"),)),
    ]


class HelpTable(Static):
    COMPONENT_CLASSES = {"help-table--section", "help-table--key", "help-table--description", "help-table--id"}

    def __init__(self, sections: Sequence[tuple[str, Rows]], keymap: dict[str, str], key_display: Any) -> None:
        super().__init__()
        self.sections = sections
        self.keymap = keymap
        self.key_display = key_display

    def render(self) -> Table:
        style = self.get_component_rich_style
        section, key, description, ident = (
            style("help-table--section", partial=True),
            style("help-table--key", partial=True),
            style("help-table--description", partial=True),
            style("help-table--id", partial=True),
        )
        table = Table.grid(padding=(0, 2), expand=True)
        table.add_column(width=20, no_wrap=True)
        table.add_column(ratio=1)
        for index, (title, rows) in enumerate(self.sections):
            if index:
                table.add_row("", "")
            table.add_row(Text(title, style=section), "")
            for keys, text, binding_id in self._rows(rows):
                cell = Text(text, style=description)
                if binding_id:
                    cell.append(f"  [{binding_id}]", style=ident)
                table.add_row(Text(keys, style=key), cell)
        table.add_row("", "")
        table.add_row("", Text(KEYMAP_HINT, style=ident))
        return table

    def _rows(self, rows: Rows) -> list[tuple[str, str, str]]:
        out: list[tuple[str, str, str]] = []
        for row in rows:
            if isinstance(row, Binding):
                keys = self.keymap.get(row.id or "", row.key)
                shown = " / ".join(self.key_display(Binding(k.strip(), "")) for k in keys.split(","))
                out.append((shown, row.tooltip or row.description, row.id or ""))
            else:
                out.append((row[0], row[1], ""))
        return out


class HelpScreen(Screen[None]):
    """A full screen (not a modal over the main one): nothing behind it keeps re-rendering
    while a log floods."""

    BINDINGS = [
        Binding("escape,question_mark,q", "app.pop_screen", "Close", id="help.close", tooltip="Close the help"),
    ]

    def __init__(self, sections: Sequence[tuple[str, Rows]], keymap: dict[str, str]) -> None:
        super().__init__()
        self.sections = sections
        self.keymap = keymap  # binding id -> keys, from config.toml

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-body") as body:
            body.border_title = "agenttui keys"
            body.border_subtitle = "esc closes"
            yield HelpTable(self.sections, self.keymap, self.app.get_key_display)
