"""The `?` help screen: every key, generated from the binding tables (so it never drifts), with
any keymap overrides from config.toml applied.

One widget renders the whole table (tui/widgets/help_table.py): cheap to open and close, even
while a log floods."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen

from agenttui.tui.screens.calls import CallsScreen
from agenttui.tui.screens.detail import DetailScreen
from agenttui.tui.screens.suites import SuitesScreen
from agenttui.tui.widgets.call_table import CallTable
from agenttui.tui.widgets.help_table import HelpTable, Rows
from agenttui.tui.widgets.history_table import HistoryTable
from agenttui.tui.widgets.log_view import LogView

EDITOR_KEYS: Sequence[tuple[str, str]] = (
    ("esc", "in agent.py (where tab indents): leave the code for the Query field"),
    ("tab / shift+tab", "move to the next / previous field, button or pane"),
    ("enter", "in the Query field: submit"),
    ("typing", "outside a text field, a key that does nothing there goes to the Query field"),
    ("← / →", "on the editor's tab row: switch between agent.py, reqs (requirements.txt), Dockerfile, Options"),
)

CALLS_KEYS: Sequence[tuple[str, str]] = (
    ("tab / shift+tab", "between the list of calls and the selected call's text"),
    ("↑ ↓ PgUp PgDn", "move through the calls / scroll the call's text"),
)


def help_sections(app_bindings: Iterable[Binding]) -> list[tuple[str, Rows]]:
    """Every key: the app's own (`app_bindings`), then each pane's and screen's."""
    return [
        ("Everywhere", app_bindings),
        ("Editor", EDITOR_KEYS),
        ("Queue & history", HistoryTable.BINDINGS),
        ("Log pane", LogView.BINDINGS),
        ("Detail screen", DetailScreen.BINDINGS),
        ("Calls view (t)", [*CallsScreen.BINDINGS, *CallTable.BINDINGS, *CALLS_KEYS]),
        ("Suites view (F8)", SuitesScreen.BINDINGS),
        ("Command palette", (("ctrl+p", "every action above, searchable (and Maximize a pane)"),)),
    ]


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
