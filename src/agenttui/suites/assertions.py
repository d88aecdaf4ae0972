"""What a suite case expects of its test (`[[case.expect]]`), checked when the suite file is read
and evaluated once the test has ended. A failed assertion gives one line a user can act on: what
was expected and (cut to ~200 characters) what the test gave instead. docs/suites.md lists them."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

SHOWN_CHARS = 200
OUTCOMES = ("completed", "failed", "timed_out", "cancelled")


def shown(text: str | None) -> str:
    """Text quoted in a reason, cut so one reason stays one readable line."""
    if text is None:
        return "no response"
    if len(text) > SHOWN_CHARS:
        return f"{text[:SHOWN_CHARS]!r}… ({len(text)} characters)"
    return repr(text)


class BadAssertion(ValueError):
    """An assertion table that cannot be used; the message names the key and the fix."""


@dataclass(frozen=True)
class Outcome:
    """What an assertion is evaluated on: the finished test."""

    status: str  # a Status value, "COMPLETED"
    response: str | None
    duration_s: float | None = None
    calls: list[dict[str, Any]] = field(default_factory=list)  # recorded model calls (ModelCallView-like dicts)
    tokens: int | None = None  # tokens in + out of its recorded calls (None: unmeasured)
    cost_usd: float | None = None
    scores: list[dict[str, Any]] | None = None  # scorers' and judges' verdicts (the test's metrics "scores")


@dataclass(frozen=True)
class Assertion:
    kind: str
    spec: dict[str, Any]

    @property
    def needs_trace(self) -> bool:
        return self.kind in ("tool-called", "max-model-calls", "max-tokens", "max-cost")

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.kind, **self.spec}

    def check(self, outcome: Outcome) -> str | None:
        """None when it holds; else the reason it failed."""
        return _CHECKS[self.kind](self.spec, outcome)


def _text_values(spec: dict[str, Any]) -> list[str]:
    value = spec["value"]
    return value if isinstance(value, list) else [value]


def _parse_contains(spec: dict[str, Any]) -> None:
    value = spec.get("value")
    if isinstance(value, str):
        pass
    elif isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        pass
    else:
        raise BadAssertion("value: give the text to look for, or a list of texts")
    if spec.setdefault("match", "any") not in ("any", "all"):
        raise BadAssertion(f"match: must be any or all; it is {spec['match']!r}")
    if not isinstance(spec.setdefault("ignore_case", False), bool):
        raise BadAssertion("ignore_case: must be true or false")


def _fold(text: str, spec: dict[str, Any]) -> str:
    return text.casefold() if spec.get("ignore_case") else text


def _contains(spec: dict[str, Any], out: Outcome) -> str | None:
    text, values = _fold(out.response or "", spec), _text_values(spec)
    found = [v for v in values if _fold(v, spec) in text]
    if spec["match"] == "all" and len(found) == len(values) or spec["match"] == "any" and found:
        return None
    missing = [v for v in values if v not in found]
    what = "all of" if spec["match"] == "all" and len(values) > 1 else "any of" if len(values) > 1 else ""
    return f"contains {what + ' ' if what else ''}{', '.join(map(repr, missing if what == 'all of' else values))}: " \
           f"not found in {shown(out.response)}"


def _not_contains(spec: dict[str, Any], out: Outcome) -> str | None:
    text, values = _fold(out.response or "", spec), _text_values(spec)
    found = [v for v in values if _fold(v, spec) in text]
    # any: none of them may appear; all: they may not all appear together.
    if spec["match"] == "all" and len(found) < len(values) or spec["match"] == "any" and not found:
        return None
    return f"not-contains {', '.join(map(repr, found))}: found in {shown(out.response)}"


def _parse_equals(spec: dict[str, Any]) -> None:
    if not isinstance(spec.get("value"), str):
        raise BadAssertion("value: give the exact response expected (text)")
    if not isinstance(spec.setdefault("ignore_case", False), bool):
        raise BadAssertion("ignore_case: must be true or false")
    if not isinstance(spec.setdefault("strip", True), bool):
        raise BadAssertion("strip: must be true or false")


def _equals(spec: dict[str, Any], out: Outcome) -> str | None:
    got = out.response or ""
    want = spec["value"]
    if spec["strip"]:
        got, want = got.strip(), want.strip()
    if _fold(got, spec) == _fold(want, spec):
        return None
    return f"equals {shown(spec['value'])}: the response was {shown(out.response)}"


def _parse_regex(spec: dict[str, Any]) -> None:
    pattern = spec.get("value")
    if not isinstance(pattern, str) or not pattern:
        raise BadAssertion("value: give a regular expression (Python syntax)")
    try:
        re.compile(pattern, re.IGNORECASE if spec.get("ignore_case") else 0)
    except re.error as exc:
        raise BadAssertion(f"value: {pattern!r} is not a valid regular expression ({exc})") from None


def _regex(spec: dict[str, Any], out: Outcome) -> str | None:
    flags = re.IGNORECASE if spec.get("ignore_case") else 0
    if re.search(spec["value"], out.response or "", flags):
        return None
    return f"regex '{spec['value']}' did not match {shown(out.response)}"


def _parse_schema(spec: dict[str, Any]) -> None:
    import jsonschema

    schema = spec.get("schema")
    if not isinstance(schema, dict):
        raise BadAssertion("schema: give the JSON Schema as a table (e.g. schema = { type = \"object\" })")
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise BadAssertion(f"schema: not a valid JSON Schema: {exc.message}") from None


def _schema(spec: dict[str, Any], out: Outcome) -> str | None:
    import jsonschema

    try:
        value = json.loads(out.response or "")
    except ValueError as exc:
        return f"json-schema: the response is not JSON ({exc.msg} at character {exc.pos}): {shown(out.response)}"
    validator = jsonschema.validators.validator_for(spec["schema"])(spec["schema"])
    error = jsonschema.exceptions.best_match(validator.iter_errors(value))
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path) or "the top"
    return f"json-schema: at {where}: {error.message[:SHOWN_CHARS]}"


def _parse_outcome(spec: dict[str, Any]) -> None:
    value = spec.get("value")
    if not isinstance(value, str) or value.strip().lower().replace("-", "_") not in OUTCOMES:
        raise BadAssertion(f"value: must be one of {', '.join(OUTCOMES)}; it is {value!r}")
    spec["value"] = value.strip().lower().replace("-", "_")


def _outcome(spec: dict[str, Any], out: Outcome) -> str | None:
    if out.status.lower() == spec["value"]:
        return None
    return f"outcome: expected {spec['value']}, the test ended {out.status.lower()}"


def _parse_tool(spec: dict[str, Any]) -> None:
    if not isinstance(spec.get("name"), str) or not spec["name"]:
        raise BadAssertion("name: give the tool's name")
    if "arguments" in spec and not isinstance(spec["arguments"], dict):
        raise BadAssertion("arguments: give a table of the arguments that must match")


def _arguments(call: dict[str, Any]) -> Any:
    raw = call.get("arguments")
    try:
        return json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return raw


def _tool_called(spec: dict[str, Any], out: Outcome) -> str | None:
    tools = [tool for call in out.calls for tool in call.get("tool_calls") or []]
    named = [tool for tool in tools if tool.get("name") == spec["name"]]
    wanted = spec.get("arguments")
    for tool in named:
        args = _arguments(tool)
        if not wanted or isinstance(args, dict) and all(args.get(k) == v for k, v in wanted.items()):
            return None
    if named:
        return (f"tool-called {spec['name']} with {json.dumps(wanted)}: it was called with "
                f"{shown('; '.join(str(t.get('arguments')) for t in named))}")
    called = sorted({str(tool.get("name")) for tool in tools})
    return f"tool-called {spec['name']}: not called (tools called: {', '.join(called) or 'none'}; " \
           f"{len(out.calls)} model calls recorded)"


def _parse_limit(spec: dict[str, Any]) -> None:
    value = spec.get("value")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise BadAssertion("value: give the largest allowed number (0 or more)")


def _limit(label: str, get: Any, unit: str = "") -> Any:
    def check(spec: dict[str, Any], out: Outcome) -> str | None:
        value = get(out)
        if value is None:
            return f"{label} {spec['value']}{unit}: not measured for this test"
        if value <= spec["value"]:
            return None
        shown_value = f"{value:.4g}" if isinstance(value, float) else str(value)
        return f"{label} {spec['value']}{unit}: it was {shown_value}{unit}"

    return check


def _parse_scorer(spec: dict[str, Any]) -> None:
    from agenttui.suites.scoring import parse_spec

    try:
        parse_spec(spec)
    except ValueError as exc:
        message = str(exc)
        raise BadAssertion(message if message.startswith("threshold:") else f"value: {message}") from None


def _scorer(spec: dict[str, Any], out: Outcome) -> str | None:
    from agenttui.suites.scoring import check

    return check(spec, out.scores, out.status)


def _parse_rubric(spec: dict[str, Any]) -> None:
    from agenttui.suites.scoring import parse_rubric_spec

    try:
        parse_rubric_spec(spec)
    except ValueError as exc:
        raise BadAssertion(str(exc)) from None


def _rubric(spec: dict[str, Any], out: Outcome) -> str | None:
    from agenttui.suites.scoring import check_rubric

    return check_rubric(spec, out.scores, out.status)


_PARSERS = {
    "equals": _parse_equals, "contains": _parse_contains, "not-contains": _parse_contains, "regex": _parse_regex,
    "json-schema": _parse_schema, "outcome": _parse_outcome, "tool-called": _parse_tool,
    "max-model-calls": _parse_limit, "max-tokens": _parse_limit, "max-cost": _parse_limit, "max-latency": _parse_limit,
    "scorer": _parse_scorer, "rubric": _parse_rubric,
}
_CHECKS = {
    "equals": _equals, "contains": _contains, "not-contains": _not_contains, "regex": _regex,
    "json-schema": _schema, "outcome": _outcome, "tool-called": _tool_called,
    "max-model-calls": _limit("max-model-calls", lambda out: sum(c.get("kind") == "call" for c in out.calls)),
    "max-tokens": _limit("max-tokens", lambda out: out.tokens),
    "max-cost": _limit("max-cost", lambda out: out.cost_usd, " USD"),
    "max-latency": _limit("max-latency", lambda out: out.duration_s, " s"),
    "scorer": _scorer,
    "rubric": _rubric,
}
KINDS = tuple(_PARSERS)
_KEYS = {
    "equals": {"value", "ignore_case", "strip"}, "contains": {"value", "match", "ignore_case"},
    "regex": {"value", "ignore_case"}, "json-schema": {"schema"}, "tool-called": {"name", "arguments"},
    "scorer": {"value", "threshold"}, "rubric": {"value", "threshold"},
}


def parse_assertion(table: Any) -> Assertion:
    """One `[[case.expect]]` table → an Assertion; BadAssertion names the key at fault."""
    if not isinstance(table, dict):
        raise BadAssertion("must be a table (e.g. { type = \"contains\", value = \"hello\" })")
    spec = dict(table)
    kind = spec.pop("type", None)
    if kind not in _PARSERS:
        raise BadAssertion(f"type: must be one of {', '.join(KINDS)}; it is {kind!r}")
    allowed = _KEYS.get("contains" if kind == "not-contains" else kind, {"value"})
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise BadAssertion(f"{unknown[0]}: not a key of a {kind} assertion (it takes {', '.join(sorted(allowed))})")
    _PARSERS[kind](spec)
    return Assertion(kind, spec)


def evaluate(assertions: list[Assertion], outcome: Outcome) -> list[str]:
    """The reasons of the assertions that failed (empty: all hold). A case without assertions
    expects its test to complete."""
    if not assertions:
        assertions = [Assertion("outcome", {"value": "completed"})]
    if not any(a.kind == "outcome" for a in assertions) and outcome.status != "COMPLETED":
        # Text assertions on a test that did not complete say why first.
        return [f"outcome: expected completed, the test ended {outcome.status.lower()}"] + [
            r for r in (a.check(outcome) for a in assertions) if r]
    return [reason for reason in (a.check(outcome) for a in assertions) if reason]
