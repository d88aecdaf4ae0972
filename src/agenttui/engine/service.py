"""The engine's operations on behalf of a caller: what both the in-process client and the server
call. Access rules live here once (R-27): anyone sees the queue, but another user's test only as
metadata (owner, status, times, position) unless the setting share_test_content is on; only a
test's owner (or an admin) sees its content, and may cancel, retry, read the logs or the request
of, or package it."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import os
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agenttui.core.errors import AccessDenied, NotActionable, NotFound
from agenttui.core.suite_wire import SuiteResumeBody, SuiteRunBody, SuiteRunView
from agenttui.core.wire import CallTotals, LogEntry, ModelCallView, PackageAnswer, QueueView, TestView, TraceView
from agenttui.core.config import Settings
from agenttui.core.domain import ACTIVE, TERMINAL, Egress, FailureKind, InvalidRequest, Status, TestRequest
from agenttui.engine.store import Owner, Store, TestRecord

if TYPE_CHECKING:
    from agenttui.backends.base import Capacity
    from agenttui.packaging import PackageResult

__all__ = ["Service", "NotFound", "AccessDenied", "NotActionable"]

DEFAULT_ETA_S = 30.0  # assumed duration of a test before any has finished
FOLLOW_POLL_S = 0.05  # log followers look this often for lines stored by other processes
LOG_PAGE_LINES = 2000  # a log is read a page at a time: its reader's memory does not grow with it
LOG_PAGE_CHUNKS = 8  # a streamed log's page, in stored chunks (each at most ~256 KB of text)


class Service:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        *,
        is_admin: Callable[[Owner], bool] = lambda owner: owner.uid == 0,
        on_submit: Callable[[int], None] = lambda test_id: None,
        on_orphan: Callable[[int], None] = lambda test_id: None,
        capacity: Callable[[], Awaitable[Capacity | None]] | None = None,
    ):
        self.store = store
        self.settings = settings
        self.is_admin = is_admin
        self.on_submit = on_submit  # tell the orchestrator there is work
        self.on_orphan = on_orphan  # an active test nobody looks after needs adopting
        self.capacity = capacity  # the backend's: limits it cannot grant are refused at submit
        # Whether every caller sees every test's content; the in-process client turns it on (its
        # user reads the store itself: there is nothing to hide from them).
        self.share_content = settings.share_test_content

    async def submit(self, caller: Owner, request: TestRequest, *, parent_id: int | None = None) -> TestView:
        request, sealed = self._prepare_submit(request)
        await self._check_capacity(request)
        test = await self.store.submit(
            request, caller, parent_id=parent_id, backend=self.settings.backend, sealed_secrets=sealed
        )
        assert test.id is not None
        self.on_submit(test.id)
        return await self.show(caller, test.id)

    async def submit_many(self, caller: Owner, requests: list[TestRequest]) -> list[int]:
        """Queue every request in one transaction, after checking them all: one bad request
        queues none (its fields named by its place, `tests[3].query`). The new tests' ids."""
        prepared, errors = [], {}
        for index, request in enumerate(requests):
            try:
                request, sealed = self._prepare_submit(request)
                await self._check_capacity(request)
                prepared.append((request, sealed))
            except InvalidRequest as exc:
                errors.update({f"tests[{index}].{field}": message for field, message in exc.errors.items()})
        if errors:
            raise InvalidRequest(errors)
        tests = await self.store.submit_many(prepared, caller, backend=self.settings.backend)
        for test in tests:
            self.on_submit(test.id)  # type: ignore[arg-type]
        return [test.id for test in tests]  # type: ignore[misc]

    # ------------------------------------------------------------------ suite runs (docs/suites.md)
    async def _prepare_many(self, requests: list[TestRequest]) -> list[tuple[TestRequest, str | None]]:
        prepared, errors = [], {}
        for index, request in enumerate(requests):
            try:
                request, sealed = self._prepare_submit(request)
                await self._check_capacity(request)
                prepared.append((request, sealed))
            except InvalidRequest as exc:
                errors.update({f"tests[{index}].{field}": message for field, message in exc.errors.items()})
        if errors:
            raise InvalidRequest(errors)
        return prepared

    async def create_suite_run(self, caller: Owner, body: SuiteRunBody, requests: list[TestRequest]) -> SuiteRunView:
        """A suite run and its tests (one per slot), queued in one transaction: all or none."""
        if len(body.slots) != len(requests):
            raise InvalidRequest({"slots": f"give one slot per test; there are {len(body.slots)} slots "
                                           f"for {len(requests)} tests"})
        prepared = await self._prepare_many(requests)
        fields = dict(name=body.name, suite_digest=body.suite_digest, agent_digest=body.agent_digest,
                      repeat=body.repeat, suite_json=body.suite_json)
        run_id, tests = await self.store.create_suite_run(fields, body.slots, prepared, caller,
                                                          backend=self.settings.backend)
        for test in tests:
            self.on_submit(test.id)  # type: ignore[arg-type]
        return await self.suite_run(caller, run_id)

    async def resume_suite_run(self, caller: Owner, run_id: int, body: SuiteResumeBody,
                               requests: list[TestRequest]) -> SuiteRunView:
        """New tests for the slots of a run that did not finish. A slot whose test is still
        queued, running or ended by the agent's own doing is refused: no case runs twice."""
        run = await self.suite_run(caller, run_id, action="resume")
        current = {(s.case_id, s.repeat): s.test_id for s in run.slots}
        if len(body.slots) != len(requests):
            raise InvalidRequest({"slots": "give one slot per test"})
        for slot in body.slots:
            if (slot.case_id, slot.repeat) not in current:
                raise InvalidRequest({"slots": f"run {run_id} has no case {slot.case_id!r} repeat {slot.repeat}"})
            test_id = current[(slot.case_id, slot.repeat)]
            if test_id is not None and not resumable(await self.get(test_id)):
                raise NotActionable(f"case {slot.case_id!r} repeat {slot.repeat} of run {run_id} has test "
                                    f"{test_id}, which is not to be run again")
        if body.slots:
            prepared = await self._prepare_many(requests)
            tests = await self.store.resume_suite_run(run_id, body.slots, prepared, caller,
                                                      backend=self.settings.backend)
            for test in tests:
                self.on_submit(test.id)  # type: ignore[arg-type]
        return await self.suite_run(caller, run_id)

    async def suite_run(self, caller: Owner, run_id: int, *, action: str = "see") -> SuiteRunView:
        """A run: its owner's and the admins' (or everyone's with share_test_content)."""
        run = await self.store.suite_run(run_id)
        if run is None:
            raise NotFound(f"no suite run with id {run_id}; `agenttui suite list` lists them")
        if run.owner_uid != caller.uid and not self.is_admin(caller) and (action != "see" or not self.share_content):
            raise AccessDenied(f"suite run {run_id} belongs to {run.owner_name}; you cannot {action} it")
        return run

    async def suite_runs(self, caller: Owner, *, name: str | None = None, baseline: bool = False,
                         limit: int = 50) -> list[SuiteRunView]:
        """The caller's runs, newest first (every run for admins or with share_test_content);
        `baseline`: only the baseline of the suite `name`."""
        if baseline:
            run_id = await self.store.suite_baseline_id(name or "")
            return [] if run_id is None else [await self.suite_run(caller, run_id)]
        everyone = self.is_admin(caller) or self.share_content
        return await self.store.suite_runs(name=name, owner_uid=None if everyone else caller.uid, limit=limit)

    async def bless_suite_run(self, caller: Owner, run_id: int) -> SuiteRunView:
        """Make a run the baseline of its suite (its owner or an admin)."""
        run = await self.suite_run(caller, run_id, action="bless")
        await self.store.bless_suite_run(run.name, run_id)
        return await self.suite_run(caller, run_id)

    async def show(self, caller: Owner, test_id: int) -> TestView:
        test = await self.get(test_id)
        if test.status is Status.QUEUED:
            position = await self.store.queue_position(test_id)
            eta = self._eta(position, await self._typical_duration()) if position else None
            return self.seen_by(caller, TestView.from_record(test, position=position, eta_s=eta))
        view = TestView.from_record(test)
        view.packages = [
            {"path": p.path, "size": p.size, "created_at": p.created_at} for p in await self.store.packages_for(test_id)
        ]
        totals = await self.store.model_call_totals(test_id)
        view.model_calls = CallTotals(**totals) if totals else None
        return self.seen_by(caller, view)

    async def queue(self, caller: Owner) -> QueueView:
        status, active, queued = await self.store.queue_snapshot(self.settings.max_concurrent)
        typical = await self._typical_duration()
        views = [TestView.from_record(t) for t in active]
        views += [
            TestView.from_record(t, position=i, eta_s=self._eta(i, typical)) for i, t in enumerate(queued, 1)
        ]
        return QueueView.build(status, [self.seen_by(caller, v) for v in views])

    async def history(
        self,
        caller: Owner,
        *,
        search: str | None = None,
        limit: int = 50,
        mine: bool = False,
        before_id: int | None = None,
    ) -> list[TestView]:
        """Finished tests, newest first; `before_id` (the last id of a page) gives the next page."""
        tests, totals = await self.store.history_page(
            statuses=TERMINAL, search=search, limit=limit, owner_uid=caller.uid if mine else None, before_id=before_id
        )
        views = [self.seen_by(caller, TestView.from_record(t)) for t in tests]
        for view in views:
            view.model_calls = CallTotals(**totals[view.id]) if view.id in totals else None
        if not search:
            return views
        # A hidden test matches on what its viewer sees (owner, status), never on its content:
        # else searching would tell another user's query or response a character at a time.
        needle = search.lower()
        return [
            v for v in views
            if not v.content_hidden or needle in v.owner_name.lower() or needle in v.status.value.lower()
        ]

    async def cancel(self, caller: Owner, test_id: int) -> TestView:
        test = await self.get(test_id)
        self.check_access(caller, test, "cancel")
        if test.status.is_terminal or test.status is Status.ARCHIVED:
            raise NotActionable(f"test {test_id} already ended {test.status}; nothing to cancel")
        updated = await self.store.request_cancel(test_id)
        if updated.status in ACTIVE and (updated.lease_expires_at or 0) < time.time():
            self.on_orphan(test_id)  # nobody holds it: adopt it so the container really stops
        return TestView.from_record(updated)

    async def retry(
        self,
        caller: Owner,
        test_id: int,
        *,
        query: str | None = None,
        agent_code: str | None = None,
        secrets: dict[str, str] | None = None,
        budget: dict[str, float | int] | None = None,
    ) -> TestView:
        """A new test linked to the original (R-11); the original's result is untouched. Secrets
        are never kept past a test's end: the retrying client resolves them again (`secrets`).
        `budget`: budgets laid over the original's (the others are kept)."""
        test = await self.get(test_id)
        self.check_access(caller, test, "retry")
        changes: dict[str, object] = {k: v for k, v in (("query", query), ("agent_code", agent_code)) if v is not None}
        request = test.request
        if budget:
            changes["budget"] = {**request.budget.model_dump(), **budget}
        if secrets:
            provider = request.provider
            changes["provider"] = {**provider.model_dump(), "options": {**provider.options, **secrets}}
        request = request.replace(**changes) if changes else request
        return await self.submit(caller, request, parent_id=test_id)

    def _prepare_submit(self, request: TestRequest) -> tuple[TestRequest, str | None]:
        """Check what the provider needs, fill in the defaults (egress, strict preflight), take the secret values
        out of the request (sealed for the store; agenttui.core.secrets explains the life cycle)."""
        from agenttui.core.domain import strip_secrets
        from agenttui.core.providers import submit_errors
        from agenttui.core.secrets import SecretBox

        # Names without values (a stored request being retried) carry nothing: start afresh.
        request = request.model_copy(update={"provider": request.provider.model_copy(update={"secrets": ()})})
        errors = submit_errors(request.provider)
        egress = request.egress or Egress.parse(self.settings.default_egress)
        if egress is Egress.FULL and not self.settings.allow_full_egress:
            errors["egress"] = "'full' is disabled on this server (setting allow_full_egress); use provider-only"
        errors.update(self._unenforceable_budgets(request, egress))
        if errors:
            raise InvalidRequest(errors)
        strict = self.settings.strict_preflight if request.strict_preflight is None else request.strict_preflight
        request, values = strip_secrets(request.model_copy(update={
            "egress": egress, "strict_preflight": strict, "budget": self._budget_with_defaults(request)}))
        if not values:
            return request, None
        return request, SecretBox(self.settings.resolved_secrets_key_file).seal(values)

    def _unenforceable_budgets(self, request: TestRequest, egress: Egress) -> dict[str, str]:
        """A budget the test asks for that nothing would enforce is refused, never ignored: budgets
        are kept by the forwarder, which model calls pass under egress provider-only on Docker."""
        if self.settings.backend == "ecs":
            why = "cannot be kept on the ecs backend (its egress is the task's security group, not agenttui's forwarder)"
        elif egress is Egress.FULL:
            why = "needs egress provider-only (under full the model calls do not pass agenttui's forwarder)"
        else:
            return {}
        return {f"budget.{name}": why for name, value in request.budget.model_dump().items() if value is not None}

    def _budget_with_defaults(self, request: TestRequest) -> Any:
        """The request's budgets, each one it leaves unset taken from the server's setting
        (default_max_cost_usd, default_max_tokens, default_max_model_calls)."""
        from agenttui.core.budget import SETTING_OF

        given = request.budget.model_dump()
        filled = {name: getattr(self.settings, SETTING_OF[name]) if value is None else value
                  for name, value in given.items()}
        return request.budget if filled == given else request.budget.model_copy(update=filled)

    async def _check_capacity(self, request: TestRequest) -> None:
        """Limits the backend cannot grant are bad input, refused before anything is queued."""
        capacity = await self.capacity() if self.capacity is not None else None
        if capacity is None:
            return
        limits, errors = request.limits, {}
        if limits.cpus > capacity.cpus:
            errors["limits.cpus"] = (f"asks for {limits.cpus:g} CPUs but {capacity.where} has {capacity.cpus:g}; "
                                     f"use at most {capacity.cpus:g}")
        if limits.memory_mb > capacity.memory_mb:
            errors["limits.memory_mb"] = (f"asks for {limits.memory_mb} MB but {capacity.where} has "
                                          f"{capacity.memory_mb} MB; use at most {capacity.memory_mb} MB")
        if errors:
            raise InvalidRequest(errors)

    async def request(self, caller: Owner, test_id: int) -> TestRequest:
        test = await self.get(test_id)
        self.check_access(caller, test, "read the request of")
        return test.request

    async def logs(
        self, caller: Owner, test_id: int, *, after_seq: int = 0, limit: int | None = None
    ) -> list[LogEntry]:
        test = await self.get(test_id)
        self.check_access(caller, test, "read the logs of")
        return await self.store.logs(test_id, after_seq=after_seq, limit=limit)

    async def read_logs(self, caller: Owner, test_id: int, *, after_seq: int = 0) -> AsyncIterator[list[LogEntry]]:
        """The log after line `after_seq` up to its end so far, a page at a time."""
        test = await self.get(test_id)
        self.check_access(caller, test, "read the logs of")
        position = after_seq
        while batch := await self.store.logs(test_id, after_seq=position, limit=LOG_PAGE_LINES):
            position = batch[-1].seq
            yield batch
            if len(batch) < LOG_PAGE_LINES:
                return

    async def read_log_json(self, caller: Owner, test_id: int, *, after_seq: int = 0) -> AsyncIterator[bytes]:
        """As read_logs, as JSON arrays of entries the way the store keeps them (nothing decoded
        but where the reader starts): what a streamed log sends."""
        test = await self.get(test_id)
        self.check_access(caller, test, "read the logs of")
        position = after_seq
        while page := await self.store.log_json(test_id, after_seq=position, max_chunks=LOG_PAGE_CHUNKS):
            position = page[-1][0]
            for _last, data in page:
                yield data

    async def follow_log_json(self, caller: Owner, test_id: int, *, after_seq: int = 0) -> AsyncIterator[bytes]:
        """As follow_logs, as JSON arrays of entries the way the store keeps them (what a
        followed log sends): a follower decodes and encodes nothing but the chunk it starts
        inside of, so following a flood costs the server little beside the writer."""
        test = await self.get(test_id)
        self.check_access(caller, test, "read the logs of")
        position = after_seq
        while True:
            change = self.store.next_change()  # taken before reading: no write slips between
            page = await self.store.log_json(test_id, after_seq=position, max_chunks=LOG_PAGE_CHUNKS)
            if page:
                position = page[-1][0]
                for _last, data in page:
                    yield data
                continue
            test = await self.get(test_id)
            if (test.status.is_terminal or test.status is Status.ARCHIVED) and position >= test.log_seq:
                return
            await _until(change, FOLLOW_POLL_S)

    async def follow_logs(self, caller: Owner, test_id: int, *, after_seq: int = 0) -> AsyncIterator[list[LogEntry]]:
        """Batches of new lines as they are stored, until the test has ended and all are read."""
        test = await self.get(test_id)
        self.check_access(caller, test, "read the logs of")
        position = after_seq
        while True:
            change = self.store.next_change()  # taken before reading: no write slips between
            batch = await self.store.logs(test_id, after_seq=position, limit=LOG_PAGE_LINES)
            if batch:
                position = batch[-1].seq
                yield batch
                continue
            test = await self.get(test_id)
            if (test.status.is_terminal or test.status is Status.ARCHIVED) and position >= test.log_seq:
                return
            await _until(change, FOLLOW_POLL_S)

    async def trace(self, caller: Owner, test_id: int, *, after_seq: int = 0) -> TraceView:
        """The test's recorded model calls (docs/recorder.md): its owner's and the admins' (they
        hold its messages and answers)."""
        test = await self.get(test_id)
        self.check_access(caller, test, "read the model calls of")
        records = await self.store.model_calls(test_id, after_seq=after_seq)
        totals = await self.store.model_call_totals(test_id)
        return TraceView(
            test_id=test_id,
            calls=[ModelCallView.from_record(r) for r in records],
            totals=CallTotals(**totals) if totals else None,
            note=self._not_recorded(test),
            cassette=test.metrics.get("cassette") if after_seq == 0 else None,
        )

    def _not_recorded(self, test: TestRecord) -> str | None:
        if test.backend == "ecs":
            return "not recorded: the ecs backend's egress is the task's security group, not agenttui's forwarder"
        egress = test.request.egress or Egress.parse(self.settings.default_egress)
        if egress is Egress.FULL:
            return "not recorded: egress full (calls to endpoints off this host do not pass the forwarder)"
        return None

    def seen_by(self, caller: Owner, view: TestView) -> TestView:
        """`view` as `caller` may see it: whole for its owner and the admins (root, the
        server's own user, admin_group), or with share_test_content on; metadata alone else."""
        if self.share_content or view.owner_uid == caller.uid or self.is_admin(caller):
            return view
        return view.without_content()

    async def wait(self, test_id: int) -> TestView:
        while True:
            change = self.store.next_change()
            test = await self.get(test_id)
            if test.status.is_terminal or test.status is Status.ARCHIVED:
                return TestView.from_record(test)
            await _until(change, self.settings.poll_s)

    async def clear_history(self, caller: Owner, older_than_s: float) -> int:
        """Archive finished tests older than `older_than_s` and purge their logs (R-20):
        the caller's own, or everyone's for an admin."""
        owner_uid = None if self.is_admin(caller) else caller.uid
        return await self.store.archive_older_than(older_than_s, owner_uid=owner_uid)

    async def package(
        self, caller: Owner, test_id: int, *, out_dir: str | None = None
    ) -> PackageAnswer[PackageResult]:
        """The test's deployment package (R-21, R-23): its description and the zip's bytes, which
        the caller writes with its own rights. Nothing is written where a caller points:
        `out_dir` (the absolute folder the caller will write the zip into) is only recorded."""
        from agenttui.packaging import PackageError, lookup_image_id
        from agenttui.packaging.build import render_package

        test = await self.get(test_id)
        self.check_access(caller, test, "package")
        base_image_id = await lookup_image_id(self.settings.base_image)
        try:
            result, data = await asyncio.to_thread(
                render_package, test, base_image=self.settings.base_image, base_image_id=base_image_id,
                ollama_url=self.settings.ollama_url,
            )
        except PackageError as exc:
            raise NotActionable(str(exc)) from None
        from agenttui.backends.ecs.packages import wants_s3_packages

        if wants_s3_packages(self.settings):  # also in S3, with a 24-hour presigned URL
            result = await _published(self.settings, result, data)
        await self.store.record_package(
            test_id, caller.uid, _destination(out_dir, result.path.name), result.size, s3_key=result.s3_key,
            url_expires_at=result.url_expires_at,
        )
        return PackageAnswer(result=result, zip=data)

    # ------------------------------------------------------------------ helpers
    async def get(self, test_id: int) -> TestRecord:
        test = await self.store.get(test_id)
        if test is None:
            raise NotFound(test_id)
        return test

    def check_access(self, caller: Owner, test: TestRecord, action: str) -> None:
        if test.owner_uid != caller.uid and not self.is_admin(caller):
            raise AccessDenied(f"test {test.id} belongs to {test.owner_name}; you cannot {action} it")

    async def _typical_duration(self) -> float:
        walls = await self.store.recent_durations([Status.COMPLETED, Status.FAILED], 20)
        return statistics.median(walls) if walls else DEFAULT_ETA_S

    def _eta(self, position: int, typical_s: float) -> float:
        # Tests ahead start in waves of `cap`; each wave takes about one typical test.
        return round(math.ceil(position / self.settings.max_concurrent) * typical_s, 1)


