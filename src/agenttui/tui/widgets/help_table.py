"""Every key in one table (the help screen's body): key, what it does and the binding id to
remap it by; its colours come from component classes styled in styles/screens.tcss."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from rich.table import Table
from rich.text import Text
from textual.binding import Binding
from textual.widgets import Static

KEYMAP_HINT = 'Remap any key by its [id] in config.toml:  [keymap]  submit = "ctrl+s"  cancel = "k"'

Rows = Iterable[Binding] | Sequence[tuple[str, str]]


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
