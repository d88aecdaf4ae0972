"""The queue, as functions of a connection in their caller's transaction: claims with a
global cap and a fair order, leases (heartbeat, adoption), transitions, cancellation, and the
queue's reads."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, func, or_, select, text

from agenttui.core.lifecycle import ACTIVE, Status
from agenttui.core.wire import LogEntry
import agenttui.engine.store.logs as logs
import agenttui.engine.store.sql as sql
from agenttui.engine.store.driver import all_rows, execute, first
from agenttui.engine.store.gate import status_after
from agenttui.engine.store.records import Fence, QueueStatus, driver_row_to_test, row_to_test
from agenttui.engine.store.tables import TESTS, TestRecord
from agenttui.harness import new_nonce

log = logging.getLogger(__name__)

CLAIM_LOCK_KEY = 0x61676E74  # "agnt": the advisory lock claims take on PostgreSQL
ACTIVE_VALUES = tuple(s.value for s in ACTIVE)

# The queue's reads (Core: they run beside the writes, never holding the write lock).
COUNT_ACTIVE = select(func.count()).select_from(TESTS).where(TESTS.c.status.in_(ACTIVE_VALUES))
# In no order: the few active tests are sorted in Python (an ORDER BY over two statuses
# would be a sort in the database, the index gives one status's tests in id order).
ACTIVE_TESTS = select(TESTS).where(TESTS.c.status.in_(ACTIVE_VALUES))
QUEUED_TESTS = select(TESTS).where(TESTS.c.status == Status.QUEUED.value)
COUNTS = (
    select(TESTS.c.status, func.count())
    .where(TESTS.c.status.in_([*ACTIVE_VALUES, Status.QUEUED.value]))
    .group_by(TESTS.c.status)
)
EXPIRED = select(TESTS).where(TESTS.c.status.in_(ACTIVE_VALUES)).where(
    or_(TESTS.c.lease_expires_at.is_(None), TESTS.c.lease_expires_at < bindparam("now"))
)
CANCEL_REQUESTED = (
    select(TESTS.c.id)
    .where(TESTS.c.lease_owner == bindparam("owner"))
    .where(TESTS.c.cancel_requested.is_(True))
    .where(TESTS.c.status.in_(ACTIVE_VALUES))
)


@dataclass(frozen=True)
class ClaimOrder:
    """What a claim asks for: `owner` takes up to `limit` tests (None: as many as the cap
    allows), among `only_ids` if given, keeping BUILDING+RUNNING <= `cap`."""

    owner: str
    cap: int
    lease_s: float
    limit: int | None
    only_ids: list[int] | None


def first_line(attempt: int, owner: str) -> str:
    """The first line of an attempt's log, written by its claim. A first attempt names none: a
    retried test (a new test) would otherwise read "attempt 1" and look like nothing was retried."""
    which = f"attempt {attempt}: " if attempt > 1 else ""
    return f"[agenttui] {which}preparing image (owner {owner})"


def claim(conn: Connection, order: ClaimOrder, now: float) -> list[TestRecord]:
    """Move the next QUEUED tests to BUILDING for `order.owner` (see Store.claim)."""
    if conn.dialect.name == "postgresql":
        # Count-then-claim is racy under READ COMMITTED: one transaction-level advisory
        # lock makes claims take turns across every server sharing the database, so the
        # cap holds exactly. (SQLite's BEGIN IMMEDIATE already serializes writers.)
        execute(conn, sql.ADVISORY_LOCK, (CLAIM_LOCK_KEY,))
    owners = all_rows(execute(conn, sql.WAITING_OWNERS))  # each row also counts the active tests
    if not owners:
        return []
    active = int(owners[0].active)
    free = order.cap - active if order.limit is None else min(order.cap - active, order.limit)
    if free <= 0:
        return []
    chosen = next_in_line(conn, owners, free, now, order.only_ids)
    claimed = [row for row in (_claim_one(conn, order, now, *entry) for entry in chosen) if row is not None]
    if claimed:
        # Writers take turns (the write lock, or the advisory lock), so the count read in
        # this transaction plus what it claimed is what is active when it commits.
        active_after = active + len(claimed)
        audit = [(row.id, order.owner, row.attempt, active_after, order.cap, now) for row in claimed]
        execute(conn, sql.INSERT_CLAIM, audit, many=True)
        chunks = [
            logs.chunk_row(row.id, row.attempt, [
                LogEntry(row.id, row.log_seq, now, "system", first_line(row.attempt, order.owner), row.attempt)
            ])
            for row in claimed
        ]
        execute(conn, sql.INSERT_LOG_CHUNK, chunks, many=True)
    return [driver_row_to_test(vars(row)) for row in claimed]


def _claim_one(conn: Connection, order: ClaimOrder, now: float, test_id: int, attempt: int) -> Any:
    """Claim one test for its next attempt, with a fresh nonce marking its result record and
    the attempt's first log line counted in (claim inserts the lines); None if no longer QUEUED."""
    status = status_after(test_id, Status.QUEUED, Status.BUILDING)
    size = logs.line_bytes(first_line(attempt + 1, order.owner))
    params = (status, order.owner, now + order.lease_s, now, new_nonce(), size, now, test_id)
    return first(execute(conn, sql.CLAIM_TEST, params))


