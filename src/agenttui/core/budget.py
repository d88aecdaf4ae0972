"""A test's budgets (--max-cost, --max-tokens, --max-model-calls; docs/recorder.md): their flags,
bounds and wording, shared by the request's validation, the headless CLI (which reads flags
without pydantic) and the forwarder's gate (agenttui.sandbox.budget). Plain Python on purpose."""

from __future__ import annotations

from typing import Any, NamedTuple


class BudgetField(NamedTuple):
    name: str  # the request's field (TestRequest.budget.<name>)
    flag: str  # submit's flag, also the budget's name in a reason ("max-model-calls 1 reached")
    whole: bool  # a whole number (tokens, calls), else a number of US dollars
    most: float
    example: str


FIELDS = (
    BudgetField("max_cost_usd", "--max-cost", False, 1_000_000, "0.50"),
    BudgetField("max_tokens", "--max-tokens", True, 10**12, "20000"),
    BudgetField("max_model_calls", "--max-model-calls", True, 10**9, "10"),
)
BY_NAME = {field.name: field for field in FIELDS}
SETTING_OF = {field.name: f"default_{field.name}" for field in FIELDS}  # the server's default for each


def check(name: str, value: Any) -> float | int | None:
    """The budget's value, or ValueError in agenttui's words (0 is allowed: no model call at all)."""
    field = BY_NAME[name]
    if value is None:
        return None
    unit = "a whole number" if field.whole else "a number of US dollars"
    if isinstance(value, bool):
        raise ValueError(f"must be {unit}, e.g. {field.example}; it is {value!r}")
    if isinstance(value, str):
        text = value.strip().removeprefix("$") if not field.whole else value.strip()
        try:
            value = int(text) if field.whole else float(text)
        except ValueError:
            raise ValueError(f"must be {unit}, e.g. {field.example}; it is {value!r}") from None
    if field.whole and isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, (int, float)) or (field.whole and not isinstance(value, int)) or value != value:
        raise ValueError(f"must be {unit}, e.g. {field.example}; it is {value!r}")
    if not 0 <= value <= field.most:
        raise ValueError(f"must be between 0 and {field.most:,.0f}; it is {value:g}")
    return value


def describe(name: str, value: float | int) -> str:
    """The budget as a reason names it: `max-cost $0.5`, `max-tokens 100`."""
    field = BY_NAME[name]
    shown = f"${value:g}" if not field.whole else f"{value}"
    return f"{field.flag.removeprefix('--')} {shown}"


def ordinal(number: int) -> str:
    if 10 <= number % 100 <= 20:
        return f"{number}th"
    return f"{number}{ {1: 'st', 2: 'nd', 3: 'rd'}.get(number % 10, 'th')}"
