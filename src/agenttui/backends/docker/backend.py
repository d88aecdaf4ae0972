"""The Docker backend: builds or reuses an image, runs one attempt in a locked-down container,
follows its logs with an exactly resumable cursor, and reads exit status and resource use.

It composes the package's parts: the engine wrapper (client.py), images (images.py), staging
folders (staging.py), the container's configuration (containers.py), the log stream
(logstream.py), resource use (stats.py), sandbox networking (network.py) and the warm pool
(pool.py). Every engine/connection problem surfaces as InfraError (retried by the
orchestrator); a user's broken requirements or Dockerfile surface as BuildError (not retried).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path

from agenttui.backends.base import (
    Backend,
    BuildError,
    BuildLog,
    Capacity,
    ExitInfo,
    HandleState,
    InfraError,
    LogBatch,
    LogLine,
    RunSpec,
    Stats,
)
from agenttui.backends.docker.client import DockerEngine, engine_message, engine_status
from agenttui.backends.docker.containers import (
    PASSWD_LIMIT,
    USER_IMAGE_START_FAILURES,
    container_config,
    exit_info,
    is_ours,
    root_alias,
)
from agenttui.backends.docker.images import Images
from agenttui.backends.docker.logstream import LogDecoder, read_batches
from agenttui.backends.docker.network import SandboxNetwork
from agenttui.backends.docker.pool import WarmPool

MIB = 1024 * 1024
OOM_EVENT_WAIT_S = 0.5  # an OOM event can trail the exit it caused
from agenttui.backends.docker.staging import Staging
from agenttui.backends.docker.stats import container_stats
from agenttui.core.config import Settings

log = logging.getLogger(__name__)

POST_KILL_WAIT_S = 10.0


class DockerBackend(Backend):
    """Backend protocol (agenttui.backends.base.Backend) on a local Docker engine."""

    name = "docker"

    def __init__(self, settings: Settings):
        self.settings = settings
        self.engine = DockerEngine()
        self.images = Images(self.engine, settings)
        self.staging = Staging(settings)
        self._stopped: set[str] = set()  # handles this backend signalled itself
        self._capacity: Capacity | None = None
        # egress policy, net sidecar, tunnels (https read through the interception CA), preflight
        self.net = SandboxNetwork(self.engine, settings, self.staging.trusted)
        # Containers started ahead of their tests (warm_pool).
        self.pool = WarmPool(self.engine, settings, self.staging, self.net)

    async def check(self) -> None:
        await self.engine.check()

    async def capacity(self) -> Capacity | None:
        """What the engine's machine has (read once); None while the engine does not answer."""
        if self._capacity is None:
            try:
                info = await self.engine.api("read the engine's CPUs and memory", "info")
            except InfraError:
                return None
            self._capacity = Capacity(float(info["NCPU"]), int(info["MemTotal"]) // MIB, "the Docker engine's machine")
        return self._capacity

    async def start_up(self) -> None:
        """A server's orchestrator begins: sweep what dead servers' warm pools left."""
        if self.settings.warm_pool > 0:
            await self.pool.start_once()

    async def close(self) -> None:
        await self.pool.close()
        await self.net.close()
        await self.engine.close()

    async def prepare(self, spec: RunSpec, on_log: BuildLog) -> tuple[str, bool]:
        return await self.images.prepare(spec, on_log)

    async def installed_versions(self, image: str) -> dict[str, str]:
        return await self.images.installed(image)

    # -- containers ---------------------------------------------------------------------

    async def start(self, spec: RunSpec, image: str) -> str:
        container_id = await self.pool.take(spec, image)
        if container_id is not None:
            return container_id
        self.pool.cold_starts += 1
        try:
            return await self._start_cold(spec, image)
        finally:
            self.pool.cold_starts -= 1

    async def _start_cold(self, spec: RunSpec, image: str) -> str:
        image_user = await self._image_user(spec, image)
        try:
            staging = await asyncio.to_thread(lambda: self.staging.stage(spec, self.net.tls_bundle(spec)))
        except OSError as exc:
            raise InfraError(
                f"cannot stage the agent bundle in {self.staging.path(spec.name)}: {exc}"
            ) from exc
        try:
            sidecar = await self.net.prepare(spec)  # tunnels + preflight from the sandbox
        except BaseException:
            await asyncio.to_thread(shutil.rmtree, staging, True)
            raise
        config = container_config(
            self.settings, spec, image, staging, self.net.agent_network(spec, sidecar), image_user=image_user
        )
        try:
            container_id = await self.engine.create(spec.name, config, f"create container {spec.name}")
        except InfraError as exc:
            if engine_status(exc) == 409:  # the name is taken
                return await self._adopt_existing(spec)
            # The engine may have created it before the error reached us (a timeout).
            with contextlib.suppress(Exception):
                await self._discard_unstarted(spec)
            await asyncio.to_thread(shutil.rmtree, staging, True)
            await asyncio.shield(self.net.discard(spec.name))
            raise
        try:
            self.staging.record_container(staging, container_id)
            self.net.mark_agent(spec.name, container_id)
            await self._start_container(container_id, spec)
        except BaseException:
            # Never leave a created-but-unstarted container behind (also on cancellation).
            await asyncio.shield(self._discard(container_id, staging))
            await asyncio.shield(self.net.discard(spec.name))
            raise
        return container_id

    def take_notes(self, name: str) -> list[str]:
        """Preflight results of a container just started, and whether it was started ahead
        (warm pool), for the test's log."""
        return self.pool.take_notes(name) + self.net.take_notes(name)

    def take_endpoints_down(self, name: str) -> list[str]:
        return self.net.take_endpoints_down(name)

    async def _image_user(self, spec: RunSpec, image: str) -> str:
        """A custom image's USER ("" for the generated images: they run as nobody)."""
        if not spec.request.dockerfile.strip():
            return ""
        info = await self.engine.api("inspect an image", f"images/{image}/json")
        return (info.get("Config") or {}).get("User") or ""

    async def _refuse_root_alias(self, container_id: str, spec: RunSpec) -> None:
        """A custom image whose USER names uid 0 under another name would run as root."""
        info = await self.engine.inspect(container_id)
        user = ((info or {}).get("Config") or {}).get("User") or ""
        if not user or user.split(":", 1)[0].isdigit():  # nobody, or a uid other than 0
            return
        passwd = await self.engine.read_file(
            container_id, "/etc/passwd", PASSWD_LIMIT, f"read /etc/passwd of {spec.name}"
        )
        if passwd is not None and root_alias(passwd, user):
            name = user.split(":", 1)[0]
            raise BuildError(
                f"your Dockerfile's USER {name} is root (uid 0 in /etc/passwd): agenttui runs no test "
                f"as root. Give {name} another uid, or leave USER out (the test then runs as nobody)"
            )

    async def _start_container(self, container_id: str, spec: RunSpec) -> None:
        if spec.request.dockerfile.strip():
            await self._refuse_root_alias(container_id, spec)
        try:
            await self.engine.start(container_id, f"start container {spec.name}")
        except InfraError as exc:
            message = engine_message(exc)
            lowered = message.lower()
            if spec.request.dockerfile.strip() and any(sign in lowered for sign in USER_IMAGE_START_FAILURES):
                raise BuildError(
                    f"the image built from your Dockerfile cannot start its command: {message}"
                ) from exc
            raise

    async def _discard_unstarted(self, spec: RunSpec) -> None:
        info = await self.engine.inspect(spec.name)
        if info is None or info.get("State", {}).get("Status") != "created":
            return
        if is_ours(info, spec):
            await self.engine.delete(info["Id"])

    async def _discard(self, container_id: str, staging: Path) -> None:
        with contextlib.suppress(Exception):
            await self.engine.delete(container_id)
        await asyncio.to_thread(shutil.rmtree, staging, True)

    async def _adopt_existing(self, spec: RunSpec) -> str:
        """A container with this name exists (we crashed between create and persisting the
        handle): reuse it when it is ours, starting it if it never started."""
        info = await self.engine.inspect(spec.name)
        if info is None:
            raise InfraError(f"container {spec.name} was reported as existing, then vanished")
        if not is_ours(info, spec):
            labels = info.get("Config", {}).get("Labels") or {}
            raise InfraError(
                f"a container named {spec.name} already exists and is not this test's "
                f"(labels {labels}); remove it with `docker rm -f {spec.name}`"
            )
        container_id = info["Id"]
        self.staging.record_container(self.staging.path(spec.name), container_id)
        if info.get("State", {}).get("Status") == "created":
            try:
                await self._start_container(container_id, spec)
            except BaseException:
                await asyncio.shield(self._discard(container_id, self.staging.path(spec.name)))
                raise
        return container_id

    # -- logs ---------------------------------------------------------------------------

    async def logs(self, handle: str, cursor: str | None) -> AsyncIterator[LogBatch]:
        decoder = LogDecoder(self.settings.log_max_line, cursor)
        while True:
            async for batch in read_batches(self.engine, handle, decoder, follow=True):
                yield batch
            if not await self.engine.is_running(handle):
                break
            # Docker ended a follow while the container runs (seen when its log file
            # rotates under a flood): follow again from the cursor.
            log.info("log follow of %s ended while it runs; following again", handle[:12])
            decoder = decoder.continuation()
        # Docker can end a follow before the container's last lines are delivered (a final
        # partial line; or rotation: a follower missed the last line in 4 of 5 floods through
        # 20 MB files), and can stall one after the container's exit: one plain read from the
        # cursor picks up the rest.
        catch_up = decoder.continuation()
        async for batch in read_batches(self.engine, handle, catch_up, follow=False):
            yield batch

    async def last_lines(self, handle: str, count: int) -> list[LogLine]:
        """The last `count` lines of the container's log, read from the end of its files."""
        lines: list[LogLine] = []
        decoder = LogDecoder(self.settings.log_max_line, None)
        async for batch in read_batches(self.engine, handle, decoder, follow=False, tail=count):
            lines += batch.lines
        return lines

    # -- exit, resources, stop, removal -------------------------------------------------

    async def wait(self, handle: str) -> ExitInfo:
        await self.engine.wait(handle)
        info = await self.engine.inspect(handle)
        if info is None:
            return ExitInfo(
                exit_code=None, reason="the container was removed before its exit was read"
            )
        result = exit_info(info["State"])
        handed_over = await asyncio.to_thread(self.pool.handed_over_at, info["Name"].lstrip("/"))
        if handed_over is not None:  # started ahead: the test began when it got its job
            result = dataclasses.replace(result, started_at=handed_over)
        if result.exit_code == 137 and not result.oom_killed and not result.reason and handle not in self._stopped:
            result = await self._missed_oom(info["Id"], result)
        return result

    async def _missed_oom(self, container_id: str, result: ExitInfo) -> ExitInfo:
        """A SIGKILL we did not send. The engine can set the exit before its OOM flag (a known
        containerd race); its event stream still tells an OOM kill. Else say what is known."""
        with contextlib.suppress(InfraError):
            if await self.engine.oom_event_since(container_id, (result.started_at or time.time()) - 1, OOM_EVENT_WAIT_S):
                return dataclasses.replace(result, oom_killed=True)
        return dataclasses.replace(
            result,
            reason="killed by SIGKILL (exit 137) without a stop from agenttui: most "
            "likely the kernel's OOM killer at the memory limit",
        )

    async def stats(self, handle: str) -> Stats | None:
        return await container_stats(self.engine, handle)

    async def stop(self, handle: str, grace_s: float) -> None:
        info = await self.engine.inspect(handle)
        if info is None or not info["State"].get("Running"):
            return
        self._stopped.add(handle)
        if grace_s > 0:
            signal = (info.get("Config") or {}).get("StopSignal") or "SIGTERM"
            if not await self.engine.kill(handle, signal):
                return
            if await self.engine.wait_stopped(handle, grace_s):
                return
        if await self.engine.kill(handle, "SIGKILL"):
            await self.engine.wait_stopped(handle, POST_KILL_WAIT_S)

    async def remove(self, handle: str) -> None:
        info = await self.engine.inspect(handle)
        name = info["Name"].lstrip("/") if info else None
        net_name = name or await asyncio.to_thread(self.net.name_of_removed, handle)
        if net_name and self.net.has_network(net_name):
            # Both removals in flight at once: the engine finishes them even if we stop waiting.
            await asyncio.gather(self.engine.delete(handle), self.net.discard(net_name))
        else:
            await self.engine.delete(handle)
        self._stopped.discard(handle)
        await asyncio.to_thread(self.staging.remove, handle, name)

    async def inspect(self, handle: str) -> HandleState | None:
        info = await self.engine.inspect(handle)
        if info is None:
            return None
        state = info["State"]
        running = bool(state.get("Running") or state.get("Restarting"))
        stopped = state.get("Status") in ("exited", "dead", "removing")
        if running:
            await self.net.reattach(info)  # adoption: serve its tunnels from this process
        return HandleState(running=running, exit=exit_info(state) if stopped else None)
