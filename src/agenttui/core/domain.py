"""What a user submits (TestRequest), validated field by field; the life cycle of a test (Status +
allowed transitions) is in agenttui.core.lifecycle and the provider part (ProviderConfig) in
agenttui.core.providers, both re-exported here."""

from __future__ import annotations

import ast
import enum
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

import agenttui.core.budget as budgets

# The life cycle lives in a module without pydantic, so light clients (the headless CLI) can
# use it; re-exported here, where the rest of the engine looks for it.
from agenttui.core.lifecycle import (  # noqa: F401
    ACTIVE,
    ALLOWED_TRANSITIONS,
    TERMINAL,
    FailureKind,
    FieldErrors,
    IllegalTransition,
    InvalidRequest,
    Priority,
    Status,
    check_transition,
)
# A test's provider is checked against the catalogue, which lives beside it; re-exported here.
from agenttui.core.providers import KNOWN_PROVIDERS, ProviderConfig, split_secrets  # noqa: F401

MAX_QUERY_CHARS = 2000
MAX_ENTRYPOINT_CHARS = 200
MAX_AGENT_BYTES = 100 * 1024
MAX_REQUIREMENTS_BYTES = 10 * 1024
MAX_DOCKERFILE_BYTES = 5 * 1024
MAX_SCORER_BYTES = 32 * 1024  # each scorer's source: it travels in the container's environment
MAX_SCORERS = 8
MAX_RUBRIC_CHARS = 4000
MIN_TIMEOUT_S = 10
MAX_TIMEOUT_S = 600


MAX_CPUS = 64
MIN_MEMORY_MB, MAX_MEMORY_MB = 64, 1_048_576
MIN_PIDS, MAX_PIDS = 16, 1_000_000


def _within(value: int, low: int, high: int, unit: str, units: str) -> int:
    if not low <= value <= high:
        raise ValueError(f"must be between {low}{unit} and {high}{units}; it is {value}{unit}")
    return value


