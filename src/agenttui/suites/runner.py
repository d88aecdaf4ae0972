"""Running a suite through the queue: store the run and queue every case × repeat in one call,
follow the tests, judge each as it ends, resume a run whose tests did not finish, and build the
run's `SuiteReport` (agenttui.suites.report) from what the store holds. docs/suites.md."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agenttui.core.suite_wire import SuiteResumeBody, SuiteRunBody, SuiteRunView, SuiteSlot
from agenttui.suites.assertions import Outcome, evaluate
from agenttui.suites.file import Suite, split_common, with_secret_values

if TYPE_CHECKING:
    from agenttui.client.base import Client
    from agenttui.core.wire import TestView
    from agenttui.suites.report import RepeatResult, SuiteReport


class SuiteResumeError(Exception):
    """A run cannot be resumed as it is (e.g. a secret value the environment does not give)."""


def resumable(view: TestView) -> bool:
    """A test `suite resume` runs again: cancelled, or failed outside the agent (infrastructure).
    The server checks the same (Service.resume_suite_run): no case runs twice."""
    status = view.status.value
    return status == "CANCELLED" or status == "FAILED" and view.failure_kind == "infra"


async def _resolved(fields: dict[str, Any], duration_s: int | None, cache: dict[str, Any]) -> dict[str, Any]:
    """The request's fields with the provider's credentials resolved here, in the user's own
    process (docs/providers.md); ollama needs none. One resolution per distinct provider."""
    provider = fields.get("provider") or {}
    name = str(provider.get("name") or "ollama").strip().lower()
    if name == "ollama" or duration_s is None:
        return fields
    import json

    from agenttui.core.domain import TestRequest
    from agenttui.engine.credentials import resolve_for_submit

    key = json.dumps(provider, sort_keys=True)
    if key not in cache:
        resolved = await resolve_for_submit(TestRequest.parse(**fields), duration_s)
        cache[key] = resolved.model_dump(mode="json")["provider"]
    return {**fields, "provider": cache[key]}


async def start_run(client: Client, suite: Suite, *, credentials_duration_s: int | None = None) -> SuiteRunView:
    """Store the run and queue a test per case × repeat, in one call: all or none."""
    slots = [SuiteSlot(case.id, repeat) for case in suite.cases for repeat in range(1, suite.repeat + 1)]
    cache: dict[str, Any] = {}
    tests = [await _resolved(suite.case(slot.case_id).request, credentials_duration_s, cache) for slot in slots]
    common, own = split_common(tests)  # the agent's code once, not once per test (bodies stay small)
    body = SuiteRunBody(name=suite.name, suite_digest=suite.digest, agent_digest=suite.agent_digest,
                        repeat=suite.repeat, suite_json=suite.to_json(), slots=slots, tests=own, common=common)
    return await client.create_suite_run(body)


async def resume_run(client: Client, run_id: int, *, credentials_duration_s: int | None = None
                     ) -> tuple[SuiteRunView, int]:
    """Queue tests for the run's slots that did not finish (never submitted, cancelled, or failed
    by the infrastructure); slots whose tests are queued, running or judged are left alone.
    (the run, how many tests were queued)."""
    run = await client.suite_run(run_id)
    suite = Suite.from_json(run.suite_json)
    again = []
    for slot in run.slots:
        if slot.test_id is None or resumable(await client.show(slot.test_id)):
            again.append(SuiteSlot(slot.case_id, slot.repeat))
    if not again:
        return run, 0
    import os

    cache: dict[str, Any] = {}
    try:
        fields = [with_secret_values(s.case_id, suite.case(s.case_id).request, dict(os.environ)) for s in again]
    except ValueError as exc:
        raise SuiteResumeError(str(exc)) from None
    tests = [await _resolved(request, credentials_duration_s, cache) for request in fields]
    common, own = split_common(tests)
    return await client.resume_suite_run(run_id, SuiteResumeBody(slots=again, tests=own, common=common)), len(again)


async def judge(client: Client, suite: Suite, slot: SuiteSlot, view: TestView | None) -> RepeatResult:
    """One case × repeat as the report tells it: its test's outcome and its assertions' verdict."""
    from agenttui.suites.report import RepeatResult

    if view is None or not view.status.is_terminal:
        # Not finished: neither a pass nor a failure (status None), whatever the queue calls it.
        return RepeatResult(repeat=slot.repeat, test_id=slot.test_id, status=None, passed=None, reasons=[],
                            response=None)
    case = suite.case(slot.case_id)
    totals = view.model_calls
    calls: list[dict[str, Any]] = []
    if any(a.kind == "tool-called" for a in case.expect):
        trace = await client.trace(view.id)
        calls = [{"kind": c.kind, "tool_calls": c.tool_calls} for c in trace.calls]
    elif totals is not None:
        calls = [{"kind": "call"}] * totals.calls
    tokens = None
    if totals is not None and (totals.tokens_in is not None or totals.tokens_out is not None):
        tokens = (totals.tokens_in or 0) + (totals.tokens_out or 0)
    outcome = Outcome(status=view.status.value, response=view.response, duration_s=view.duration_s, calls=calls,
                      tokens=tokens, cost_usd=totals.cost_usd if totals else None,
                      scores=(view.metrics or {}).get("scores"))
    reasons = evaluate(case.expect, outcome)
    if view.error and view.status.value != "COMPLETED" and reasons:
        reasons.append(f"the test's error: {view.error[:200]}")
    return RepeatResult(repeat=slot.repeat, test_id=view.id, status=view.status.value, passed=not reasons,
                        reasons=reasons, response=view.response,
                        tokens_in=totals.tokens_in if totals else None,
                        tokens_out=totals.tokens_out if totals else None,
                        cost_usd=totals.cost_usd if totals else None, duration_s=view.duration_s)


async def build_report(client: Client, run: SuiteRunView, *, views: dict[int, TestView] | None = None,
                       baseline_run_id: int | None = None) -> SuiteReport:
    """The run's SuiteReport from its stored slots and their tests (read now unless in `views`)."""
    from agenttui.suites.report import CaseReport, SuiteReport

    suite = Suite.from_json(run.suite_json)
    by_case: dict[str, list[SuiteSlot]] = {}
    for slot in run.slots:
        by_case.setdefault(slot.case_id, []).append(slot)
    cases = []
    for case in suite.cases:
        repeats = []
        for slot in sorted(by_case.get(case.id, []), key=lambda s: s.repeat):
            view = None
            if slot.test_id is not None:
                view = (views or {}).get(slot.test_id) or await client.show(slot.test_id)
            repeats.append(await judge(client, suite, slot, view))
        cases.append(CaseReport(case_id=case.id, query=case.query, repeats=repeats))
    return SuiteReport(run_id=run.id, suite_name=run.name, suite_digest=run.suite_digest,
                       agent_digest=run.agent_digest, created_at=run.created_at, owner=run.owner_name,
                       cases=cases, baseline_run_id=baseline_run_id)

