"""Pure orchestration logic, with the in-memory noop backend (the only place it is used)."""

import asyncio
import os
import sqlite3
import subprocess
import sys
import time

from agenttui.backends.base import InfraError, LogBatch
from agenttui.backends.noop import NoopBackend
from agenttui.core.config import load_settings
from agenttui.core.domain import FailureKind, Status, TestRequest
from agenttui.engine.orchestrator import Orchestrator
from agenttui.engine.store import Owner, Store


class FlakyBackend(NoopBackend):
    """Fails `prepare` with an infrastructure error the first `failures` times."""

    def __init__(self, failures: int):
        super().__init__()
        self.failures = failures
        self.prepare_times: list[float] = []

    async def prepare(self, spec, on_log):
        self.prepare_times.append(time.monotonic())
        if len(self.prepare_times) <= self.failures:
            raise InfraError("engine hiccup")
        return await super().prepare(spec, on_log)


class LossyStreamBackend(NoopBackend):
    """Its log stream loses the last line (as Docker's does when a flood rotates the log
    file under it); the end of its log file still has it."""

    def __init__(self, file_has_it: bool):
        super().__init__()
        self.file_has_it = file_has_it
        self.tail: list = []

    async def logs(self, handle, cursor):
        async for batch in super().logs(handle, cursor):
            self.tail = list(batch.lines)
            yield LogBatch(batch.lines[:-1], batch.cursor)

    async def last_lines(self, handle, count):
        return self.tail[-count:] if self.file_has_it else self.tail[:-1][-count:]


def request(query="q"):
    return TestRequest.parse(agent_code="def run(q): return q", query=query)


async def run_one(tmp_path, backend, *, log_records=False, **overrides):
    """The test as it ended and its log: the lines' texts (with `log_records`, the records)."""
    settings = load_settings(backend="noop", **overrides)
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 's.db'}")
    try:
        test = await store.submit(request(), Owner.current())
        orchestrator = Orchestrator(store, backend, settings)
        await asyncio.wait_for(orchestrator.wait_idle(), 30)
        records = await store.logs(test.id)
        return await store.get(test.id), records if log_records else [r.text for r in records]
    finally:
        await store.close()


async def test_infrastructure_failure_is_retried_with_exponential_backoff(tmp_path):
    backend = FlakyBackend(failures=2)
    test, log = await run_one(tmp_path, backend, retry_backoff_s=0.3, max_attempts=3)
    assert test.status is Status.COMPLETED and test.attempt == 3
    gaps = [b - a for a, b in zip(backend.prepare_times, backend.prepare_times[1:])]
    assert gaps[0] >= 0.3 and gaps[1] >= 0.6, gaps  # 0.3 s, then doubled
    retries = [line for line in log if "infrastructure failure" in line]
    assert len(retries) == 2 and "retrying in 0.3 s" in retries[0] and "retrying in 0.6 s" in retries[1]


async def test_a_retried_test_that_completes_has_no_error_and_each_line_says_its_attempt(tmp_path):
    """The failed attempt stays in the log (its lines marked attempt 1, the failure said), not
    in the completed test's error."""
    test, records = await run_one(tmp_path, FlakyBackend(failures=1), log_records=True, retry_backoff_s=0.05)
    assert (test.status, test.attempt, test.error) == (Status.COMPLETED, 2, None)
    failure = [r for r in records if "infrastructure failure" in r.text]
    assert len(failure) == 1 and failure[0].attempt == 1 and "engine hiccup" in failure[0].text
    attempts = [r.attempt for r in records]
    assert attempts == sorted(attempts) and set(attempts) == {1, 2}
    assert next(r for r in records if r.attempt == 2).text.startswith("[agenttui] attempt 2: preparing image")


async def test_infrastructure_failure_gives_up_after_max_attempts(tmp_path):
    test, _ = await run_one(tmp_path, FlakyBackend(failures=99), retry_backoff_s=0.05, max_attempts=3)
    assert test.status is Status.FAILED and test.attempt == 3
    assert test.failure_kind == FailureKind.INFRA.value and "after 3 attempts" in test.error


async def test_cap_and_priorities_with_many_tests(tmp_path):
    settings = load_settings(backend="noop", max_concurrent=2, noop_run_s=0.05)
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 's.db'}")
    try:
        ids = [(await store.submit(request(str(i)), Owner.current())).id for i in range(12)]
        await asyncio.wait_for(Orchestrator(store, NoopBackend(0.05), settings).wait_idle(), 30)
        tests = [await store.get(i) for i in ids]
        assert all(t.status is Status.COMPLETED for t in tests)
        assert max(c.active_after for c in await store.claims()) <= 2
    finally:
        await store.close()


