"""The editor pane: agent.py (Python highlighting), requirements.txt, an optional Dockerfile,
the options (provider, model, timeout, priority, limits) and the test query.

`collect()` turns the fields into a validated TestRequest or raises InvalidRequest with one
message per field; `show_errors()` puts each message next to its field (R-2). Nothing here
talks to the engine: the app submits what `collect()` returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.lazy import Lazy
from textual.widget import Widget
from textual.widgets import Button, Input, Label, Select, Static, TabbedContent, TabPane, TextArea

from agenttui.core.lifecycle import InvalidRequest, Priority
from agenttui.tui.widgets.code_area import CodeArea
from agenttui.tui.widgets.field_error import FieldError
from agenttui.tui.widgets.options_form import OptionsForm

if TYPE_CHECKING:
    from agenttui.core.domain import TestRequest

# agenttui.core.domain.KNOWN_PROVIDERS (a test checks): the domain's models (pydantic) load only
# when a request is collected, not for the first frame.
PROVIDERS = ("ollama", "bedrock", "openai")

STARTER_AGENT = '''\
"""A minimal agent: agenttui calls run(query) and shows what it returns."""


def run(query: str) -> str:
    return f"echo: {query}"
'''

# field of TestRequest (as InvalidRequest names it) -> (tab id, widget id)
FIELDS: dict[str, tuple[str | None, str]] = {
    "agent_code": ("tab-agent", "agent-code"),
    "requirements": ("tab-requirements", "requirements"),
    "dockerfile": ("tab-dockerfile", "dockerfile"),
    "query": (None, "query"),
    "provider.name": ("tab-options", "provider"),
    "provider.model_id": ("tab-options", "model"),
    "provider.options": ("tab-options", "provider-options"),
    "timeout_s": ("tab-options", "timeout"),
    "priority": ("tab-options", "priority"),
    "egress": ("tab-options", "egress"),
    "limits.cpus": ("tab-options", "cpus"),
    "limits.memory_mb": ("tab-options", "memory"),
    "limits.pids": ("tab-options", "pids"),
    "entrypoint": ("tab-options", "entrypoint"),
    "budget.max_cost_usd": ("tab-options", "max-cost"),
    "budget.max_tokens": ("tab-options", "max-tokens"),
    "budget.max_model_calls": ("tab-options", "max-model-calls"),
}
BUDGET_ROWS = (  # label, field, widget id, placeholder
    ("Max cost $", "budget.max_cost_usd", "max-cost", "no limit (e.g. 0.50): the next call is refused"),
    ("Max tokens", "budget.max_tokens", "max-tokens", "no limit (tokens in + out)"),
    ("Max calls", "budget.max_model_calls", "max-model-calls", "no limit (model calls)"),
)
TAB_LABELS = {
    "tab-agent": "agent.py",
    "tab-requirements": "reqs",
    "tab-dockerfile": "Dockerfile",
    "tab-options": "Options",
}


def _error_id(field: str) -> str:
    return "err-" + field.replace(".", "-").replace("_", "-")


@dataclass
class EditorDefaults:
    timeout_s: int = 600
    cpus: float = 1.0
    memory_mb: int = 2048
    pids: int = 1000
    provider: str = "ollama"
    model_id: str = "llama3.2"
    egress: str = "provider-only"


class EditorPane(Vertical):
    """Everything a test request needs, with per-field validation messages."""

    def __init__(self, defaults: EditorDefaults | None = None, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.defaults = defaults or EditorDefaults()
        self.agent_filename = "agent.py"
        self._saved: tuple[str, ...] | None = None  # set on mount
        self.retry_of: int | None = None

    def on_mount(self) -> None:
        self.query_one("#agent-code", TextArea).language = "python"
        self.mark_saved()

    # ------------------------------------------------------------------ unsaved text
    def content(self) -> tuple[str, ...]:
        """The texts a user types: the agent's code, requirements, Dockerfile and query."""
        texts = tuple(self.query_one(f"#{name}", TextArea).text for name in ("agent-code", "requirements", "dockerfile"))
        return (*texts, self.query_one("#query", Input).value)

    def mark_saved(self, content: tuple[str, ...] | None = None) -> None:
        """`content` (default: what the editor holds now) is kept elsewhere: a file, a test."""
        self._saved = self.content() if content is None else content

    @property
    def has_unsaved_changes(self) -> bool:
        return self._saved is not None and self.content() != self._saved

    def _initial(self) -> dict[str, str]:
        """The Options fields' values before any edit (widget id -> value)."""
        d = self.defaults
        return {"provider": d.provider, "model": d.model_id, "provider-options": "", "timeout": str(d.timeout_s),
                "priority": "normal", "egress": "", "cpus": f"{d.cpus:g}", "memory": str(d.memory_mb),
                "pids": str(d.pids), "entrypoint": "", "max-cost": "", "max-tokens": "", "max-model-calls": ""}

    def compose(self) -> ComposeResult:
        d = self.defaults
        v = self._initial()
        with TabbedContent(id="editor-tabs"):
            with TabPane(TAB_LABELS["tab-agent"], id="tab-agent"):
                # Python is set on mount: given here, Textual would build the highlighting twice
                # (at construction and again on mount), ~20 ms each.
                yield CodeArea.code_editor(STARTER_AGENT, id="agent-code")
                yield FieldError(id=_error_id("agent_code"), classes="field-error")
            with TabPane(TAB_LABELS["tab-requirements"], id="tab-requirements"):
                yield CodeArea("", id="requirements", show_line_numbers=True, tab_behavior="focus")
                yield FieldError(id=_error_id("requirements"), classes="field-error")
            with TabPane(TAB_LABELS["tab-dockerfile"], id="tab-dockerfile"):
                yield CodeArea("", id="dockerfile", show_line_numbers=True, tab_behavior="focus")
                yield FieldError(id=_error_id("dockerfile"), classes="field-error")
            with TabPane(TAB_LABELS["tab-options"], id="tab-options"):
                with Lazy(OptionsForm(id="options-form")):
                    yield from self._row(
                        "Provider", "provider.name",
                        Select([(p, p) for p in PROVIDERS], value=v["provider"], allow_blank=False,
                               compact=True, id="provider"),
                    )
                    yield from self._row("Model", "provider.model_id", Input(v["model"], compact=True, id="model"))
                    yield from self._row(
                        "Env", "provider.options",
                        Input(v["provider-options"], placeholder="KEY=value, … (e.g. OLLAMA_HOST=…)", compact=True,
                              id="provider-options"),
                    )
                    yield from self._row(
                        "Timeout s", "timeout_s", Input(v["timeout"], type="integer", compact=True, id="timeout")
                    )
                    yield from self._row(
                        "Priority", "priority",
                        Select([(p.name.lower(), p.name.lower()) for p in Priority], value=v["priority"],
                               allow_blank=False, compact=True, id="priority"),
                    )
                    yield from self._row(
                        "Network", "egress",
                        Select([(f"server default ({d.egress})", ""), ("none", "none"),
                                ("provider-only", "provider-only"), ("full", "full")],
                               value=v["egress"], allow_blank=False, compact=True, id="egress",
                               tooltip="What the agent may reach: nothing, its model endpoint only, or everything"),
                    )
                    yield from self._row("CPUs", "limits.cpus", Input(v["cpus"], type="number", compact=True, id="cpus"))
                    yield from self._row(
                        "Memory MB", "limits.memory_mb", Input(v["memory"], type="integer", compact=True, id="memory")
                    )
                    yield from self._row("PIDs", "limits.pids", Input(v["pids"], type="integer", compact=True, id="pids"))
                    yield from self._row(
                        "Entry point", "entrypoint",
                        Input(v["entrypoint"], placeholder="found by agenttui (e.g. graph, app.crew)", compact=True,
                              id="entrypoint", tooltip="The agent's object or function to call (docs/agents.md)"),
                    )
                    # Budgets (docs/recorder.md): empty is the server's default (no limit unless set).
                    for label, field, widget_id, hint in BUDGET_ROWS:
                        yield from self._row(label, field, Input(v[widget_id], placeholder=hint, compact=True,
                                                                 id=widget_id))
        with Vertical(id="query-box"):
            yield Static("", id="retry-banner")
            with Horizontal(id="query-row"):
                yield Label("Query", id="query-label")
                yield Input(placeholder="the test query given to run(query) — enter submits", compact=True, id="query")
            yield FieldError(id=_error_id("query"), classes="field-error")
            yield FieldError(id="err-summary", classes="field-error")
            yield Button("Submit  ^j", id="submit", compact=True, tooltip="Validate and queue the test (ctrl+j)")

    @staticmethod
    def _row(label: str, field: str, widget: Widget) -> Any:
        with_row = Horizontal(Label(label, classes="form-label"), widget, classes="form-row")
        yield with_row
        yield FieldError(id=_error_id(field), classes="field-error")

    # ------------------------------------------------------------------ loading
    def load_file(self, path: Path) -> None:
        """Load an agent file, and requirements.txt / Dockerfile beside it when present."""
        self.query_one("#agent-code", TextArea).load_text(path.read_text(encoding="utf-8"))
        self.agent_filename = path.name
        self.query_one(TabbedContent).get_tab("tab-agent").label = path.name
        for name, widget_id in (("requirements.txt", "requirements"), ("Dockerfile", "dockerfile")):
            beside = path.with_name(name)
            if beside.is_file():
                self.query_one(f"#{widget_id}", TextArea).load_text(beside.read_text(encoding="utf-8"))
        self.mark_saved()

    def load_request(self, request: TestRequest, *, retry_of: int | None = None) -> None:
        """Fill every field from `request` (edit-and-retry)."""
        self.query_one("#agent-code", TextArea).load_text(request.agent_code)
        self.query_one("#requirements", TextArea).load_text(request.requirements)
        self.query_one("#dockerfile", TextArea).load_text(request.dockerfile)
        self.query_one("#query", Input).value = request.query
        self.query_one("#provider", Select).value = request.provider.name
        self.query_one("#model", Input).value = request.provider.model_id
        self.query_one("#provider-options", Input).value = ", ".join(
            f"{k}={v}" for k, v in request.provider.options.items()
        )
        self.query_one("#timeout", Input).value = str(request.timeout_s)
        self.query_one("#priority", Select).value = request.priority.name.lower()
        self.query_one("#egress", Select).value = request.egress.value if request.egress else ""
        self.query_one("#cpus", Input).value = f"{request.limits.cpus:g}"
        self.query_one("#memory", Input).value = str(request.limits.memory_mb)
        self.query_one("#pids", Input).value = str(request.limits.pids)
        self.query_one("#entrypoint", Input).value = request.entrypoint or ""
        for _, field, widget_id, _ in BUDGET_ROWS:
            value = getattr(request.budget, field.removeprefix("budget."))
            self.query_one(f"#{widget_id}", Input).value = "" if value is None else str(value) if isinstance(value, int) else f"{value:g}"
        self.agent_filename = request.agent_filename
        self.query_one(TabbedContent).get_tab("tab-agent").label = request.agent_filename
        self.set_retry_of(retry_of)
        self.clear_errors()
        self.mark_saved()

    def set_retry_of(self, test_id: int | None) -> None:
        self.retry_of = test_id
        banner = self.query_one("#retry-banner", Static)
        banner.update(f"editing a retry of test {test_id} · submit queues a linked test" if test_id else "")
        banner.set_class(test_id is not None, "-shown")

    # ------------------------------------------------------------------ validation
    def collect(self) -> TestRequest:
        """The request the fields describe. Raises InvalidRequest naming each bad field."""
        from agenttui.core.domain import TestRequest  # pydantic: not needed for the first frame

        errors: dict[str, str] = {}
        try:
            form: OptionsForm | None = self.query_one(OptionsForm)
        except NoMatches:  # submitted before the lazy form was mounted: nothing was edited there
            form = None
        if form is not None and not form.is_mounted:  # being mounted: its fields hold no values yet
            form = None
        initial = self._initial()

        def option(widget_id: str) -> str:
            return str(form.query_one(f"#{widget_id}", Input | Select).value) if form else initial[widget_id]

        def number(widget_id: str, field: str, kind: type) -> Any:
            raw = option(widget_id).strip()
            try:
                return kind(raw)
            except ValueError:
                errors[field] = f"must be a number; got {raw!r}" if raw else "must be a number; it is empty"
                return None

        options: dict[str, str] = {}
        raw_options = option("provider-options").strip()
        for part in filter(None, (p.strip() for p in raw_options.split(","))):
            key, sep, value = part.partition("=")
            if not sep or not key.strip():
                errors["provider.options"] = f"write KEY=value pairs separated by commas; {part!r} is not one"
                break
            options[key.strip()] = value.strip()
        fields = dict(
            agent_code=self.query_one("#agent-code", TextArea).text,
            requirements=self.query_one("#requirements", TextArea).text,
            dockerfile=self.query_one("#dockerfile", TextArea).text,
            query=self.query_one("#query", Input).value,
            provider={
                "name": option("provider"),
                "model_id": option("model").strip(),
                "options": options,
            },
            timeout_s=number("timeout", "timeout_s", int),
            priority=option("priority"),
            limits={
                "cpus": number("cpus", "limits.cpus", float),
                "memory_mb": number("memory", "limits.memory_mb", int),
                "pids": number("pids", "limits.pids", int),
            },
            agent_filename=self.agent_filename,
            egress=option("egress") or None,
            entrypoint=option("entrypoint").strip() or None,
            # Checked by the request, in the same words as the flags' (core/budget.py).
            budget={field.removeprefix("budget."): option(widget_id).strip() or None
                    for _, field, widget_id, _ in BUDGET_ROWS},
        )
        try:
            request = TestRequest.parse(**fields)
        except InvalidRequest as exc:
            # Local number errors win: pydantic's "none is not an allowed value" says less.
            raise InvalidRequest({**exc.errors, **errors}) from None
        if errors:
            raise InvalidRequest(errors)
        return request

    def show_errors(self, errors: dict[str, str]) -> None:
        """Put each message next to its field, mark the tabs holding bad fields, and show the
        first bad field."""
        self.clear_errors()
        unplaced: list[str] = []
        bad_tabs: set[str] = set()
        first: tuple[str | None, str] | None = None
        placed: dict[str, list[str]] = {}
        for field, message in errors.items():
            place = FIELDS.get(field)
            if place is None and field.startswith("provider."):
                # e.g. provider.options.OLLAMA_HOST: shown under the Env field, with its name.
                place, field, message = FIELDS["provider.options"], "provider.options", f"{field}: {message}"
            if place is None:
                unplaced.append(f"{field}: {message}")
                continue
            placed.setdefault(field, []).append(message)
            if place[0] is not None:
                bad_tabs.add(place[0])
            first = first or place
        for field, messages in placed.items():
            self.query_one(f"#{_error_id(field)}", FieldError).set_message("; ".join(messages))
        tabs = self.query_one(TabbedContent)
        for tab_id in bad_tabs:
            tabs.get_tab(tab_id).label = f"{self._tab_label(tab_id)} ✗"
        count = len(errors)
        summary = f"not queued: {count} field{'s' if count != 1 else ''} to fix"
        if unplaced:
            summary += " · " + "; ".join(unplaced)
        self.query_one("#err-summary", FieldError).set_message(summary)
        if first is not None:
            self.show_field(*first)

    def show_field(self, tab_id: str | None, widget_id: str) -> None:
        """Bring `widget_id` (on the editor tab `tab_id`, or under the tabs) into view and focus
        it; the Options form's fields once the form is mounted (after the first frame)."""
        if tab_id is not None:
            self.query_one(TabbedContent).active = tab_id
        try:
            self.query_one(f"#{widget_id}").focus()
        except NoMatches:
            self.call_after_refresh(self.show_field, None, widget_id)

    def clear_errors(self) -> None:
        for error in self.query(FieldError):
            error.set_message(None)
        tabs = self.query_one(TabbedContent)
        for tab_id in TAB_LABELS:
            tabs.get_tab(tab_id).label = self._tab_label(tab_id)

    def _tab_label(self, tab_id: str) -> str:
        return self.agent_filename if tab_id == "tab-agent" else TAB_LABELS[tab_id]

    @property
    def errors_shown(self) -> dict[str, str]:
        """Field -> message currently displayed (for tests and the help text)."""
        shown = {}
        for field in FIELDS:
            error = self.query_one(f"#{_error_id(field)}", FieldError)
            if error.message:
                shown[field] = error.message
        return shown

    # ------------------------------------------------------------------ events
    @on(Input.Changed)
    @on(TextArea.Changed)
    def _edited(self, event: Input.Changed | TextArea.Changed) -> None:
        """Editing a field clears its (now stale) message."""
        widget_id = event.control.id
        for field, (_tab, wid) in FIELDS.items():
            if wid == widget_id:
                error = self.query_one(f"#{_error_id(field)}", FieldError)
                if error.message:
                    error.set_message(None)
                break

    @on(Input.Submitted, "#query")
    @on(Button.Pressed, "#submit")
    async def _submit(self, event: Input.Submitted | Button.Pressed) -> None:
        event.stop()
        await self.run_action("app.submit")
