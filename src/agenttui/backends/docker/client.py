"""The few Docker engine calls the backend makes, on aiodocker (one client, created lazily).

Every engine/connection problem surfaces as InfraError naming what was tried (retried by the
orchestrator); `engine_status` and `engine_message` read the engine's answer behind one.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import tarfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiodocker
import aiohttp
from aiodocker.exceptions import DockerError, DockerStreamError

from agenttui.core.errors import BuildError, InfraError

CHECK_TIMEOUT_S = 10.0
API_TIMEOUT_S = 60.0  # any single short engine call
HOWTO_START = (
    "Start it (e.g. `sudo systemctl start docker`, or scripts/dev-docker.sh on a dev box) "
    "or set DOCKER_HOST."
)


def engine_status(exc: InfraError) -> int | None:
    """The engine's HTTP status behind an InfraError (404: no such thing), if any."""
    cause = exc.__cause__
    return cause.status if isinstance(cause, DockerError) else None


def engine_message(exc: InfraError) -> str:
    """The engine's own message behind an InfraError ("" when it did not answer)."""
    cause = exc.__cause__
    return cause.message if isinstance(cause, DockerError) else ""


def _engine_message(answer: bytes) -> str:
    """The message of an engine's error answer (JSON with a message, or plain text)."""
    try:
        return str(json.loads(answer)["message"])
    except (ValueError, KeyError, TypeError):
        return answer.decode("utf-8", "replace").strip()


