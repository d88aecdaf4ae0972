"""The suite file (TOML): the agent and its settings once at the top, then `[[case]]` entries,
each with an id, a query, overrides of the top's settings and `[[case.expect]]` assertions.
Every problem is named by its case and field (`case "greets" expect[2] regex: ...`), all of
them at once; a suite with any problem queues nothing. docs/suites.md."""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agenttui.suites.assertions import KINDS, Assertion, BadAssertion, parse_assertion

# The keys a suite's top (and a case, as overrides) may set, and the request field each fills.
SETTING_KEYS = ("agent", "requirements", "dockerfile", "provider", "model", "options", "egress", "timeout",
                "cpus", "memory", "entrypoint", "max_cost", "max_tokens", "max_model_calls")
TOP_KEYS = {"name", "repeat", "case", "judge", *SETTING_KEYS}
CASE_KEYS = {"id", "query", "expect", *SETTING_KEYS}
# A request's field (TestRequest.parse's error names) → the suite key that set it.
FIELD_KEYS = {"agent_code": "agent", "query": "query", "requirements": "requirements", "dockerfile": "dockerfile",
              "provider.name": "provider", "provider.model_id": "model", "egress": "egress", "timeout_s": "timeout",
              "limits.cpus": "cpus", "limits.memory_mb": "memory", "entrypoint": "entrypoint",
              "provider.credentials": "provider", "scorers": "scorers", "budget.max_cost_usd": "max_cost",
              "budget.max_tokens": "max_tokens", "budget.max_model_calls": "max_model_calls"}
MAX_REPEAT = 100
MAX_ID_CHARS = 200


class SuiteFileError(Exception):
    """The suite file cannot be used; `problems` holds one line per problem."""

    def __init__(self, path: Path, problems: list[str]):
        self.path, self.problems = path, problems
        super().__init__(f"{path}: " + ("\n  ".join(["invalid suite, nothing was queued:", *problems])))


@dataclass
class Case:
    id: str
    query: str
    request: dict[str, Any]  # the request's fields for this case (the top's with its overrides)
    expect: list[Assertion] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "query": self.query, "request": self.request,
                "expect": [a.to_dict() for a in self.expect]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Case:
        return cls(data["id"], data["query"], data["request"], [parse_assertion(a) for a in data["expect"]])


@dataclass
class Suite:
    name: str
    digest: str  # sha256 of the suite file
    agent_digest: str  # sha256 of the agents' code (every distinct agent, in case order)
    repeat: int
    cases: list[Case]

    def to_json(self) -> str:
        """The suite as stored with its run: what the cases share (the agent's code) once, and
        secret option values (API keys) taken out, their names kept (never stored; a resume
        takes them from the environment)."""
        common, own = split_common([without_secret_values(c.request) for c in self.cases])
        cases = [{**c.to_dict(), "request": request} for c, request in zip(self.cases, own)]
        return json.dumps({"name": self.name, "digest": self.digest, "agent_digest": self.agent_digest,
                           "repeat": self.repeat, "common": common, "cases": cases})

    @classmethod
    def from_json(cls, text: str) -> Suite:
        data = json.loads(text)
        common = data.get("common", {})
        cases = [Case.from_dict({**c, "request": {**common, **c["request"]}}) for c in data["cases"]]
        return cls(data["name"], data["digest"], data["agent_digest"], data["repeat"], cases)

    def case(self, case_id: str) -> Case:
        return next(c for c in self.cases if c.id == case_id)


def without_secret_values(request: dict[str, Any]) -> dict[str, Any]:
    """The request's fields with its provider's secret option values out and their names in
    `provider.secrets`."""
    from agenttui.core.providers import PROVIDERS

    provider = dict(request.get("provider") or {})
    options = dict(provider.get("options") or {})
    catalogue = PROVIDERS.get(str(provider.get("name") or "ollama").strip().lower())
    secret = sorted(k for k in options if catalogue is not None and catalogue.is_secret(k))
    if not secret:
        return request
    provider["options"] = {k: v for k, v in options.items() if k not in secret}
    provider["secrets"] = sorted(set(provider.get("secrets") or ()) | set(secret))
    return {**request, "provider": provider}


