"""Finished tests: listing and searching them, archiving old ones, their packages, and the
token followers poll to see that anything changed."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, Select, func, or_, select

from agenttui.core.lifecycle import Status
import agenttui.engine.store.calls as calls
import agenttui.engine.store.sql as sql
from agenttui.engine.store.driver import execute, first
from agenttui.engine.store.gate import status_after
from agenttui.engine.store.records import row_to_test
from agenttui.engine.store.tables import PACKAGES, TESTS, PackageRecord, TestRecord

CHANGE_TOKEN = select(func.max(TESTS.c.updated_at), func.count())


def list_tests(
    conn: Connection,
    statuses: Iterable[Status] | None,
    owner_uid: int | None,
    search: str | None,
    ids: Iterable[int] | None,
    limit: int,
    newest_first: bool,
    before_id: int | None = None,
) -> list[TestRecord]:
    """The tests matching every filter given (see Store.list_tests).

    One query per status, each reading its (status[, owner_uid], id) index in id order and
    stopping at `limit` ids: two statuses' tests are not in one index order, and a sort of
    every finished test is what made a page's cost grow with the history. The ids are merged
    here, then only the page's tests are read whole."""
    return [row_to_test(r) for r in list_rows(conn, statuses, owner_uid, search, ids, limit, newest_first, before_id)]


def list_rows(
    conn: Connection,
    statuses: Iterable[Status] | None,
    owner_uid: int | None,
    search: str | None,
    ids: Iterable[int] | None,
    limit: int,
    newest_first: bool,
    before_id: int | None = None,
) -> list[Any]:
    """`list_tests` as the table's rows (attributes named as TestRecord's): a history page
    makes its views from them without building a record per row."""
    filters = (owner_uid, search, None if ids is None else list(ids), limit, newest_first, before_id)
    if statuses is None:
        return list(conn.execute(_page(select(TESTS), None, *filters)))
    page: list[int] = []
    for status in sorted({Status(s).value for s in statuses}):
        page += conn.execute(_page(select(TESTS.c.id), status, *filters)).scalars()
    page = sorted(page, reverse=newest_first)[:limit]
    rows = {r.id: r for r in conn.execute(select(TESTS).where(TESTS.c.id.in_(page)))} if page else {}
    return [rows[test_id] for test_id in page if test_id in rows]


def _page(
    query: Select[Any],
    status: str | None,
    owner_uid: int | None,
    search: str | None,
    ids: list[int] | None,
    limit: int,
    newest_first: bool,
    before_id: int | None,
) -> Select[Any]:
    """A search's filter cannot use a B-tree: it is checked on each row read newest first
    (through the index of the other filters) until `limit` rows match, so a rare needle reads
    back through the history until it finds a page (or reaches the oldest test)."""
    if status is not None:
        query = query.where(TESTS.c.status == status)
    if owner_uid is not None:
        query = query.where(TESTS.c.owner_uid == owner_uid)
    if ids is not None:
        query = query.where(TESTS.c.id.in_(ids))
    if before_id is not None:
        query = query.where(TESTS.c.id < before_id)
    if search:
        pattern = f"%{search}%"
        columns = (TESTS.c.query, TESTS.c.response, TESTS.c.error, TESTS.c.owner_name, TESTS.c.status)
        query = query.where(or_(*(column.ilike(pattern) for column in columns)))
    order = TESTS.c.id.desc() if newest_first else TESTS.c.id.asc()
    return query.order_by(order).limit(limit)


def recent_durations(conn: Connection, statuses: Iterable[Status], count: int) -> list[float]:
    """How long (claim to end) the newest `count` tests of `statuses` took: `count` rows of
    each status, by index, whatever the history's length."""
    rows = []
    for status in sorted({Status(s).value for s in statuses}):
        query = (
            select(TESTS.c.id, TESTS.c.claimed_at, TESTS.c.finished_at)
            .where(TESTS.c.status == status)
            .order_by(TESTS.c.id.desc())
            .limit(count)
        )
        rows += conn.execute(query).all()
    rows.sort(key=lambda r: r.id, reverse=True)
    return [r.finished_at - r.claimed_at for r in rows[:count] if r.finished_at and r.claimed_at]


def archive(conn: Connection, cutoff: float, owner_uid: int | None) -> int:
    """Archive the finished tests of `owner_uid` (None: everyone's) that ended before
    `cutoff`, purging their logs, secrets and model calls; how many."""
    params = (cutoff,) if owner_uid is None else (cutoff, owner_uid)
    rows = execute(conn, sql.finished_before(of_one_owner=owner_uid is not None), params).fetchall()
    if not rows:
        return 0
    now = time.time()
    changes = [(status_after(test_id, status, Status.ARCHIVED), now, test_id) for test_id, status in rows]
    ids = [(test_id,) for test_id, _status in rows]
    execute(conn, sql.DELETE_LOGS, ids, many=True)
    execute(conn, sql.DELETE_SECRETS, ids, many=True)
    execute(conn, calls.DELETE, ids, many=True)
    execute(conn, sql.update_tests(("status", "updated_at"), sql.BY_ID), changes, many=True)
    return len(rows)


def record_package(conn: Connection, values: tuple[Any, ...]) -> PackageRecord:
    row = first(execute(conn, sql.INSERT_PACKAGE, values))
    assert row is not None
    return PackageRecord.model_validate(vars(row))


def packages_for(conn: Connection, test_id: int) -> list[PackageRecord]:
    query = select(PACKAGES).where(PACKAGES.c.test_id == test_id).order_by(PACKAGES.c.id)
    return [PackageRecord.model_validate(dict(r._mapping)) for r in conn.execute(query).all()]
