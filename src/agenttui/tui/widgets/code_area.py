"""The editor's text areas: Textual's TextArea without its own f6 ("select line"), which the
app gives to the Options pane key (so the footer shows the pane keys as one group)."""

from __future__ import annotations

from textual.widgets import TextArea


class CodeArea(TextArea):
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "select_line":
            return False
        return super().check_action(action, parameters)
