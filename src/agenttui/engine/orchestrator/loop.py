"""The orchestrator: claim → prepare → start → stream/wait/heartbeat → finish → remove.

It is the one writer of a test's execution state while it holds the lease; every write is
fenced by (lease owner, attempt). Cancel requests arrive through the store, so they work from
any process; timeouts are stored as deadlines, so they also fire for adopted tests. The log
pump (log_pump.py) stores a running test's output; the outcome classifier (outcome.py)
decides how it ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from agenttui.backends.base import Backend, BuildError, ExitInfo, InfraError, RunSpec
from agenttui.core.errors import ConfigurationError
from agenttui.core.config import Settings
from agenttui.core.domain import Egress, FailureKind, Status
from agenttui.core.providers import container_env, endpoints, provider_for
from agenttui.core.redact import Redactor
from agenttui.engine.orchestrator.log_pump import LogPump
from agenttui.engine.orchestrator.outcome import classify
from agenttui.engine.orchestrator.recording import start_cassette, start_recording, stop_recording
from agenttui.engine.orchestrator.run import LeaseLost, Run
from agenttui.engine.store import PATIENT, Fence, Store, TestRecord
from agenttui.sandbox.egress import plan_network

log = logging.getLogger(__name__)

STATS_INTERVAL_S = 1.0
MAINTENANCE_INTERVAL_S = 600.0
BUILD_LOG_FLUSH_S = 0.1  # build output waits at most this long to reach the store


def new_owner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Orchestrator:
    def __init__(
        self,
        store: Store,
        backend: Backend,
        settings: Settings,
        *,
        owner_id: str | None = None,
        only_ids: set[int] | None = None,
    ):
        self.store = store
        self.backend = backend
        self.settings = settings
        self.owner_id = owner_id or new_owner_id()
        # Headless in-process mode only claims and adopts the tests it submitted.
        self.only_ids = only_ids
        self.runs: dict[int, Run] = {}
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self._last_heartbeat = 0.0
        self._last_maintenance = 0.0
        self._last_orphan_check = float("-inf")
        self._removals: set[asyncio.Future[None]] = set()

    # ------------------------------------------------------------------ main loop
    async def run(self, until: Callable[[], bool] | None = None) -> None:
        """Work the queue until `until()` is true (checked each tick) or stop() is called."""
        # Its writes and its tests' (tasks made here inherit it) wait while the store's disk is full.
        patient = PATIENT.set(True)
        if self.only_ids is None:
            try:
                await self.backend.start_up()
            except Exception as exc:  # an engine that is down now is met again per test
                log.warning("backend start-up: %s", exc)
        try:
            while not self._stopping.is_set():
                await self.tick()
                if until is not None and until():
                    break
                self._wake.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.settings.poll_s)
        finally:
            await self._detach_all()
            PATIENT.reset(patient)

    def wake(self) -> None:
        """Look at the queue now (e.g. right after a submit)."""
        self._wake.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    async def tick(self) -> None:
        """One round: keep leases, forward cancels, adopt orphans, claim what fits."""
        try:
            await self._keep_leases()
            await self._forward_cancels()
            # A lease expires lease_s after its last heartbeat: looking once a poll interval is
            # as prompt as an idle orchestrator, and a busy one (woken by every test's end)
            # does not read the expired leases hundreds of times a second.
            now = time.monotonic()
            if now - self._last_orphan_check >= self.settings.poll_s:
                self._last_orphan_check = now
                await self._adopt_orphans()
            await self._claim()
            await self._maintain()
        except Exception:  # the loop must survive anything a tick meets (store busy, ...)
            log.exception("orchestrator tick failed; retrying next tick")

    async def _maintain(self) -> None:
        """Archive old history (R-20); only for orchestrators that work the whole queue."""
        now = time.monotonic()
        if self.only_ids is not None or now - self._last_maintenance < MAINTENANCE_INTERVAL_S:
            return
        self._last_maintenance = now
        archived = await self.store.archive_older_than(self.settings.archive_after_days * 86400)
        if archived:
            log.info("archived %d tests older than %s days", archived, self.settings.archive_after_days)

    async def _claim(self) -> None:
        if self._stopping.is_set():
            return
        only = None
        if self.only_ids is not None:
            only = self.only_ids - set(self.runs)
            if not only:
                return
        claimed = await self.store.claim(
            self.owner_id, cap=self.settings.max_concurrent, lease_s=self.settings.lease_s, only_ids=only,
        )
        for test in claimed:
            self._launch(test, adopted=False)

    def _launch(self, test: TestRecord, *, adopted: bool) -> None:
        assert test.id is not None
        run = Run(test=test, fence=Fence(self.owner_id, test.attempt), handle=test.handle)
        self.runs[test.id] = run
        run.task = asyncio.create_task(self._execute(run, adopted=adopted), name=f"test-{test.id}")
        run.task.add_done_callback(lambda _t, tid=test.id: self.runs.pop(tid, None))

    async def _keep_leases(self) -> None:
        now = time.monotonic()
        if not self.runs or now - self._last_heartbeat < self.settings.heartbeat_s:
            return
        self._last_heartbeat = now
        held = await self.store.heartbeat(self.owner_id, list(self.runs), self.settings.lease_s)
        for test_id, run in list(self.runs.items()):
            if test_id not in held and run.task is not None:
                log.warning("test %s: lease lost; another process owns it now", test_id)
                run.task.cancel()

    async def _forward_cancels(self) -> None:
        if not self.runs:
            return
        for test_id in await self.store.cancel_requested(self.owner_id):
            run = self.runs.get(test_id)
            if run is not None:
                run.cancel.set()

    async def _adopt_orphans(self) -> None:
        if self._stopping.is_set():
            return
        for test in await self.store.expired_leases():
            if test.id in self.runs or (self.only_ids is not None and test.id not in self.only_ids):
                continue
            adopted = await self.store.take_over(test, self.owner_id, self.settings.lease_s)
            if adopted is None:
                continue
            log.info("test %s: adopted from %s", test.id, test.lease_owner)
            await self.store.system_log(
                test.id, f"[agenttui] adopted by {self.owner_id} (previous owner {test.lease_owner} stopped)",
                fence=Fence(self.owner_id, adopted.attempt),
            )
            self._launch(adopted, adopted=True)

    async def _detach_all(self) -> None:
        """Leave running containers alone (their leases expire and the next orchestrator adopts
        them); just stop our own tasks."""
        tasks = [r.task for r in self.runs.values() if r.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*self._removals, return_exceptions=True)  # finished tests: finish removing

    async def wait_idle(self) -> None:
        """Run until nothing is queued for us and nothing runs (used by tests and benchmarks)."""

        def idle() -> bool:
            return not self.runs

        patient = PATIENT.set(True)
        try:
            while True:
                await self.tick()
                status = await self.store.queue_status(self.settings.max_concurrent)
                if idle() and status.queued == 0 and status.running == 0:
                    return
                await asyncio.sleep(self.settings.poll_s)
        finally:
            PATIENT.reset(patient)

    # ------------------------------------------------------------------ one test
    async def _execute(self, run: Run, *, adopted: bool) -> None:
        test = run.test
        assert test.id is not None
        if test.result_nonce is None:  # claimed without one (by an older version): start it over
            await self._infra_failure(run, "the previous owner stopped before it prepared the test")
            return
        try:
            secrets = await unseal_secrets(self.store, test, self.settings)
        except InfraError as exc:
            await self._infra_failure(run, str(exc))
            return
        spec = run_spec(test, self.settings, self.store.store_id, secrets)
        run.redact = Redactor([*_secret_values(test), *secrets.values()])
        calls = await start_recording(self.store, self.settings, run, spec)
        try:
            run.cassette = start_cassette(run, spec)
            if adopted:
                handle = await self._reattach(run, spec)
                if handle is None:
                    return
            else:
                handle = await self._build_and_start(run, spec)
                if handle is None:
                    return
            exit_info = await self._supervise(run, handle)
            await stop_recording(spec.name, calls)  # its calls are stored before its end is written
            run.model_call_errors = calls.errors if calls is not None else []
            await self._finish(run, exit_info)
        except LeaseLost:
            log.info("test %s: stopped working on it (lease lost)", test.id)
        except asyncio.CancelledError:
            raise
        except BuildError as exc:
            await self._log(run, "[agenttui] build failed: " + str(exc))
            await self._end(run, Status.FAILED, failure_kind=FailureKind.AGENT.value, error=f"build failed: {exc}")
        except ConfigurationError as exc:
            await self._infra_failure(run, str(exc), retry=False)
        except InfraError as exc:
            await self._infra_failure(run, str(exc))
        except Exception as exc:  # a bug or an unexpected engine answer: fail this test, keep the loop
            log.exception("test %s: unexpected error", test.id)
            await self._infra_failure(run, f"{type(exc).__name__}: {exc}")
        finally:
            await asyncio.shield(stop_recording(spec.name, calls))
            if run.cassette is not None:
                run.cassette.close()

    async def _build_and_start(self, run: Run, spec: RunSpec) -> str | None:
        test = run.test
        started = time.monotonic()

        def on_build_log(line: str) -> None:
            pending.append((time.time(), "build", line))

        pending: list[tuple[float, str, str]] = []
        prepare = asyncio.create_task(self.backend.prepare(spec, on_build_log))
        flusher = asyncio.create_task(flush_build_log(self.store, run, pending, prepare))
        cancel_wait = asyncio.create_task(run.cancel.wait())
        try:
            done, _ = await asyncio.wait(
                {prepare, cancel_wait}, timeout=self.settings.build_timeout_s, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            cancel_wait.cancel()
        if prepare not in done:
            prepare.cancel()
            with contextlib.suppress(BaseException):
                await prepare
            await flusher
            if run.cancel.is_set():
                await self._end(run, Status.CANCELLED, error="cancelled while building")
            else:
                raise BuildError(f"the image build took longer than {self.settings.build_timeout_s} s")
            return None
        await flusher
        image, built = prepare.result()
        run.build_s = time.monotonic() - started if built else 0.0
        run.image_built = built
        run.installed = await self._installed_versions(test.id, image)
        image_note = f"[agenttui] image {image} " + (f"built in {run.build_s:.1f} s" if built else "reused (no build)")
        if run.cancel.is_set():
            await self._log(run, image_note)
            await self._end(run, Status.CANCELLED, error="cancelled while building")
            return None
        # Nothing is written before the start: the container's name is the spec's, so whoever
        # adopts the test after a crash here finds it by that name (_reattach).
        try:
            handle = await self.backend.start(spec, image)
        except BaseException:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._write(run, note=image_note, image=image))
            raise
        notes = [image_note, *(f"[agenttui] {note}" for note in self.backend.take_notes(spec.name))]
        run.endpoints_down = self.backend.take_endpoints_down(spec.name)
        notes.append(f"[agenttui] running (container {handle[:12]}, timeout {test.request.timeout_s} s)")
        await self._mark_running(run, handle, notes, image=image)
        return handle

    async def _installed_versions(self, test_id: int | None, image: str) -> dict[str, str]:
        """What the image's build installed (packages pin it); never a reason to fail the test."""
        try:
            return await self.backend.installed_versions(image)
        except Exception as exc:
            log.warning("test %s: could not read the installed versions of %s: %s", test_id, image, exc)
            return {}

    async def _mark_running(self, run: Run, handle: str, notes: Sequence[str] = (), **values: Any) -> None:
        """BUILDING -> RUNNING with the handle; the deadline starts now and is stored, so a
        timeout also fires for whoever adopts the test later."""
        run.handle = handle
        now = time.time()
        moved = await self.store.transition(
            run.test.id,  # type: ignore[arg-type]
            Status.RUNNING,
            fence=run.fence,
            notes=notes,
            handle=handle,
            running_at=now,
            deadline_at=now + run.test.request.timeout_s,
            **values,
        )
        if moved is None:
            raise LeaseLost()
        run.test = moved

    async def _reattach(self, run: Run, spec: RunSpec) -> str | None:
        """Adopt a test whose owner died (R-6): find its container, or finish with the truth."""
        test = run.test
        handle = test.handle or spec.name
        state = await self.backend.inspect(handle)
        if state is None:
            if test.result_json:
                # The agent reported before its container vanished: that is the outcome.
                await self._finish(run, ExitInfo(exit_code=None, reason="container gone before adoption"))
            elif test.handle is None and test.status is Status.BUILDING:
                await self._infra_failure(run, "the previous owner stopped while building the image")
            else:
                await self._infra_failure(run, "the container disappeared before the agent reported a result")
            return None
        run.handle = handle
        if test.status is Status.BUILDING:  # it died between starting the container and saying so
            await self._mark_running(run, handle)
        await self._log(run, f"[agenttui] reattached to container {handle[:12]}; resuming its log")
        return handle

    async def _supervise(self, run: Run, handle: str) -> ExitInfo:
        """Stream logs, sample stats, and stop the container on cancel or timeout."""
        logs = LogPump(self.store, self.backend, run, max_line=self.settings.log_max_line)
        waiter = asyncio.create_task(self.backend.wait(handle))
        pump = asyncio.create_task(logs.pump(handle))
        sampler = asyncio.create_task(sample_stats(self.backend, run, handle))
        try:
            while not waiter.done():
                deadline = run.test.deadline_at
                if run.cancel.is_set():
                    await self._log(run, "[agenttui] cancel requested: stopping the container")
                    await self.backend.stop(handle, self.settings.stop_grace_s)
                    break
                if deadline is not None and time.time() >= deadline:
                    run.timed_out = True
                    await self._log(run, f"[agenttui] timeout of {run.test.request.timeout_s} s reached: stopping")
                    await self.backend.stop(handle, self.settings.stop_grace_s)
                    break
                if pump.done() and pump.exception() is not None:
                    raise pump.exception()  # type: ignore[misc]
                await asyncio.wait({waiter}, timeout=self.settings.poll_s)
            exit_info = await waiter
            await logs.drain(pump)
            if run.result is None and run.test.result is None:
                await logs.recover_result(handle)
            return exit_info
        finally:
            sampler.cancel()
            for task in (waiter, pump):
                if not task.done():
                    task.cancel()
            await asyncio.gather(waiter, pump, sampler, return_exceptions=True)

    # ------------------------------------------------------------------ endings
    async def _finish(self, run: Run, exit_info: ExitInfo) -> None:
        result = run.result or run.test.result
        outcome = classify(exit_info, result, run.facts())
        miss = run.cassette.miss() if run.cassette is not None else None
        if miss is not None and outcome.status is not Status.CANCELLED:
            # The agent met a call its cassette lacks: that, not how the agent took the error, is the outcome.
            outcome = dataclasses.replace(outcome, status=Status.FAILED, failure_kind=FailureKind.REPLAY_MISS,
                                          error=miss)
        run.peak_memory, run.cpu_s = outcome.peak_memory, outcome.cpu_s
        fields = outcome.fields()
        # An earlier attempt's infrastructure error is not this outcome's (its log keeps it).
        fields.setdefault("error", None)
        fields["metrics_json"] = json.dumps(run.metrics(outcome.exit_info, result))
        await self._end(run, outcome.status, **fields)

    async def _end(self, run: Run, status: Status, **fields: Any) -> None:
        test_id = run.test.id
        assert test_id is not None
        for key in ("error", "response"):
            if isinstance(fields.get(key), str):
                fields[key] = run.redact(fields[key])
        # The closing line goes in with the status change, so whoever sees the end has it.
        closing = f"[agenttui] {status.value}" + (f": {fields['error']}" if fields.get("error") else "")
        moved = await self.store.transition(test_id, status, fence=run.fence, notes=[closing], **fields)
        if moved is None:
            raise LeaseLost()
        run.test = moved
        self.wake()  # a slot is free: claim the next test now rather than at the next poll
        await self._cleanup(run)

    async def _infra_failure(self, run: Run, message: str, *, retry: bool = True) -> None:
        test = run.test
        assert test.id is not None
        message = run.redact(message)
        await self._cleanup(run)
        if retry and test.attempt < self.settings.max_attempts:
            delay = self.settings.retry_backoff_s * 2 ** (test.attempt - 1)
            await self._log(
                run,
                f"[agenttui] infrastructure failure (attempt {test.attempt}/{self.settings.max_attempts}): "
                f"{message}; retrying in {delay:.1f} s",
            )
            moved = await self.store.transition(
                test.id,
                Status.QUEUED,
                fence=run.fence,
                next_attempt_at=time.time() + delay,
                handle=None,
                lease_owner=None,
                lease_expires_at=None,
                cancel_requested=False,
                error=f"attempt {test.attempt}: {message}",
            )
            if moved is not None and run.cancel.is_set():
                await self.store.request_cancel(test.id)
            self.wake()
        else:
            tries = f"after {test.attempt} attempts" if retry else "(not retried: the set-up must change)"
            await self._log(run, f"[agenttui] infrastructure failure {tries}: {message}")
            await self.store.transition(
                test.id,
                Status.FAILED,
                fence=run.fence,
                failure_kind=FailureKind.INFRA.value,
                error=f"infrastructure failure {tries}: {message}",
            )

    async def _cleanup(self, run: Run) -> None:
        """Remove the container. Shielded: a client that closes the moment it sees the test end
        (which cancels our tasks) must not leave the container behind (R-15)."""
        if run.handle is None:
            return
        handle, run.handle = run.handle, None
        removal = asyncio.ensure_future(self._remove(run.test.id, handle))
        self._removals.add(removal)
        removal.add_done_callback(self._removals.discard)
        await asyncio.shield(removal)

    async def _remove(self, test_id: int | None, handle: str) -> None:
        try:
            await self.backend.remove(handle)
        except Exception as exc:  # never let cleanup hide the outcome
            log.warning("test %s: could not remove %s: %s", test_id, handle, exc)

    async def _write(self, run: Run, **values: Any) -> None:
        if not await self.store.update_fenced(run.test.id, run.fence, **values):  # type: ignore[arg-type]
            raise LeaseLost()

    async def _log(self, run: Run, text: str) -> None:
        if not await self.store.system_log(run.test.id, text, fence=run.fence):  # type: ignore[arg-type]
            raise LeaseLost()



