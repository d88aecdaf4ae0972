"""The editor's Options tab: provider, model, timeout, priority, network and limits fields
(composed by the editor pane, tui/widgets/editor.py)."""

from __future__ import annotations

from textual.containers import VerticalScroll
from textual.message import Message


class OptionsForm(VerticalScroll):
    """The Options tab's fields. Mounted lazily, after the first frame (52 widgets that frame
    does not show: ~100 ms of start-up); until then `collect()` reads the defaults."""

    class Mounted(Message):
        """The form's fields exist now (the main screen turns their cursor blink off in tests)."""

        def __init__(self, form: OptionsForm) -> None:
            super().__init__()
            self.form = form

        @property
        def control(self) -> OptionsForm:
            return self.form

    def on_mount(self) -> None:
        self.post_message(self.Mounted(self))