class Limits(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    cpus: float = Field(default=1.0, description="CPUs (fractions allowed)")
    memory_mb: int = Field(default=2048, description="memory limit in MB")
    pids: int = Field(default=1000, description="maximum processes")

    # Said in agenttui's words and units, not the validation library's.
    @field_validator("cpus")
    @classmethod
    def _cpus(cls, value: float) -> float:
        if not 0 < value <= MAX_CPUS:
            raise ValueError(f"must be more than 0 and at most {MAX_CPUS} CPUs; it is {value:g}")
        return value

    @field_validator("memory_mb")
    @classmethod
    def _memory(cls, value: int) -> int:
        return _within(value, MIN_MEMORY_MB, MAX_MEMORY_MB, " MB", " MB")

    @field_validator("pids")
    @classmethod
    def _pids(cls, value: int) -> int:
        return _within(value, MIN_PIDS, MAX_PIDS, "", " processes")


class Egress(str, enum.Enum):
    """What a test's container may reach on the network (docs/providers.md)."""

    NONE = "none"  # nothing at all
    PROVIDER_ONLY = "provider-only"  # its model endpoint and nothing else (the default)
    FULL = "full"  # Docker's default bridge network (plus the model endpoint)

    @classmethod
    def parse(cls, value: Any) -> Egress:
        if isinstance(value, Egress):
            return value
        if isinstance(value, str):
            key = value.strip().lower().replace("_", "-")
            for member in cls:
                if member.value == key:
                    return member
        raise ValueError("must be none, provider-only or full")


def _checked_python(value: str, limit: int) -> str:
    """Python source of at most `limit` bytes that parses."""
    _check_size(value, limit)
    try:
        ast.parse(value)
    except SyntaxError as exc:
        raise ValueError(f"is not valid Python: line {exc.lineno}: {exc.msg}") from None
    return value


def _check_size(value: str, limit: int) -> None:
    size = len(value.encode())
    if size >= limit:
        raise ValueError(f"must be under {limit // 1024} KB; it is {size} bytes")


def _check_requirements(text: str) -> None:
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-"):
            raise ValueError(
                f"line {number}: pip options ({line.split()[0]}) are not supported; "
                "list one package per line"
            )
        try:
            Requirement(line)
        except InvalidRequirement as exc:
            raise ValueError(f"line {number}: {line!r} is not a requirement ({exc})") from None


class Replay(BaseModel):
    """`submit --replay`: the cassette the forwarder answers the test's model calls from (docs/replay.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cassette: dict[str, Any]  # the file's document, checked by agenttui.sandbox.cassette.check_document
    mode: str = "strict"  # strict | new-calls-live
    realtime: bool = False  # a stream's chunks at their recorded pace, else as fast as possible

    @field_validator("mode")
    @classmethod
    def _mode(cls, value: str) -> str:
        if value not in ("strict", "new-calls-live"):
            raise ValueError(f"must be strict or new-calls-live; it is {value!r}")
        return value


class Scorer(BaseModel):
    """A suite's Python scorer (docs/suites.md): the harness calls `function` of `source` with the
    response and the test's record after it has reported the agent's result, in the sandbox."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str  # as the suite names it: "check.py:grade"
    filename: str  # the file's name, for tracebacks
    source: str
    function: str

    @field_validator("source")
    @classmethod
    def _source(cls, value: str) -> str:
        return _checked_python(value, MAX_SCORER_BYTES)

    @field_validator("function")
    @classmethod
    def _function(cls, value: str) -> str:
        if not value.isidentifier():
            raise ValueError(f"must be a Python function's name; it is {value[:80]!r}")
        return value


class Rubric(BaseModel):
    """A suite's model-graded rubric (docs/suites.md): the harness asks the judge model, through the
    test's own provider endpoint, whether the response meets it, after the agent's result is out."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rubric: str
    provider: str  # the judge's provider: the case's own (its endpoint is the one the sandbox reaches)
    model: str

    @field_validator("rubric", "model")
    @classmethod
    def _text(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("is empty")
        if len(value) > MAX_RUBRIC_CHARS:
            raise ValueError(f"must be at most {MAX_RUBRIC_CHARS} characters; it has {len(value)}")
        return value


class Budget(BaseModel):
    """A test's budgets (docs/recorder.md): past one, the forwarder refuses the next model call and the
    test ends with the budget outcome (exit 7). None: no limit (the server's setting, filled in at submit)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_cost_usd: float | None = None
    max_tokens: int | None = None
    max_model_calls: int | None = None

    @field_validator("max_cost_usd", "max_tokens", "max_model_calls", mode="before")
    @classmethod
    def _value(cls, value: Any, info: Any) -> Any:
        return budgets.check(info.field_name, value)

    def any(self) -> bool:
        return any(value is not None for value in self.model_dump().values())


class TestRequest(BaseModel):
    """Everything a test needs (R-1). Construct with `TestRequest.parse(...)` for friendly errors."""

    __test__ = False  # not a pytest test class
    model_config = ConfigDict(extra="forbid", frozen=True)

    agent_code: str
    query: str
    requirements: str = ""
    dockerfile: str = ""
    provider: ProviderConfig = Field(default_factory=ProviderConfig)
    timeout_s: int = 600
    priority: Priority = Priority.NORMAL
    limits: Limits = Field(default_factory=Limits)
    agent_filename: str = "agent.py"
    # None: the server's default (setting default_egress), filled in when the test is submitted.
    egress: Egress | None = None
    # True: a model endpoint that does not answer fails the test at once instead of a warning.
    # None: the server's setting strict_preflight, filled in when the test is submitted.
    strict_preflight: bool | None = None
    # The agent module's object or function to call (a name or dotted path, e.g. `graph` or
    # `app.crew`); None: the harness finds it (docs/agents.md).
    entrypoint: str | None = None
    # `submit --record`: the forwarder keeps the test's whole model exchanges for a cassette (docs/replay.md).
    record: bool = False
    # `submit --replay`: the model calls are answered from this cassette.
    replay: Replay | None = None
    # --max-cost, --max-tokens, --max-model-calls (docs/recorder.md).
    budget: Budget = Field(default_factory=Budget)
    # A suite case's Python scorers, run by the harness after the agent (docs/suites.md).
    scorers: list[Scorer] = Field(default_factory=list, max_length=MAX_SCORERS)
    # A suite case's rubrics, graded by a judge model from the harness after the agent (docs/suites.md).
    rubrics: list[Rubric] = Field(default_factory=list, max_length=MAX_SCORERS)

    @field_validator("query")
    @classmethod
    def _query(cls, value: str) -> str:
        if not value.strip():
            raise ValueError(f"must be 1–{MAX_QUERY_CHARS} characters; it is empty")
        if len(value) > MAX_QUERY_CHARS:
            raise ValueError(f"must be 1–{MAX_QUERY_CHARS} characters; it has {len(value)}")
        return value

    @field_validator("agent_code")
    @classmethod
    def _agent(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("is empty; give the agent's Python code")
        return _checked_python(value, MAX_AGENT_BYTES)

    @field_validator("requirements")
    @classmethod
    def _requirements(cls, value: str) -> str:
        _check_size(value, MAX_REQUIREMENTS_BYTES)
        _check_requirements(value)
        return value

    @field_validator("dockerfile")
    @classmethod
    def _dockerfile(cls, value: str) -> str:
        _check_size(value, MAX_DOCKERFILE_BYTES)
        if value.strip() and not any(
            line.strip().upper().startswith("FROM") for line in value.splitlines()
        ):
            raise ValueError("has no FROM line")
        return value

    @field_validator("timeout_s")
    @classmethod
    def _timeout(cls, value: int) -> int:
        if not MIN_TIMEOUT_S <= value <= MAX_TIMEOUT_S:
            raise ValueError(
                f"must be between {MIN_TIMEOUT_S} s and {MAX_TIMEOUT_S} s (10 min); it is {value} s"
            )
        return value

    @field_validator("entrypoint", mode="before")
    @classmethod
    def _entrypoint(cls, value: Any) -> str | None:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        if not isinstance(value, str):
            raise ValueError("must be text: the name of the agent's object or function")
        name = value.strip()
        if len(name) > MAX_ENTRYPOINT_CHARS or not all(part.isidentifier() for part in name.split(".")):
            raise ValueError(
                f"must be a Python name or dotted path of at most {MAX_ENTRYPOINT_CHARS} characters "
                f"(e.g. agent or app.graph); it is {name[:80]!r}"
            )
        return name

    @field_validator("priority", mode="before")
    @classmethod
    def _priority(cls, value: Any) -> Priority:
        return Priority.parse(value)

    @field_validator("egress", mode="before")
    @classmethod
    def _egress(cls, value: Any) -> Egress | None:
        return None if value is None else Egress.parse(value)

    @classmethod
    def parse(cls, **fields: Any) -> TestRequest:
        """Validate, reporting every bad field by name (R-2). Raises InvalidRequest."""
        try:
            return cls(**fields)
        except ValidationError as exc:
            errors: dict[str, str] = {}
            for err in exc.errors():
                field = ".".join(str(p) for p in err["loc"]) or "request"
                found = (err.get("ctx") or {}).get("error")
                if isinstance(found, FieldErrors):
                    for sub, message in found.errors.items():
                        errors.setdefault(f"{field}.{sub}" if field != "request" else sub, message)
                    continue
                errors.setdefault(field, _in_our_words(err))
            raise InvalidRequest(errors) from None

    def replace(self, **changes: Any) -> TestRequest:
        """A copy with some fields changed, validated again (used by edit-and-retry)."""
        return TestRequest.parse(**{**self.model_dump(), **changes})


# The validation library's kinds of error, said the way agenttui says the rest.
_TYPE_PROBLEMS = {
    "int_parsing": "must be a whole number", "int_type": "must be a whole number",
    "int_from_float": "must be a whole number", "float_parsing": "must be a number",
    "float_type": "must be a number", "bool_parsing": "must be true or false", "bool_type": "must be true or false",
    "string_type": "must be text", "dict_type": "must be a table of names and values",
    "missing": "is required", "extra_forbidden": "is not a field agenttui knows; remove it",
}


def _in_our_words(error: Any) -> str:
    problem = _TYPE_PROBLEMS.get(error["type"])
    if problem is None:
        return error["msg"].removeprefix("Value error, ")
    if error["type"] in ("missing", "extra_forbidden"):
        return problem
    return f"{problem}; it is {error.get('input')!r}"


MAX_TESTS_PER_SUBMIT = 10_000


def parse_requests(common: dict[str, Any], tests: list[dict[str, Any]]) -> list[TestRequest]:
    """One request per entry of `tests`, each `common` with the entry's fields over it; every
    one is checked, and a bad field is named with its entry (`tests[3].query`). InvalidRequest
    when any is bad: a bulk submit queues all of them or none."""
    if not tests or len(tests) > MAX_TESTS_PER_SUBMIT:
        raise InvalidRequest({"tests": f"give 1 to {MAX_TESTS_PER_SUBMIT:,} tests; there are {len(tests):,}"})
    requests, errors = [], {}
    for index, fields in enumerate(tests):
        try:
            requests.append(TestRequest.parse(**{**common, **fields}))
        except InvalidRequest as exc:
            errors.update({f"tests[{index}].{field}": message for field, message in exc.errors.items()})
    if errors:
        raise InvalidRequest(errors)
    return requests


def strip_secrets(request: TestRequest) -> tuple[TestRequest, dict[str, str]]:
    """(the request as stored — secret values taken out, their names kept —, the values)."""
    config, values = split_secrets(request.provider)
    if not values:
        return request, {}
    return request.model_copy(update={"provider": config}), values
