"""Fixed data for TUI tests and snapshots: the same ids, owners, times and logs every run.

Written straight into a fresh store (tests may use the store; the TUI may not)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import update

from agenttui.core.config import Settings
from agenttui.core.domain import Status, TestRequest
from agenttui.engine.store import TESTS, Owner, Store

# 2026-01-15 09:00:00 UTC: the snapshot clock reads T0 + NOW_OFFSET.
T0 = 1768467600.0
NOW_OFFSET = 3 * 3600.0
NOW = T0 + NOW_OFFSET

ALICE = Owner(1000, "alice")
BOB = Owner(1001, "bob")

AGENT = '''"""Seeded agent."""


def run(query: str) -> str:
    print("thinking about", query)
    return query.upper()
'''


@dataclass
class Seed:
    query: str
    status: Status
    owner: Owner = ALICE
    minute: float = 0.0  # created at T0 + minute*60
    response: str | None = None
    error: str | None = None
    priority: str = "normal"
    exit_code: int | None = None
    wall_s: float = 1.5
    logs: list[tuple[str, str]] = field(default_factory=list)  # (stream, text)
    agent: str = AGENT
    lease_owner: str | None = None
    truncated: bool = False


FINISHED = [
    Seed("What is the capital of France?", Status.COMPLETED, minute=0, response="Paris.", exit_code=0,
         logs=[("system", "[agenttui] running (container 0123456789ab, timeout 600 s)"),
               ("stdout", "thinking about What is the capital of France?"),
               ("stderr", "[agenttui] run returned in 0.912 s"),
               ("system", "[agenttui] COMPLETED")]),
    Seed("divide by zero please", Status.FAILED, minute=5, error="ZeroDivisionError: division by zero",
         exit_code=1, wall_s=0.4,
         logs=[("stdout", "about to divide"), ("stderr", "Traceback (most recent call last):"),
               ("stderr", "ZeroDivisionError: division by zero"),
               ("system", "[agenttui] FAILED: ZeroDivisionError: division by zero")]),
    Seed("count to infinity", Status.TIMED_OUT, owner=BOB, minute=10, wall_s=10.0,
         error="timed out after 10 s; the container was stopped", exit_code=137),
    Seed("never mind", Status.CANCELLED, minute=20, error="cancelled by request", exit_code=137, wall_s=3.2),
    Seed("Summarise this report in one line", Status.COMPLETED, owner=BOB, minute=30, exit_code=0,
         response="The report says revenue grew 12% while costs stayed flat.\nSecond line.", wall_s=12.75),
]

ACTIVE = [
    Seed("summarise the news", Status.RUNNING, minute=170, lease_owner="otherhost:4242:feedbeef",
         logs=[("system", "[agenttui] attempt 1: preparing image (owner otherhost:4242:feedbeef)"),
               ("system", "[agenttui] image agenttui-base:bookworm reused (no build)"),
               ("system", "[agenttui] running (container 0123456789ab, timeout 600 s)"),
               ("stderr", "[agenttui] loading agent.py"),
               ("stdout", "fetching headlines…"),
               ("stdout", "\x1b[31mred text from the agent\x1b[0m (escaped, never interpreted)")]),
]
QUEUED = [
    Seed("translate to German", Status.QUEUED, owner=BOB, minute=175, priority="high"),
    Seed("second in line", Status.QUEUED, minute=176),
]


def request_for(seed: Seed) -> TestRequest:
    return TestRequest.parse(agent_code=seed.agent, query=seed.query, priority=seed.priority, timeout_s=60)


async def seed_store(settings: Settings, seeds: list[Seed], *, t0: float = T0) -> list[int]:
    """Insert `seeds` in order (ids 1..n in a fresh store) with fixed times from `t0`; returns
    ids. Apps whose orchestrator works the queue archive old history: give them a recent t0."""
    store = await Store.open(settings.resolved_db_url, log_max_bytes=settings.log_max_bytes)
    ids: list[int] = []
    try:
        for seed in seeds:
            record = await store.submit(request_for(seed), seed.owner, backend=settings.backend)
            assert record.id is not None
            created = t0 + seed.minute * 60
            values: dict[str, Any] = dict(created_at=created, queued_at=created, updated_at=created)
            if seed.status is not Status.QUEUED:
                claimed = created + 0.5
                running = claimed + 0.25
                values.update(status=Status.RUNNING.value, claimed_at=claimed, running_at=running, attempt=1)
                if seed.status is Status.RUNNING:
                    values.update(lease_owner=seed.lease_owner, lease_expires_at=t0 + 10 * 365 * 86400,
                                  handle="0123456789ab")
                else:
                    values.update(
                        status=seed.status.value,
                        finished_at=running + seed.wall_s,
                        exit_code=seed.exit_code,
                        response=seed.response,
                        error=seed.error,
                        failure_kind="agent" if seed.status is Status.FAILED else None,
                        metrics_json=json.dumps({
                            "wall_s": seed.wall_s, "build_s": 0.0, "image_built": False, "queue_wait_s": 0.5,
                            "cpu_s": round(seed.wall_s * 0.25, 3), "peak_memory_bytes": 42 * 1024 * 1024,
                            "exit_code": seed.exit_code, "oom_killed": False,
                        }),
                    )
            if seed.logs:
                await store.append_logs(record.id, [(created + 1 + i, s, t) for i, (s, t) in enumerate(seed.logs)])
            if seed.truncated:
                values["log_truncated"] = True
            async with store._write() as conn:  # noqa: SLF001 - fixed data for tests
                await conn.execute(update(TESTS).where(TESTS.c.id == record.id).values(**values))
            ids.append(record.id)
    finally:
        await store.close()
    return ids

# A failure whose reason is longer than any pane is wide at 80x24 (issue 15, point 13).
LONG_REASON = (
    "the model endpoint http://127.0.0.1:11434 (ollama) did not answer when the test started, "
    "and the agent then failed: ConnectionRefusedError: [Errno 111] Connection refused; "
    "start it with `ollama serve`, or pick another provider in Options"
)
LONG_FAILURE = Seed("ask the model", Status.FAILED, error=LONG_REASON, exit_code=1,
                    logs=[("stdout", "calling the model")])