def next_in_line(
    conn: Connection,
    owners: Sequence[Any],
    count: int | None,
    now: float,
    only_ids: list[int] | None,
    *,
    ready_only: bool = True,
) -> list[tuple[int, int]]:
    """(id, attempt) of the next `count` (None: all) QUEUED tests in claim order: priority
    first (R-5), then fair share between users (a user's n-th waiting test ranks after
    everyone's earlier ones, counting the tests that user already has running), then the user
    served least recently, then FIFO. One user's ten queued tests never starve another's.
    `owners`: the rows of sql.WAITING_OWNERS.

    Only a user's first `count` waiting tests can be among the next `count` overall (each of
    that user's earlier tests ranks before them), so this reads at most count x users rows
    through the (owner, status, priority, queued_at, id) index, whatever the queue's length."""
    line = sql.owner_line(
        ready_only=ready_only, only_ids=None if only_ids is None else len(only_ids), limited=count is not None
    )
    extra = [*([now] if ready_only else []), *(only_ids or ()), *([count] if count is not None else [])]
    ranked = []
    for owner in owners:
        rows = execute(conn, line, (owner.owner_uid, *extra)).fetchall()
        for place, (test_id, priority, queued_at, attempt) in enumerate(rows, start=1):
            ranked.append((priority, place + owner.running, owner.last_served, queued_at, test_id, attempt))
    ranked.sort()
    return [(entry[4], entry[5]) for entry in ranked[:count]]


def heartbeat(conn: Connection, owner: str, ids: list[int], expires: float) -> set[int]:
    return {row[0] for row in execute(conn, sql.heartbeat(len(ids)), (expires, *ids, owner)).fetchall()}


def take_over(conn: Connection, test: TestRecord, new_owner: str, lease_s: float, now: float) -> TestRecord | None:
    had_owner = test.lease_owner is not None
    params = (new_owner, now + lease_s, now, test.id, test.attempt, *([test.lease_owner] if had_owner else []), now)
    row = first(execute(conn, sql.take_over(had_owner=had_owner), params))
    return driver_row_to_test(vars(row)) if row else None


def transition(
    conn: Connection,
    test_id: int,
    to: Status,
    cap: int,
    fence: Fence | None,
    notes: Sequence[str],
    values: dict[str, Any],
) -> TestRecord | None:
    """Store.transition inside a transaction of its caller's."""
    now = time.time()
    row = logs.lock_test(conn, test_id, fence)
    if row is None:
        log.info("test %s: %s no longer holds it; %s dropped", test_id, fence and fence.owner, to.value)
        return None
    status = status_after(test_id, row.status, to)
    if notes:
        values.update(logs.insert_lines(conn, test_id, row, [(now, "system", note) for note in notes], cap))
    values.update(status=status, updated_at=now)
    if to.is_terminal:
        values.setdefault("finished_at", now)
        values.setdefault("lease_owner", None)
        values.setdefault("lease_expires_at", None)
    statement = sql.update_tests(tuple(values), sql.BY_ID_IF_STATUS, returning=True)
    new_row = first(execute(conn, statement, (*values.values(), test_id, row.status)))
    if new_row is not None and to.is_terminal:
        execute(conn, sql.DELETE_SECRETS, (test_id,))
    return driver_row_to_test(vars(new_row)) if new_row else None