def resumable(test: TestRecord) -> bool:
    """A test a suite resume runs again: cancelled, or failed for a reason outside the agent
    (infrastructure, a build, a configuration); never one queued, running or judged."""
    if test.status is Status.CANCELLED:
        return True
    return test.status is Status.FAILED and test.failure_kind == FailureKind.INFRA.value


def _destination(out_dir: str | None, name: str) -> str:
    """Where the caller says the zip goes (recorded, never written by the engine)."""
    if out_dir is None:
        return name
    if not out_dir.startswith("/") or "\0" in out_dir or len(out_dir) > 4096:
        raise InvalidRequest({"out_dir": "must be the absolute path of the folder the zip is written into"})
    return os.path.join(out_dir, name)


async def _published(settings: Settings, result: PackageResult, data: bytes) -> PackageResult:
    """`result` with its S3 key and URL (or a warning). The upload reads a file: it is written
    in a private folder of this process's own making (mkdtemp: mode 700, a fresh name), never
    where a caller points, and removed after."""
    from agenttui.backends.ecs.packages import publish_package

    with tempfile.TemporaryDirectory(prefix="agenttui-package-") as private:
        staged = os.path.join(private, result.path.name)
        fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        published = await publish_package(settings, dataclasses.replace(result, path=Path(staged)))
    return dataclasses.replace(published, path=result.path)


async def _until(change: asyncio.Event, timeout_s: float) -> None:
    """Until this process writes to the store, or `timeout_s` (another process may have)."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(change.wait(), timeout_s)