def test_two_processes_never_run_the_same_test(tmp_path):
    """Claim race: two worker processes on one SQLite store, many tests, no double claim."""
    db = tmp_path / "race.db"
    env = {**os.environ, "AGENTTUI_DB_URL": f"sqlite+aiosqlite:///{db}", "AGENTTUI_BACKEND": "noop",
           "AGENTTUI_MAX_CONCURRENT": "4", "AGENTTUI_POLL_S": "0.01"}
    seed = (
        "import asyncio\n"
        "from agenttui.engine.store import Store, Owner\n"
        "from agenttui.core.domain import TestRequest\n"
        "async def main():\n"
        f"    s = await Store.open('sqlite+aiosqlite:///{db}')\n"
        "    r = TestRequest.parse(agent_code='def run(q): return q', query='race')\n"
        "    for _ in range(300):\n"
        "        await s.submit(r, Owner.current())\n"
        "    await s.close()\n"
        "asyncio.run(main())\n"
    )
    subprocess.run([sys.executable, "-c", seed], check=True, env=env)
    workers = [
        subprocess.Popen([sys.executable, "-m", "agenttui", "worker", "--idle-exit"], env=env,
                         stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    for worker in workers:
        _, err = worker.communicate(timeout=180)
        assert worker.returncode == 0, err
    conn = sqlite3.connect(db)
    claims = conn.execute("select test_id, owner, attempt, active_after, cap from claims").fetchall()
    statuses = dict(conn.execute("select status, count(*) from tests group by status").fetchall())
    assert statuses == {"COMPLETED": 300}
    assert len(claims) == 300 and len({c[0] for c in claims}) == 300  # each test claimed once
    owners = {c[1] for c in claims}
    assert len(owners) == 2, "both processes should have won some claims"
    assert max(c[3] for c in claims) <= 4


async def test_a_queue_worker_archives_old_history(tmp_path):
    settings = load_settings(backend="noop", archive_after_days=1e-6)  # ~0.09 s
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 's.db'}")
    try:
        test = await store.submit(request(), Owner.current())
        await store.request_cancel(test.id)
        await asyncio.sleep(0.2)
        await Orchestrator(store, NoopBackend(), settings).tick()
        assert (await store.get(test.id)).status is Status.ARCHIVED
    finally:
        await store.close()


async def test_a_result_record_the_log_stream_lost_is_read_from_the_end_of_the_log(tmp_path):
    test, log = await run_one(tmp_path, LossyStreamBackend(file_has_it=True))
    assert test.status is Status.COMPLETED and test.response == "noop: q"
    assert test.result is not None and test.result["success"] is True
    # Nothing is made up when the file has no record either: the test fails, saying why.
    test, _ = await run_one(tmp_path / "second", LossyStreamBackend(file_has_it=False))
    assert test.status is Status.FAILED and test.error == "the agent exited without reporting a result"


async def test_a_busy_orchestrator_looks_for_orphans_once_a_poll_interval(tmp_path):
    """Woken by every test's end, it still reads the expired leases at most once per poll_s,
    and an orphan (its owner gone, lease expired) is adopted and finished all the same: one
    claimed without a result nonce (as older versions claimed) is started over."""
    settings = load_settings(backend="noop", poll_s=1.0, retry_backoff_s=0)
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 's.db'}")
    try:
        orphan = await store.submit(request("orphan"), Owner.current())
        await store.claim("gone", cap=10, lease_s=0.01)  # its owner died holding it
        for i in range(200):
            await store.submit(request(f"q{i}"), Owner.current())
        reads = 0
        expired_leases = store.expired_leases

        async def counted():
            nonlocal reads
            reads += 1
            return await expired_leases()

        store.expired_leases = counted
        orchestrator = Orchestrator(store, NoopBackend(), settings)
        idle = asyncio.Event()

        async def watch():  # like a server: the loop runs on wakes, not on the poll interval
            while (status := await store.queue_status(10)).queued or status.running:
                await asyncio.sleep(0.05)
            idle.set()
            orchestrator.wake()

        watcher = asyncio.create_task(watch())
        started = time.monotonic()
        await asyncio.wait_for(orchestrator.run(until=idle.is_set), 60)
        elapsed = time.monotonic() - started
        await watcher
        finished = await store.get(orphan.id)
        assert finished.status is Status.COMPLETED and finished.attempt == 2, finished
        assert reads <= elapsed / settings.poll_s + 2, (reads, elapsed)
    finally:
        await store.close()
