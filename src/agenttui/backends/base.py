"""The backend protocol: how a test's container/task is built, run, watched and removed.

A backend knows nothing of the queue or the store. The orchestrator persists every handle and
log cursor a backend gives it, so another process can pick up where a dead one stopped.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, NamedTuple, Protocol

from agenttui.core.domain import TestRequest

# Defined without the engine's imports, so light clients can catch them too.
from agenttui.core.errors import BuildError, InfraError  # noqa: F401

if TYPE_CHECKING:
    from agenttui.sandbox.egress import NetworkPlan


@dataclass(frozen=True)
class Capacity:
    """The most one test can be given where a backend runs it."""

    cpus: float
    memory_mb: int
    where: str  # named in a refusal: "the Docker engine's machine", ...


@dataclass(frozen=True)
class RunSpec:
    """Everything a backend needs to run one attempt of one test."""

    test_id: int
    attempt: int
    store_id: str  # unique per store, so several stores can share one engine
    request: TestRequest
    env: dict[str, str]  # environment for the container (query, provider settings, ...)
    labels: dict[str, str] = field(default_factory=dict)
    # What the sandbox may reach (agenttui.sandbox.egress); None: the request's egress, no tunnels.
    network: NetworkPlan | None = None
    # Marks this attempt apart from any other that had the same test id and attempt (a store
    # that lost its newest tests with its -wal file): a digest of the nonce its claim stored.
    attempt_mark: str = ""

    @property
    def name(self) -> str:
        """Deterministic container/task name: known before creation, so a crash between
        create and persisting the handle leaves nothing unfindable; with the attempt's mark,
        so a container of a test the store lost is never taken for another's."""
        mark = f"-{self.attempt_mark}" if self.attempt_mark else ""
        return f"agenttui-{self.store_id[:12]}-{self.test_id}-a{self.attempt}{mark}"


class LogLine(NamedTuple):
    """A tuple, so a flood's hundreds of thousands are cheap to make (half a frozen
    dataclass's cost) and go to the store as the (ts, stream, text) rows it takes."""

    ts: float  # epoch seconds
    stream: str  # "stdout" | "stderr"
    text: str  # one line without its newline


@dataclass(frozen=True)
class LogBatch:
    lines: list[LogLine]
    cursor: str  # opaque; pass it back to logs() to resume after these lines


@dataclass(frozen=True)
class ExitInfo:
    exit_code: int | None
    oom_killed: bool = False
    reason: str = ""  # engine's error / stop reason, if any
    started_at: float | None = None
    finished_at: float | None = None


@dataclass(frozen=True)
class Stats:
    cpu_s: float | None = None  # CPU time used so far
    memory_bytes: int | None = None  # current usage
    peak_memory_bytes: int | None = None  # high-water mark, when the engine knows it


@dataclass(frozen=True)
class HandleState:
    """What inspect() finds: enough to adopt a test whose owner died."""

    running: bool
    exit: ExitInfo | None  # set once it has stopped


BuildLog = Callable[[str], Any]  # receives build output lines


class Backend(Protocol):
    """What the orchestrator needs of an execution backend. Backends subclass it explicitly,
    so the optional capabilities below (defaults that do nothing) are inherited."""

    name: str

    async def check(self) -> None:
        """Raise InfraError with a how-to-fix message when the backend cannot be used."""

    async def prepare(self, spec: RunSpec, on_log: BuildLog) -> tuple[str, bool]:
        """Return (image, built): built is False when an existing image was reused (R-13)."""

    async def start(self, spec: RunSpec, image: str) -> str:
        """Create and start the container/task; return its handle."""

    def logs(self, handle: str, cursor: str | None) -> AsyncIterator[LogBatch]:
        """Follow the output from just after `cursor` (None: the start) until it ends."""

    async def wait(self, handle: str) -> ExitInfo:
        """Block until it stops."""

    async def stats(self, handle: str) -> Stats | None:
        """A reading of resource use while it runs (None when not available)."""

    async def stop(self, handle: str, grace_s: float) -> None:
        """SIGTERM, then SIGKILL after grace_s. Stopping a stopped one is not an error."""

    async def remove(self, handle: str) -> None:
        """Remove it and what it owns. Removing a removed one is not an error."""

    async def inspect(self, handle: str) -> HandleState | None:
        """Its state, or None when it no longer exists."""

    async def close(self) -> None: ...

    # Optional capabilities: a backend overrides those it has.
    async def start_up(self) -> None:
        """Work to do once when an orchestrator starts (e.g. starting containers ahead)."""
        return None

    def take_notes(self, name: str) -> list[str]:
        """Lines worth showing in the log of the test run as `name`, gathered while starting it
        (e.g. what the sandbox's preflight found). Taken once."""
        return []

    async def capacity(self) -> Capacity | None:
        """The largest limits a test can be given (None: unknown, nothing is refused)."""
        return None

    async def installed_versions(self, image: str) -> dict[str, str]:
        """{distribution: version} the test's requirements installed in `image`, as recorded
        when it was built ({}: not recorded; the ecs backend installs inside each task)."""
        return {}

    def take_endpoints_down(self, name: str) -> list[str]:
        """The model endpoints that did not answer the preflight of the test run as `name` (it
        runs anyway; a failure's reason then says so). Taken once."""
        return []

    async def last_lines(self, handle: str, count: int) -> list[LogLine]:
        """The last `count` lines of the output, read apart from the log stream (which can
        lose the end of a log that rotated under a flood); empty when the backend cannot."""
        return []