def request_cancel(conn: Connection, test_id: int, now: float) -> TestRecord:
    """Store.request_cancel inside a transaction of its caller's."""
    row = first(execute(conn, sql.LOCK_WHOLE_TEST, (test_id,)))
    if row is None:
        raise KeyError(test_id)
    status = Status(row.status)
    if status in (Status.QUEUED, Status.CREATED):
        values: dict[str, Any] = dict(
            status=status_after(test_id, status, Status.CANCELLED),
            finished_at=now,
            updated_at=now,
            error="cancelled while queued",
        )
    elif status in ACTIVE:
        values = dict(cancel_requested=True, cancel_requested_at=now, updated_at=now)
    else:
        return driver_row_to_test(vars(row))
    statement = sql.update_tests(tuple(values), sql.BY_ID, returning=True)  # the row is locked
    new_row = first(execute(conn, statement, (*values.values(), test_id)))
    if "status" in values:  # dequeued: it will never run
        execute(conn, sql.DELETE_SECRETS, (test_id,))
    return driver_row_to_test(vars(new_row))


def queued_in_order(conn: Connection, now: float) -> list[TestRecord]:
    """QUEUED tests in the order they will be claimed (see next_in_line)."""
    owners = all_rows(execute(conn, sql.WAITING_OWNERS))
    order = next_in_line(conn, owners, None, now, None, ready_only=False)
    ranks = {test_id: i for i, (test_id, _attempt) in enumerate(order)}
    tests = [row_to_test(r) for r in conn.execute(QUEUED_TESTS).all()]
    return sorted(tests, key=lambda t: ranks.get(t.id, len(ranks)))


def position(conn: Connection, test_id: int) -> int | None:
    """Where a QUEUED test stands in claim order (1: next), as queued_in_order would place it,
    from counts on each waiting user's line (the index) rather than reading the queue.

    Along one user's line the claim order's key (priority, place + running, last served,
    queued_at, id) only grows, so the tests of a user that rank before this one are a prefix
    of that user's line: all of a higher priority, then of the same priority those whose
    place (plus that user's running count) is lower, ties broken by the rest of the key."""
    me = first(execute(conn, sql.QUEUED_TEST, (test_id,)))
    if me is None:
        return None
    owners = all_rows(execute(conn, sql.WAITING_OWNERS))
    mine = next(o for o in owners if o.owner_uid == me.owner_uid)
    higher = first(execute(conn, sql.LINE_COUNTS, _counts_params(me.owner_uid, me.priority))).higher
    same_before = execute(conn, sql.LINE_BEFORE, (me.owner_uid, me.priority, me.queued_at, me.id)).fetchone()[0]
    place = higher + same_before + 1
    ahead = place - 1
    for other in owners:
        if other.owner_uid != me.owner_uid:
            ahead += _ahead_in_line(conn, other, me, place + mine.running, mine.last_served)
    return ahead + 1


def _counts_params(owner_uid: int, priority: int) -> tuple[int, ...]:
    return (priority, priority, owner_uid, priority)


def _ahead_in_line(conn: Connection, other: Any, me: Any, my_rank: int, my_last_served: float) -> int:
    """How many of `other`'s waiting tests rank before `me`, whose rank among equal priorities
    is `my_rank` (place + running)."""
    counts = first(execute(conn, sql.LINE_COUNTS, _counts_params(other.owner_uid, me.priority)))
    # The j-th of other's tests of my priority ranks (higher + j + other.running): before me
    # when j is below `tie`; the `tie`-th one is decided by the rest of the key.
    tie = my_rank - counts.higher - other.running
    ahead = counts.higher + min(max(tie - 1, 0), counts.same)
    if 1 <= tie <= counts.same:
        queued_at, tied_id = execute(conn, sql.LINE_NTH, (other.owner_uid, me.priority, tie - 1)).fetchone()
        ahead += (other.last_served, queued_at, tied_id) < (my_last_served, me.queued_at, me.id)
    return ahead


def snapshot(conn: Connection, now: float, cap: int) -> tuple[QueueStatus, list[TestRecord], list[TestRecord]]:
    """The active tests (oldest first), the queued ones in claim order and their counts."""
    if conn.dialect.name != "sqlite":  # one snapshot for every statement (SQLite's read tx has one)
        conn.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
    active = sorted((row_to_test(r) for r in conn.execute(ACTIVE_TESTS).all()), key=lambda t: t.id or 0)
    queued = queued_in_order(conn, now)
    return QueueStatus(running=len(active), queued=len(queued), cap=cap), active, queued


def status_counts(conn: Connection, cap: int) -> QueueStatus:
    counts = dict(conn.execute(COUNTS).all())
    running = sum(counts.get(s, 0) for s in ACTIVE_VALUES)
    return QueueStatus(running=running, queued=counts.get(Status.QUEUED.value, 0), cap=cap)