class BuildStepFailed(Exception):
    """The engine reports that the build itself failed (a step of the Dockerfile)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class DockerEngine:
    """One Docker engine, reached through DOCKER_HOST or the default socket."""

    def __init__(self) -> None:
        self._docker: aiodocker.Docker | None = None
        self._streams: aiohttp.ClientSession | None = None  # log streams, over HTTP/1.0 (open_logs)
        self.where = os.environ.get("DOCKER_HOST") or "the default Docker socket"

    async def _client(self) -> aiodocker.Docker:
        # Created lazily: aiohttp wants a running event loop.
        if self._docker is None:
            # DOCKER_HOST wins over a docker CLI context, as with the docker CLI itself.
            url = os.environ.get("DOCKER_HOST") or None
            try:
                self._docker = aiodocker.Docker(
                    url=url, timeout=aiohttp.ClientTimeout(sock_connect=CHECK_TIMEOUT_S)
                )
            except (ValueError, OSError, DockerError) as exc:
                raise self.unreachable(str(exc)) from exc
            self.where = getattr(self._docker, "_connection_info", None) or url or self.where
        return self._docker

    def unreachable(self, why: str) -> InfraError:
        return InfraError(f"Docker engine is not reachable at {self.where}: {why}. {HOWTO_START}")

    @contextlib.asynccontextmanager
    async def errors(self, action: str) -> AsyncIterator[None]:
        """Turn every engine/connection failure into an InfraError naming what was tried."""
        try:
            yield
        except (InfraError, BuildError):
            raise
        except DockerError as exc:
            if exc.status == 900:  # aiodocker's code for "could not connect"
                raise self.unreachable(exc.message) from exc
            raise InfraError(
                f"Docker engine failed to {action}: {exc.message} (HTTP {exc.status})"
            ) from exc
        except TimeoutError as exc:
            raise InfraError(
                f"Docker engine at {self.where} did not answer in time to {action}"
            ) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise self.unreachable(f"{type(exc).__name__}: {exc}") from exc

    async def check(self) -> None:
        docker = await self._client()
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_S):
                await docker._query_json("version", versioned_api=False)
        except DockerError as exc:
            raise self.unreachable(exc.message) from exc
        except TimeoutError as exc:
            raise self.unreachable(f"no answer within {CHECK_TIMEOUT_S:.0f} s") from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise self.unreachable(f"{type(exc).__name__}: {exc}") from exc

    async def close(self) -> None:
        if self._streams is not None:
            streams, self._streams = self._streams, None
            with contextlib.suppress(Exception):
                await streams.close()
        if self._docker is not None:
            docker, self._docker = self._docker, None
            with contextlib.suppress(Exception):
                await docker.close()

    # -- short calls ----------------------------------------------------------------------

    async def api(self, action: str, path: str, method: str = "GET", **kwargs: Any) -> Any:
        """A short JSON API call with a timeout."""
        docker = await self._client()
        async with self.errors(action):
            async with asyncio.timeout(API_TIMEOUT_S):
                return await docker._query_json(path, method, **kwargs)

    async def _call(self, action: str, path: str, method: str = "POST", **kwargs: Any) -> None:
        """A short API call whose answer is only its status."""
        docker = await self._client()
        async with self.errors(action):
            async with asyncio.timeout(API_TIMEOUT_S):
                async with docker._query(path, method, **kwargs):
                    pass

    async def inspect(self, handle: str) -> dict[str, Any] | None:
        """The container's inspect record; None when there is no such container."""
        try:
            return await self.api("inspect the container", f"containers/{handle}/json")
        except InfraError as exc:
            if engine_status(exc) == 404:
                return None
            raise

    async def is_running(self, handle: str) -> bool:
        info = await self.inspect(handle)
        return bool(info and info.get("State", {}).get("Running"))

    async def image_id(self, image: str) -> str | None:
        try:
            info = await self.api("inspect an image", f"images/{image}/json")
        except InfraError as exc:
            if engine_status(exc) == 404:
                return None
            raise
        return info["Id"]

    async def create(self, name: str, config: dict[str, Any], action: str) -> str:
        """Create a container named `name`; returns its id (InfraError 409: the name is taken)."""
        created = await self.api(action, "containers/create", "POST", data=config, params={"name": name})
        return created["Id"]

    async def start(self, container: str, action: str) -> None:
        await self._call(action, f"containers/{container}/start")

    async def rename(self, container: str, name: str, action: str) -> None:
        await self._call(action, f"containers/{container}/rename", params={"name": name})

    async def kill(self, handle: str, signal: str) -> bool:
        """Send a signal; False when it is not running (or gone) any more."""
        try:
            await self._call("signal the container", f"containers/{handle}/kill", params={"signal": signal})
        except InfraError as exc:
            if engine_status(exc) in (404, 409):
                return False
            raise
        return True

    async def delete(self, handle: str) -> None:
        """Remove the container and its volumes, whatever its state; gone already is fine."""
        try:
            await self._call(
                "remove the container", f"containers/{handle}", "DELETE", params={"force": "1", "v": "1"}
            )
        except InfraError as exc:
            if engine_status(exc) == 404 or "already in progress" in engine_message(exc):
                return
            raise

    async def read_file(self, container: str, path: str, limit: int, action: str) -> bytes | None:
        """A small file of a container, started or not (its image's, when nothing changed it);
        None when it has no such regular file. InfraError when it is over `limit` bytes."""
        docker = await self._client()
        try:
            async with self.errors(action):
                async with asyncio.timeout(API_TIMEOUT_S):
                    async with docker._query(f"containers/{container}/archive", params={"path": path}) as response:
                        archive = b""
                        # Enough for the tar header and `limit` bytes: the header says the size.
                        while len(archive) <= limit + 1024 and (chunk := await response.content.read(1 << 16)):
                            archive += chunk
        except InfraError as exc:
            if engine_status(exc) == 404:
                return None
            raise
        try:
            with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
                member = tar.next()
                if member is None or not member.isfile():
                    return None
                if member.size > limit:
                    raise InfraError(f"{path} in container {container[:12]} is over {limit} bytes")
                extracted = tar.extractfile(member)
                return extracted.read() if extracted is not None else None
        except tarfile.TarError as exc:
            raise InfraError(f"Docker engine failed to {action}: unreadable archive of {path} ({exc})") from exc

    async def list_containers(self, labels: list[str]) -> list[dict[str, Any]]:
        """All containers (running or not) carrying these labels (`key` or `key=value`)."""
        filters = json.dumps({"label": labels})
        return await self.api("list containers", "containers/json", params={"all": "1", "filters": filters})

    # -- long calls -----------------------------------------------------------------------

    async def wait(self, handle: str) -> None:
        """Until the container stops, however long that takes (gone already is fine)."""
        docker = await self._client()
        try:
            async with self.errors("wait for the container"):
                await docker._query_json(
                    f"containers/{handle}/wait",
                    "POST",
                    timeout=aiohttp.ClientTimeout(
                        total=None, sock_read=None, sock_connect=CHECK_TIMEOUT_S
                    ),
                )
        except InfraError as exc:
            if engine_status(exc) != 404:
                raise

    async def wait_stopped(self, handle: str, timeout_s: float) -> bool:
        """Whether the container stopped (or is gone) within `timeout_s`."""
        docker = await self._client()
        try:
            async with self.errors("wait for the container to stop"):
                async with asyncio.timeout(timeout_s):
                    await docker._query_json(f"containers/{handle}/wait", "POST", timeout=None)
        except InfraError as exc:
            if isinstance(exc.__cause__, TimeoutError):
                return False
            if engine_status(exc) == 404:
                return True
            raise
        return True

    async def oom_event_since(self, container_id: str, since: float, wait_s: float) -> bool:
        """Whether the engine reported an OOM kill of the container since `since` (epoch), waiting
        up to `wait_s` for one still on its way."""
        docker = await self._client()
        filters = json.dumps({"container": [container_id], "event": ["oom"], "type": ["container"]})
        params = {"since": f"{since:.3f}", "until": f"{time.time() + wait_s:.3f}", "filters": filters}
        async with self.errors("read the engine's OOM events"):
            async with asyncio.timeout(API_TIMEOUT_S + wait_s):
                async with docker._query("events", "GET", params=params) as response:
                    return b'"oom"' in await response.read()

    async def open_logs(self, handle: str, params: dict[str, str], action: str) -> aiohttp.ClientResponse | None:
        """The container's multiplexed log stream (the caller reads and closes it); None
        when the container is gone. Asked over HTTP/1.0, so the engine sends the stream as it
        is: over HTTP/1.1 it sends each log line as a chunk of its own, and taking a flood
        apart chunk by chunk costs the client about twice the CPU of reading its bytes."""
        docker = await self._client()
        if self._streams is None:
            self._streams = aiohttp.ClientSession(
                connector=docker.connector, connector_owner=False, version=aiohttp.HttpVersion10
            )
        try:
            async with self.errors(action):
                async with asyncio.timeout(API_TIMEOUT_S):
                    await docker._check_version()
                    response = await self._streams.get(
                        docker._canonicalize_url(f"containers/{handle}/logs"),
                        params=params,
                        timeout=aiohttp.ClientTimeout(total=None, sock_read=None, sock_connect=CHECK_TIMEOUT_S),
                    )
                    if response.status >= 400:
                        answer = await response.read()
                        response.close()
                        raise DockerError(response.status, _engine_message(answer))
                    return response
        except InfraError as exc:
            if engine_status(exc) == 404:
                return None
            raise

    async def build(
        self,
        tag: str,
        context: bytes,
        labels: dict[str, str],
        timeout_s: float,
        on_output: Callable[[str], Awaitable[None]],
    ) -> None:
        """Build `tag` from a gzipped tar context, passing on the build's output as it comes.
        Raises BuildStepFailed when a step fails, InfraError when the engine does."""
        docker = await self._client()
        async with self.errors(f"build image {tag}"):
            async with asyncio.timeout(timeout_s):
                stream = docker.images.build(
                    fileobj=io.BytesIO(context),
                    encoding="gzip",
                    tag=tag,
                    rm=True,
                    forcerm=True,  # no intermediate containers left behind on failure
                    pull=False,
                    labels=labels,
                    stream=True,
                )
                try:
                    async for chunk in stream:
                        if chunk.get("stream"):
                            await on_output(chunk["stream"])
                        elif chunk.get("status"):  # e.g. pulling a FROM image
                            await on_output(f"{chunk['status']} {chunk.get('progress', '')}\n")
                except DockerStreamError as exc:
                    raise BuildStepFailed(exc.message) from exc
