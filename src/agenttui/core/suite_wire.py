"""What crosses the socket for suite runs (docs/suites.md): a run as its caller sees it, and the
bodies that create and resume one. Encoded and decoded with agenttui.core.wire's msgspec codec."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

import msgspec

from agenttui.core.wire import MAX_ID

RunId = Annotated[int, msgspec.Meta(ge=1, le=MAX_ID, description="a suite run's id")]
Text = Annotated[str, msgspec.Meta(min_length=1, max_length=1000)]


@dataclass
class SuiteSlot:
    """One case × repeat of a run, and the test that runs it (None: not submitted yet)."""

    case_id: Text
    repeat: Annotated[int, msgspec.Meta(ge=1, le=1000)]
    test_id: int | None = None


@dataclass
class SuiteRunView:
    id: int
    name: str
    suite_digest: str
    agent_digest: str
    created_at: float
    owner_uid: int
    owner_name: str
    repeat: int
    suite_json: str  # the suite as parsed (agenttui.suites.file.Suite.to_json)
    slots: list[SuiteSlot] = field(default_factory=list)
    baseline: bool = False  # the baseline of its suite (`agenttui suite bless`)


@dataclass
class SuiteRunBody:
    """A new run and its tests in one call: `tests[i]` (the fields of a request over `common`'s,
    as in SubmitManyBody) runs `slots[i]`; all are queued, or none (the run is not stored either)."""

    name: Text
    suite_digest: Text
    agent_digest: Text
    repeat: Annotated[int, msgspec.Meta(ge=1, le=1000)]
    suite_json: str
    slots: list[SuiteSlot]
    tests: list[dict[str, Any]]
    common: dict[str, Any] = field(default_factory=dict)


@dataclass
class SuiteResumeBody:
    """Tests for the given slots of a run whose tests did not finish (`agenttui suite resume`)."""

    slots: list[SuiteSlot]
    tests: list[dict[str, Any]]
    common: dict[str, Any] = field(default_factory=dict)