def run_spec(test: TestRecord, settings: Settings, store_id: str, secrets: dict[str, str] | None = None) -> RunSpec:
    request = test.request
    assert test.id is not None and test.result_nonce is not None
    # Egress policy → network plan; endpoint URLs become what the sandbox reaches (egress.py).
    egress = request.egress or Egress.parse(settings.default_egress)
    plan, urls = plan_network(egress, endpoints(request.provider, ollama_url=settings.ollama_url))
    env = container_env(request.provider, secrets=secrets, urls=urls)
    env.update(AGENTTUI_QUERY=request.query, AGENTTUI_RESULT_NONCE=test.result_nonce, AGENTTUI_TEST_ID=str(test.id))
    if request.entrypoint:  # the harness's explicit name (submit --entrypoint)
        env["AGENTTUI_ENTRYPOINT"] = request.entrypoint
    if request.scorers:  # a suite's Python scorers, run by the harness after the agent (docs/suites.md)
        env["AGENTTUI_SCORERS"] = json.dumps([s.model_dump() for s in request.scorers])
    if request.rubrics:  # and its rubrics, graded by a judge model through the test's provider endpoint
        env["AGENTTUI_RUBRICS"] = json.dumps([r.model_dump() for r in request.rubrics])
    return RunSpec(
        test_id=test.id,
        attempt=test.attempt,
        store_id=store_id,
        request=request,
        env=env,
        labels=dict(settings.extra_labels),
        network=plan,
        attempt_mark=attempt_mark(test.result_nonce),
    )