def with_secret_values(case_id: str, request: dict[str, Any], environ: dict[str, str]) -> dict[str, Any]:
    """The stored request with its secret values taken from `environ` again; ValueError names
    the case and the variable missing."""
    provider = dict(request.get("provider") or {})
    names = list(provider.get("secrets") or ())
    if not names:
        return request
    missing = [n for n in names if not environ.get(n)]
    if missing:
        raise ValueError(f"case {json.dumps(case_id)} needs {', '.join(missing)}: secret values are never stored "
                         "with a run; set them in the environment to resume it")
    provider["options"] = {**(provider.get("options") or {}), **{n: environ[n] for n in names}}
    provider["secrets"] = []
    return {**request, "provider": provider}


def split_common(requests: list[dict[str, Any]]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(the fields every request has alike, each request's other fields): a request is
    `{**common, **own}` (bulk submits and stored suites send the agent's code once)."""
    if not requests:
        return {}, []
    first = requests[0]
    common = {k: v for k, v in first.items() if all(k in r and r[k] == v for r in requests[1:])}
    return common, [{k: v for k, v in r.items() if k not in common} for r in requests]


def _read(base: Path, value: Any, key: str) -> tuple[str, str]:
    """(the file's text, its name) for a key that names a file relative to the suite file."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError("give a file's path (relative to the suite file)")
    path = (base / value).resolve()
    try:
        return path.read_text(encoding="utf-8"), path.name
    except FileNotFoundError:
        raise ValueError(f"no such file: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None


def _settings(table: dict[str, Any], base: Path, problems: list[str], where: str) -> dict[str, Any]:
    """The request fields the suite keys of `table` set (their files read)."""
    fields: dict[str, Any] = {}
    for key, target in (("agent", "agent_code"), ("requirements", "requirements"), ("dockerfile", "dockerfile")):
        if key in table:
            try:
                fields[target], name = _read(base, table[key], key)
                if key == "agent":
                    fields["agent_filename"] = name
            except ValueError as exc:
                problems.append(f"{where}{key}: {exc}")
    provider = {k: table[s] for s, k in (("provider", "name"), ("model", "model_id"), ("options", "options"))
                if s in table}
    if provider:
        fields["provider"] = provider
    for key, target in (("egress", "egress"), ("timeout", "timeout_s"), ("entrypoint", "entrypoint")):
        if key in table:
            fields[target] = table[key]
    limits = {k: table[s] for s, k in (("cpus", "cpus"), ("memory", "memory_mb")) if s in table}
    if limits:
        fields["limits"] = limits
    budget = {k: table[s] for s, k in (("max_cost", "max_cost_usd"), ("max_tokens", "max_tokens"),
                                       ("max_model_calls", "max_model_calls")) if s in table}
    if budget:  # per test (each case x repeat), docs/recorder.md
        fields["budget"] = budget
    return fields


def _add_scorers(fields: dict[str, Any], assertions: list[tuple[int, Assertion]], base: Path,
                 problems: list[str], where: str) -> None:
    """The request's `scorers`: the files of the case's scorer assertions, read here (the harness
    runs them in the test's sandbox)."""
    from agenttui.suites.scoring import load_scorer

    scorers: dict[str, dict[str, Any]] = {}
    for number, assertion in assertions:
        if assertion.kind != "scorer" or assertion.spec["value"] in scorers:
            continue
        try:
            scorers[assertion.spec["value"]] = load_scorer(base, assertion.spec["value"])
        except ValueError as exc:
            problems.append(f"{where}expect[{number}] scorer value: {exc}")
    if scorers and str(fields.get("dockerfile") or "").strip():
        problems.append(f"{where}dockerfile: a scorer runs in agenttui's harness, which a case with its own "
                        "dockerfile does not run (its image runs its own CMD); drop the dockerfile or the scorer")
    if scorers:
        fields["scorers"] = list(scorers.values())


def _add_rubrics(fields: dict[str, Any], assertions: list[tuple[int, Assertion]], judge: dict[str, str] | None,
                 problems: list[str], where: str) -> None:
    """The request's `rubrics`: what the harness asks the judge model, after the agent."""
    from agenttui.suites.scoring import rubrics_for

    rubrics = [(number, a.spec["value"]) for number, a in assertions if a.kind == "rubric"]
    if judge == {}:  # a [judge] table with problems of its own: already listed
        return
    found = rubrics_for(judge, rubrics, fields, where, problems)
    if found:
        fields["rubrics"] = found


def _merge(top: dict[str, Any], case: dict[str, Any]) -> dict[str, Any]:
    merged = dict(top)
    for key, value in case.items():
        merged[key] = {**top[key], **value} if key in ("provider", "limits", "budget") and key in top else value
    return merged


def _field_problem(where: str, field_name: str, message: str, scorers: list[dict[str, Any]] | None = None) -> str:
    if field_name.startswith("scorers.") and field_name.split(".")[1].isdigit() and scorers:
        scorer = scorers[int(field_name.split(".")[1])] if int(field_name.split(".")[1]) < len(scorers) else {}
        return f"{where}scorer {scorer.get('name', '?')} {field_name.split('.', 2)[-1]}: {message}"
    if field_name.startswith("rubrics."):
        return f"{where}judge {field_name.split('.')[-1]}: {message}"
    if field_name.startswith("provider.options."):
        return f"{where}options.{field_name.removeprefix('provider.options.')}: {message}"
    return f"{where}{FIELD_KEYS.get(field_name, field_name)}: {message}"


def load_suite(path: Path, *, defaults: dict[str, Any] | None = None, repeat: int | None = None,
               only: list[str] | None = None) -> Suite:
    """Read and check a suite file. `defaults`: request fields under the file's (the user's
    settings: timeout, limits); `repeat` overrides the file's; `only` keeps those case ids.
    SuiteFileError lists every problem."""
    raw, data = _read_toml(path)
    problems: list[str] = []
    base = path.parent
    for key in sorted(set(data) - TOP_KEYS):
        problems.append(f"{key}: not a suite key agenttui knows (the top takes {', '.join(sorted(TOP_KEYS))})")
    name = data.get("name", path.stem)
    if not isinstance(name, str) or not name.strip():
        problems.append("name: give the suite's name (text)")
        name = path.stem
    file_repeat = _repeat(data, repeat, problems)
    top = _merge(defaults or {}, _settings(data, base, problems, ""))
    judge = None
    if "judge" in data:
        from agenttui.suites.scoring import parse_judge

        judge, judge_problems = parse_judge(data["judge"])
        problems.extend(judge_problems)
    tables = data.get("case", [])
    if not isinstance(tables, list) or not tables:
        problems.append("case: the suite has no cases; add [[case]] tables with an id and a query")
        tables = []
    cases: list[Case] = []
    seen: set[str] = set()
    for index, table in enumerate(tables):
        case_id, where = _case_id(table, index, seen, problems)
        if isinstance(table, dict):
            rubric_judge = judge if "judge" not in data or judge else {}
            cases.append(_case(table, case_id, where, top, base, rubric_judge, problems))
    if only:
        unknown = [c for c in only if c not in seen]
        problems.extend(f"--case {c}: no case has this id (the suite's: {', '.join(sorted(seen))})" for c in unknown)
        cases = [c for c in cases if c.id in only]
    from agenttui.core.domain import MAX_TESTS_PER_SUBMIT

    if len(cases) * file_repeat > MAX_TESTS_PER_SUBMIT:
        problems.append(f"repeat: {len(cases)} cases × {file_repeat} repeats are {len(cases) * file_repeat:,} tests; "
                        f"a run holds at most {MAX_TESTS_PER_SUBMIT:,} (use fewer repeats, or --case)")
    if problems:
        raise SuiteFileError(path, problems)
    agents = dict.fromkeys(c.request["agent_code"] for c in cases)
    agent_digest = hashlib.sha256("\0".join(agents).encode()).hexdigest()
    return Suite(name.strip(), hashlib.sha256(raw).hexdigest(), agent_digest, file_repeat, cases)


def _read_toml(path: Path) -> tuple[bytes, dict[str, Any]]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SuiteFileError(path, [f"cannot read the suite file: {exc.strerror or exc}"]) from None
    try:
        return raw, tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SuiteFileError(path, [f"not valid TOML: {exc}"]) from None


def _repeat(data: dict[str, Any], repeat: int | None, problems: list[str]) -> int:
    """The repeats of each case: --repeat's, else the file's (1 when it is wrong)."""
    value = data.get("repeat", 1) if repeat is None else repeat
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_REPEAT:
        where = "--repeat" if repeat is not None else "repeat"
        problems.append(f"{where}: must be a whole number from 1 to {MAX_REPEAT}; it is {value!r}")
        return 1
    return value


def _case_id(table: Any, index: int, seen: set[str], problems: list[str]) -> tuple[str, str]:
    """The case's id and how its problems name it."""
    case_id = table.get("id") if isinstance(table, dict) else None
    if not isinstance(case_id, str) or not case_id.strip():
        problems.append(f"case[{index + 1}] id: every case needs an id (text)")
        return f"case[{index + 1}]", f"case[{index + 1}] "
    where = f"case {json.dumps(case_id[:MAX_ID_CHARS])} "
    if len(case_id) > MAX_ID_CHARS:
        problems.append(f"{where}id: must be at most {MAX_ID_CHARS} characters; it has {len(case_id)}")
    if case_id in seen:
        problems.append(f"{where}id: another case has the same id; ids must be unique")
    seen.add(case_id)
    return case_id, where


def _case(table: dict[str, Any], case_id: str, where: str, top: dict[str, Any], base: Path,
          judge: dict[str, Any] | None, problems: list[str]) -> Case:
    """One [[case]] table: its request (the top's fields under its own) and its assertions."""
    from agenttui.core.domain import TestRequest
    from agenttui.core.lifecycle import InvalidRequest

    for key in sorted(set(table) - CASE_KEYS):
        problems.append(f"{where}{key}: not a case key agenttui knows (a case takes {', '.join(sorted(CASE_KEYS))})")
    query = table.get("query")
    if not isinstance(query, str):
        problems.append(f"{where}query: every case needs a query (text)")
        query = ""
    fields = _merge(top, _settings(table, base, problems, where))
    fields["query"] = query
    expect = table.get("expect", [])
    assertions: list[tuple[int, Assertion]] = []
    if not isinstance(expect, list):
        problems.append(f"{where}expect: write assertions as [[case.expect]] tables")
        expect = []
    for number, item in enumerate(expect, start=1):
        try:
            assertions.append((number, parse_assertion(item)))
        except BadAssertion as exc:
            kind = item.get("type") if isinstance(item, dict) and item.get("type") in KINDS else ""
            problems.append(f"{where}expect[{number}] {kind + ' ' if kind else ''}{exc}".replace("  ", " "))
    _add_scorers(fields, assertions, base, problems, where)
    _add_rubrics(fields, assertions, judge, problems, where)
    if "agent_code" not in fields:
        problems.append(f"{where}agent: no agent: set agent = \"agent.py\" at the top or in the case")
    else:
        try:
            TestRequest.parse(**fields)
        except InvalidRequest as exc:
            problems.extend(_field_problem(where, f, m, fields.get("scorers")) for f, m in exc.errors.items()
                            if f != "query" or isinstance(table.get("query"), str))
    return Case(case_id, query, fields, [assertion for _, assertion in assertions])
