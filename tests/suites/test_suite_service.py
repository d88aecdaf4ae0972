"""Who may do what with a suite run (issue 20): the rules of tests. Its owner (and an admin) sees,
resumes and blesses it; another user is refused. A resume may not run a case whose test is queued,
running or judged: no case runs twice."""

from __future__ import annotations

import pytest

from agenttui.core.config import load_settings
from agenttui.core.domain import InvalidRequest, Status
from agenttui.core.errors import AccessDenied, NotActionable, NotFound
from agenttui.core.suite_wire import SuiteResumeBody, SuiteRunBody, SuiteSlot
from agenttui.engine.service import Service
from agenttui.engine.store import Fence, Owner, Store

ALICE, BOB, ROOT = Owner(1000, "alice"), Owner(1001, "bob"), Owner(0, "root")
FIELDS = {"agent_code": "def run(q):\n    return q\n", "query": "q"}


def body(slots: list[SuiteSlot]) -> SuiteRunBody:
    return SuiteRunBody(name="s", suite_digest="d", agent_digest="a", repeat=1, suite_json="{}", slots=slots,
                        tests=[FIELDS] * len(slots))


async def test_a_run_is_its_owners(tmp_path):
    from agenttui.core.domain import parse_requests

    settings = load_settings(db_url=f"sqlite+aiosqlite:///{tmp_path / 's.db'}", backend="noop")
    store = await Store.open(settings.resolved_db_url)
    try:
        service = Service(store, settings)
        slots = [SuiteSlot("a", 1), SuiteSlot("b", 1)]
        run = await service.create_suite_run(ALICE, body(slots), parse_requests({}, [FIELDS, FIELDS]))
        assert [s.case_id for s in run.slots] == ["a", "b"] and all(s.test_id for s in run.slots)
        with pytest.raises(AccessDenied, match="belongs to alice; you cannot see it"):
            await service.suite_run(BOB, run.id)
        with pytest.raises(AccessDenied, match="you cannot bless it"):
            await service.bless_suite_run(BOB, run.id)
        assert await service.suite_runs(BOB) == [] and [r.id for r in await service.suite_runs(ROOT)] == [run.id]
        assert (await service.bless_suite_run(ROOT, run.id)).baseline
        with pytest.raises(NotFound, match="no suite run with id 99"):
            await service.suite_run(ALICE, 99)
        with pytest.raises(InvalidRequest, match="tests"):
            await service.create_suite_run(ALICE, body(slots), parse_requests({}, [FIELDS, {**FIELDS, "query": ""}]))

        # A queued test is not run again; a cancelled one is, in its slot.
        resume = SuiteResumeBody(slots=[SuiteSlot("a", 1)], tests=[FIELDS])
        with pytest.raises(NotActionable, match="not to be run again"):
            await service.resume_suite_run(ALICE, run.id, resume, parse_requests({}, [FIELDS]))
        first = run.slots[0].test_id
        await service.cancel(ALICE, first)
        with pytest.raises(AccessDenied):
            await service.resume_suite_run(BOB, run.id, resume, parse_requests({}, [FIELDS]))
        resumed = await service.resume_suite_run(ALICE, run.id, resume, parse_requests({}, [FIELDS]))
        assert resumed.slots[0].test_id not in (None, first) and resumed.slots[1] == run.slots[1]
        # A test that failed by the agent's own doing has been judged: not run again either.
        claimed = (await store.claim("me", cap=5, lease_s=30))[0]
        await store.transition(claimed.id, Status.FAILED, fence=Fence("me", claimed.attempt), error="x",
                               failure_kind="agent")
        slot = next(s for s in resumed.slots if s.test_id == claimed.id)
        with pytest.raises(NotActionable):
            await service.resume_suite_run(ALICE, run.id, SuiteResumeBody(slots=[slot], tests=[FIELDS]),
                                           parse_requests({}, [FIELDS]))
    finally:
        await store.close()
