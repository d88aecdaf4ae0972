"""Containers started ahead of their tests (the `warm_pool` setting).

Docker's create + start of a container costs ~0.2-0.3 s, as long as a whole `docker run` of a
trivial program; a test that finds a container of its kind already started skips it. A waiting
container runs the harness with no test: `runner.py` blocks on a named pipe in its staging
folder. To give it a test, the host renames the container to the test's deterministic name (so
adoption after a crash finds it like any other), moves the folder to the test's name (the bind
mount follows the directory), writes the agent beside the runner, and writes the job (the
test's environment: query, nonce, provider settings, secrets) into the pipe: it passes through
the kernel's pipe buffer only, never a file. Only the server's user reaches the pipe on the
host (the staging root is 0700, staging.py); the container's user may only read it.

A kind is what a container cannot change once created: the image, the network (egress `none`
or `full`: `provider-only` tests need their own sidecar, so they start cold) and the limits.
Every container serves one test and is removed with it, exactly like a cold one; the pool then
starts a replacement. `warm_pool` containers of a kind wait; after a burst of tests of the kind
(several starting within BURST_WINDOW_S), as many as the burst (up to `warm_pool_max`) wait for
the next one, until the burst is `warm_pool_idle_s` old. Waiting containers print nothing, exit by themselves after
`warm_pool_idle_s` (when their server is gone), and are replaced before that while their server
lives. A server sweeps the waiting containers of pools whose server died (their lock file is
free) when its own pool starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import itertools
import json
import logging
import os
import select
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from agenttui.backends.base import InfraError, RunSpec
from agenttui.backends.docker.client import DockerEngine, engine_status
from agenttui.backends.docker.containers import PROJECT_LABEL, container_config
from agenttui.backends.docker.network import SandboxNetwork
from agenttui.backends.docker.staging import (
    HANDED_OVER_MARKER,
    JOB_PIPE,
    Staging,
    container_readable_mode,
    write_private,
)
from agenttui.core.config import Settings

log = logging.getLogger(__name__)

POOL_LABEL = "agenttui.pool"  # the owning pool's id; removed from nothing: a used container keeps it
POOL_HOME_LABEL = "agenttui.pool_home"  # the staging folder of the pool's server
MAX_KINDS = 4  # kinds kept warm at once (least recently used goes)
READY_TIMEOUT_S = 20.0  # a started container reaches its pipe well within this
EXPIRY_MARGIN_S = 5.0  # replaced this long before the runner would give up by itself
BURST_WINDOW_S = 10.0  # tests of a kind starting within this long count as one burst
FILL_AT_ONCE = 4  # waiting containers started together when refilling after a burst
JOB_SEND_TIMEOUT_S = 10.0  # a waiting runner reads its job at once; one that does not is not used


@dataclass
class _Waiting:
    container_id: str
    name: str
    folder: Path
    started: float = field(default_factory=time.monotonic)
    expiry: asyncio.TimerHandle | None = None


class WarmPool:
    """The containers waiting for a test, per kind, of one server."""

    def __init__(self, engine: DockerEngine, settings: Settings, staging: Staging, network: SandboxNetwork):
        self.engine = engine
        self.settings = settings
        self.staging = staging
        self.network = network
        self.size = self.settings.warm_pool
        self.max_size = max(self.size, min(self.settings.warm_pool_max, self.settings.max_concurrent))
        self.idle_s = self.settings.warm_pool_idle_s
        self.owner = uuid.uuid4().hex[:12]
        self.home = self.settings.staging_dir
        self._ready: dict[str, list[_Waiting]] = {}
        self._recipes: dict[str, tuple[RunSpec, str]] = {}  # kind -> a spec and image that make it
        self._filling: dict[str, asyncio.Task[None]] = {}
        self._numbers = itertools.count(1)
        self._notes: dict[str, list[str]] = {}
        self.cold_starts = 0  # tests being started without a waiting container (backend.py counts)
        self._starts: dict[str, list[float]] = {}  # kind -> recent start times (BURST_WINDOW_S)
        self._peaks: dict[str, tuple[int, float]] = {}  # kind -> (biggest recent burst, when)
        self._lock_fd: int | None = None
        self._closed = False

    # ------------------------------------------------------------------ kinds
    def kind(self, spec: RunSpec, image: str) -> str | None:
        """What a waiting container must match to serve `spec`; None: never pooled."""
        if self.size <= 0 or self._closed or spec.request.dockerfile.strip():
            return None
        if self.network.plan(spec).tunnels:  # provider-only: a sidecar of its own
            return None
        limits = spec.request.limits
        network = self.network.agent_network(spec, None)
        return json.dumps([image, network, limits.memory_mb, limits.cpus, limits.pids], sort_keys=True)

    # ------------------------------------------------------------------ serving a test
    async def take(self, spec: RunSpec, image: str) -> str | None:
        """Give `spec` a waiting container of its kind and start its agent; returns the
        container id, or None when there is none (the caller starts one cold)."""
        kind = self.kind(spec, image)
        if kind is None:
            return None
        await self.start_once()
        self._recipes.pop(kind, None)
        self._recipes[kind] = (spec, image)
        self._recipes = dict(list(self._recipes.items())[-MAX_KINDS:])  # most recent kinds
        self._note_demand(kind)
        waiting = self._ready.get(kind, [])
        container_id = None
        while waiting and container_id is None:
            candidate = waiting.pop(0)
            if time.monotonic() - candidate.started > self.idle_s - EXPIRY_MARGIN_S:
                await self._discard(candidate)
                continue
            container_id = await self._hand_over(candidate, spec, kind)
        self._fill(kind)
        return container_id

    async def _hand_over(self, waiting: _Waiting, spec: RunSpec, kind: str) -> str | None:
        if waiting.expiry is not None:
            waiting.expiry.cancel()
        try:
            await self.engine.rename(waiting.container_id, spec.name, f"rename container {waiting.name}")
        except InfraError as exc:
            log.info("warm container %s not used for %s: %s", waiting.name, spec.name, exc)
            if engine_status(exc) == 409:  # this attempt has a container already: the cold path adopts it
                self._ready.setdefault(kind, []).insert(0, waiting)
                self._keep_until_expiry(waiting, kind)
            else:  # gone
                await self._discard(waiting)
            return None
        try:
            await asyncio.to_thread(self._write_job, waiting, spec)
        except OSError as exc:
            # The runner is not waiting (it died or gave up): nothing ran; start cold.
            log.info("warm container %s did not take %s: %s", waiting.name, spec.name, exc)
            await self._discard(waiting, folder=self.staging.path(spec.name))
            return None
        self._notes[spec.name] = [f"container started ahead of the test (warm pool, waited {time.monotonic() - waiting.started:.0f} s)"]
        return waiting.container_id

    def handed_over_at(self, name: str) -> float | None:
        """When a container started ahead got its test (its marker's time; it outlives a
        restart of the server), None for a container started cold."""
        try:
            return (self.staging.path(name) / HANDED_OVER_MARKER).stat().st_mtime
        except OSError:
            return None

    def take_notes(self, name: str) -> list[str]:
        return self._notes.pop(name, [])

    def _write_job(self, waiting: _Waiting, spec: RunSpec) -> None:
        folder = self.staging.path(spec.name)
        if folder.exists():  # left by an earlier try of this attempt
            shutil.rmtree(folder, ignore_errors=True)
        waiting.folder.rename(folder)  # the container's mount follows the directory
        self.staging.write_agent_files(folder, spec)
        env = dict(spec.env)
        env.setdefault("AGENTTUI_QUERY", spec.request.query)
        write_private(folder / HANDED_OVER_MARKER, b"")
        _send_job(folder / JOB_PIPE, json.dumps({"env": env}).encode())

    # ------------------------------------------------------------------ keeping it warm
    def _note_demand(self, kind: str) -> None:
        """Count a test of `kind` starting; remember the biggest burst (tests of the kind
        starting within BURST_WINDOW_S) until it is warm_pool_idle_s old."""
        now = time.monotonic()
        starts = self._starts.setdefault(kind, [])
        starts[:] = [t for t in starts if now - t < BURST_WINDOW_S] + [now]
        burst, seen = self._peaks.get(kind, (0, 0.0))
        if len(starts) >= burst or now - seen > self.idle_s:
            self._peaks[kind] = (len(starts), now)

    def target(self, kind: str) -> int:
        """How many containers of `kind` to keep waiting: `warm_pool`, or after a burst of
        tests of the kind, as many as the burst (up to `warm_pool_max`) until it is old."""
        burst, seen = self._peaks.get(kind, (0, 0.0))
        if time.monotonic() - seen > self.idle_s:
            burst = 0
        return max(self.size, min(self.max_size, burst))

    def _fill(self, kind: str) -> None:
        if self._closed or kind in self._filling or len(self._ready.get(kind, [])) >= self.target(kind):
            return
        task = asyncio.get_running_loop().create_task(self._fill_kind(kind), name="agenttui-warm-pool")
        self._filling[kind] = task
        task.add_done_callback(lambda _t: self._filling.pop(kind, None))

    async def _fill_kind(self, kind: str) -> None:
        while not self._closed and kind in self._recipes:
            missing = self.target(kind) - len(self._ready.get(kind, []))
            if missing <= 0:
                return
            # Tests starting cold come first: a burst of them is slowed by every extra start
            # (the pause lets the rest of a burst claimed together reach their start).
            await asyncio.sleep(0.2)
            while self.cold_starts > 0 and not self._closed:
                await asyncio.sleep(0.05)
            if self._closed:
                return
            spec, image = self._recipes[kind]
            started = await asyncio.gather(
                *(self._start_waiting(spec, image) for _ in range(min(missing, FILL_AT_ONCE))),
                return_exceptions=True,
            )
            for waiting in started:
                if isinstance(waiting, BaseException):  # an optimisation: cold starts still work
                    log.warning("warm pool: could not start a waiting container: %s", waiting)
                elif self._closed:
                    await self._discard(waiting)
                else:
                    self._ready.setdefault(kind, []).append(waiting)
                    self._keep_until_expiry(waiting, kind)
            if any(isinstance(w, BaseException) for w in started):
                return

    async def settled(self) -> list[str]:
        """Wait for the containers being started ahead; returns the ids of those waiting."""
        await asyncio.gather(*self._filling.values(), return_exceptions=True)
        return [w.container_id for queue in self._ready.values() for w in queue]

    def _keep_until_expiry(self, waiting: _Waiting, kind: str) -> None:
        left = self.idle_s - EXPIRY_MARGIN_S - (time.monotonic() - waiting.started)
        waiting.expiry = asyncio.get_running_loop().call_later(max(0.0, left), self._expire, waiting, kind)

    def _expire(self, waiting: _Waiting, kind: str) -> None:
        queue = self._ready.get(kind, [])
        if waiting in queue:  # not taken meanwhile: replace it (if the kind's demand still asks)
            queue.remove(waiting)
            asyncio.get_running_loop().create_task(self._discard(waiting))
            self._fill(kind)

    def _prefix(self, spec: RunSpec) -> str:
        return f"agenttui-{spec.store_id}-pool-{self.owner}-"

    async def _start_waiting(self, spec: RunSpec, image: str) -> _Waiting:
        name = f"{self._prefix(spec)}{next(self._numbers)}"
        folder = self.staging.path(name)
        await asyncio.to_thread(self._prepare_folder, folder)
        network = self.network.agent_network(spec, None)
        config = container_config(self.settings, spec, image, folder, network, waiting_labels=self._labels(spec))
        try:
            waiting = _Waiting(await self.engine.create(name, config, f"create container {name}"), name, folder)
            self.staging.record_container(folder, waiting.container_id)
            await self.engine.start(waiting.container_id, f"start container {name}")
            await self._until_listening(waiting)
        except BaseException:
            with contextlib.suppress(Exception):
                await asyncio.shield(self.engine.delete(name))
            await asyncio.to_thread(shutil.rmtree, folder, True)
            raise
        return waiting

    def _prepare_folder(self, folder: Path) -> None:
        self.staging.prepare_folder(folder)
        pipe = folder / JOB_PIPE
        os.mkfifo(pipe, 0o600)
        # The runner reads its job as the container's user; only the server writes it.
        os.chmod(pipe, container_readable_mode(pipe))

    async def _until_listening(self, waiting: _Waiting) -> None:
        """Ready once the runner holds the pipe open (opening it for writing then works;
        closing it again without a byte tells the runner to keep waiting)."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            try:
                os.close(os.open(waiting.folder / JOB_PIPE, os.O_WRONLY | os.O_NONBLOCK | os.O_NOFOLLOW))
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise InfraError(f"{waiting.name} did not start waiting for a test within {READY_TIMEOUT_S:.0f} s")
                await asyncio.sleep(0.01)

    def _labels(self, spec: RunSpec) -> dict[str, str]:
        return {
            **self.settings.extra_labels,
            **spec.labels,
            PROJECT_LABEL: "1",
            "agenttui.store": spec.store_id,
            POOL_LABEL: self.owner,
            POOL_HOME_LABEL: str(self.home),
        }

    async def _discard(self, waiting: _Waiting, folder: Path | None = None) -> None:
        with contextlib.suppress(Exception):
            await self.engine.delete(waiting.container_id)
        for path in {waiting.folder, folder or waiting.folder}:
            await asyncio.to_thread(shutil.rmtree, path, True)

    # ------------------------------------------------------------------ life cycle
    async def start_once(self) -> None:
        """Hold this pool's lock file, and sweep the waiting containers of dead pools."""
        if self._lock_fd is not None:
            return
        self.staging.ensure_root()
        self._lock_fd = os.open(self._lock_path(self.owner), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        with contextlib.suppress(Exception):
            await self._sweep()

    def _lock_path(self, owner: str) -> Path:
        return self.home / f"pool-{owner}.lock"

    async def _sweep(self) -> None:
        containers = await self.engine.list_containers([POOL_LABEL, f"{POOL_HOME_LABEL}={self.home}"])
        dead: set[str] = set()
        for info in containers:
            owner = (info.get("Labels") or {}).get(POOL_LABEL, "")
            names = [n.lstrip("/") for n in info.get("Names") or []]
            # Only containers still waiting: a renamed one belongs to a test (adoption's).
            if owner == self.owner or not any("-pool-" in n for n in names) or not self._is_dead(owner):
                continue
            dead.add(owner)
            log.info("warm pool: removing %s, left by a server that is gone", names[0] if names else info["Id"])
            with contextlib.suppress(Exception):
                await self.engine.delete(info["Id"])
            for n in names:
                await asyncio.to_thread(shutil.rmtree, self.staging.path(n), True)
        for owner in dead:
            with contextlib.suppress(OSError):
                self._lock_path(owner).unlink()

    def _is_dead(self, owner: str) -> bool:
        try:
            fd = os.open(self._lock_path(owner), os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            return True
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False
        finally:
            os.close(fd)

    async def close(self) -> None:
        self._closed = True
        filling = list(self._filling.values())
        if filling:
            # Let containers being created finish and be removed: cancelled mid-request, the
            # engine could still create one after our delete, and it would outlive us.
            _done, stuck = await asyncio.wait(filling, timeout=READY_TIMEOUT_S + 10)
            for task in stuck:
                task.cancel()
        waiting = [w for queue in self._ready.values() for w in queue]
        self._ready.clear()
        for w in waiting:
            if w.expiry is not None:
                w.expiry.cancel()
        await asyncio.gather(*(self._discard(w) for w in waiting), return_exceptions=True)
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                self._lock_path(self.owner).unlink()
            os.close(self._lock_fd)
            self._lock_fd = None


def _send_job(pipe: Path, job: bytes) -> None:
    """Write the job into the pipe a waiting runner holds open; it reads to the end of it. An
    OSError when the runner is not waiting, stopped reading, or was gone before the end."""
    # O_NONBLOCK: opening fails at once (ENXIO) unless the runner has the pipe open.
    fd = os.open(pipe, os.O_WRONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        deadline = time.monotonic() + JOB_SEND_TIMEOUT_S
        view = memoryview(job)
        while view:
            try:
                view = view[os.write(fd, view):]
            except BlockingIOError:  # the pipe's buffer is full: wait for the runner to read
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([], [fd], [], left)[1]:
                    raise TimeoutError(f"the runner did not read its job within {JOB_SEND_TIMEOUT_S:.0f} s") from None
    finally:
        os.close(fd)