def attempt_mark(nonce: str) -> str:
    """What names an attempt's container beside its test id and number: derived from the
    nonce the claim stored (never the nonce itself, which marks the harness record)."""
    return hashlib.sha256(nonce.encode()).hexdigest()[:10]


async def unseal_secrets(store: Store, test: TestRecord, settings: Settings) -> dict[str, str]:
    """The test's secret values, unsealed right before the container needs them."""
    if not test.request.provider.secrets:
        return {}
    from agenttui.core.secrets import SecretBox, SecretsUnavailable

    sealed = await store.sealed_secrets(test.id)  # type: ignore[arg-type]
    if sealed is None:
        raise SecretsUnavailable(f"the secrets of test {test.id} are gone from the store; submit it again")
    return SecretBox(settings.resolved_secrets_key_file).open(sealed)


async def flush_build_log(store: Store, run: Run, pending: list[tuple[float, str, str]], until: asyncio.Task[Any]) -> None:
    """Store the build output gathered in `pending` until the `until` task is done."""
    while True:
        finished = until.done()
        if pending:
            batch = pending[:]
            del pending[: len(batch)]
            await store.append_logs(run.test.id, batch, fence=run.fence)  # type: ignore[arg-type]
        if finished:
            return
        # Wake at once when the image is ready: a reused image must not wait out the tick.
        await asyncio.wait({until}, timeout=BUILD_LOG_FLUSH_S)


async def sample_stats(backend: Backend, run: Run, handle: str) -> None:
    """Keep the run's peak memory and CPU time as the backend reports them."""
    while True:
        with contextlib.suppress(Exception):
            stats = await backend.stats(handle)
            if stats is not None:
                peak = stats.peak_memory_bytes or stats.memory_bytes
                if peak is not None:
                    run.peak_memory = max(run.peak_memory or 0, peak)
                if stats.cpu_s is not None:
                    run.cpu_s = max(run.cpu_s or 0.0, stats.cpu_s)
        await asyncio.sleep(STATS_INTERVAL_S)


def _secret_values(test: TestRecord) -> list[str]:
    request = test.request
    secret_names = provider_for(request.provider).secret_names
    return [v for k, v in request.provider.options.items() if k in secret_names]


__all__ = ["Orchestrator", "new_owner_id"]
