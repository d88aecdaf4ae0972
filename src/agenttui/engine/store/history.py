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
from agenttui.engine.store.tables import PACKAGES, TESTS, PackageRecord

CHANGE_TOKEN = select(func.max(TESTS.c.updated_at), func.count())


def list_query(
    statuses: Iterable[Status] | None,
    owner_uid: int | None,
    search: str | None,
    ids: Iterable[int] | None,
    limit: int,
    newest_first: bool,
) -> Select[Any]:
    """The tests matching every filter given (see Store.list_tests)."""
    query = select(TESTS)
    if statuses is not None:
        query = query.where(TESTS.c.status.in_([Status(s).value for s in statuses]))
    if owner_uid is not None:
        query = query.where(TESTS.c.owner_uid == owner_uid)
    if ids is not None:
        query = query.where(TESTS.c.id.in_(list(ids)))
    if search:
        pattern = f"%{search}%"
        columns = (TESTS.c.query, TESTS.c.response, TESTS.c.error, TESTS.c.owner_name, TESTS.c.status)
        query = query.where(or_(*(column.ilike(pattern) for column in columns)))
    order = TESTS.c.id.desc() if newest_first else TESTS.c.id.asc()
    return query.order_by(order).limit(limit)


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
