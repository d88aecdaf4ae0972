"""Suite runs in the store (docs/suites.md): a run, its case × repeat → test rows, and each
suite's baseline. Not a hot path: SQLAlchemy Core, inside the facade's transactions."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from agenttui.core.suite_wire import SuiteRunView, SuiteSlot
from agenttui.engine.store.tables import SUITE_BASELINES, SUITE_RUNS, SUITE_TESTS


def insert_run(conn: Connection, fields: dict[str, Any], owner_uid: int, owner_name: str) -> int:
    values = dict(fields, owner_uid=owner_uid, owner_name=owner_name, created_at=time.time())
    return int(conn.execute(insert(SUITE_RUNS).values(**values).returning(SUITE_RUNS.c.id)).scalar_one())


def set_slots(conn: Connection, run_id: int, slots: Sequence[SuiteSlot], replace: bool) -> None:
    """Record which test runs each slot; `replace`: the slots exist (a resume gives them new tests)."""
    for slot in slots:
        if replace:
            conn.execute(delete(SUITE_TESTS).where(SUITE_TESTS.c.run_id == run_id,
                                                   SUITE_TESTS.c.case_id == slot.case_id,
                                                   SUITE_TESTS.c.repeat == slot.repeat))
    if slots:
        conn.execute(insert(SUITE_TESTS), [dict(run_id=run_id, case_id=s.case_id, repeat=s.repeat,
                                                test_id=s.test_id) for s in slots])


def read_run(conn: Connection, run_id: int) -> SuiteRunView | None:
    row = conn.execute(select(SUITE_RUNS).where(SUITE_RUNS.c.id == run_id)).first()
    if row is None:
        return None
    return _view(conn, row, with_slots=True)


def _view(conn: Connection, row: Any, with_slots: bool) -> SuiteRunView:
    slots = []
    if with_slots:
        slots = [SuiteSlot(r.case_id, r.repeat, r.test_id) for r in conn.execute(
            select(SUITE_TESTS).where(SUITE_TESTS.c.run_id == row.id)
            .order_by(SUITE_TESTS.c.case_id, SUITE_TESTS.c.repeat))]
    blessed = conn.execute(select(SUITE_BASELINES.c.run_id).where(SUITE_BASELINES.c.name == row.name)).scalar()
    return SuiteRunView(id=row.id, name=row.name, suite_digest=row.suite_digest, agent_digest=row.agent_digest,
                        created_at=row.created_at, owner_uid=row.owner_uid, owner_name=row.owner_name,
                        repeat=row.repeat, suite_json=row.suite_json if with_slots else "", slots=slots,
                        baseline=blessed == row.id)


def list_runs(conn: Connection, *, name: str | None, owner_uid: int | None, limit: int) -> list[SuiteRunView]:
    query = select(SUITE_RUNS).order_by(SUITE_RUNS.c.id.desc()).limit(limit)
    if name is not None:
        query = query.where(SUITE_RUNS.c.name == name)
    if owner_uid is not None:
        query = query.where(SUITE_RUNS.c.owner_uid == owner_uid)
    return [_view(conn, row, with_slots=False) for row in conn.execute(query)]


def baseline_id(conn: Connection, name: str) -> int | None:
    return conn.execute(select(SUITE_BASELINES.c.run_id).where(SUITE_BASELINES.c.name == name)).scalar()


def bless(conn: Connection, name: str, run_id: int) -> None:
    now = time.time()
    if conn.execute(update(SUITE_BASELINES).where(SUITE_BASELINES.c.name == name)
                    .values(run_id=run_id, blessed_at=now)).rowcount == 0:
        conn.execute(insert(SUITE_BASELINES).values(name=name, run_id=run_id, blessed_at=now))
