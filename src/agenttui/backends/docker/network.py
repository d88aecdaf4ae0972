"""The Docker backend's sandbox networking: egress policy, the net sidecar and its tunnels,
and the preflight from inside the sandbox (agenttui.sandbox.egress explains the design).

Per test with tunnels: a folder <runtime dir>/net/<container name>/ holds the sidecar script,
the plan and one Unix socket per endpoint (served by agenttui.sandbox.forwarder in this process); the
sidecar `<container name>-net` runs with network mode none (provider-only) or bridge (full),
owns the sandbox's network namespace and pins the endpoint names in its /etc/hosts; the agent's
container joins it with network mode container:<sidecar>.

With the setting tls_interception on, the forwarder reads inside https tunnels
(agenttui.sandbox.interception): the server's CA lives in <data dir>/tls-ca (key 0600, never
mounted anywhere), and a test with an https endpoint is staged a bundle of the host's CAs plus that
CA (`tls_bundle`), which its container alone trusts (containers.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
import uuid
from pathlib import Path
from typing import Any

import aiohttp

from agenttui.backends.base import InfraError, RunSpec
from agenttui.backends.docker.client import DockerEngine
from agenttui.backends.docker.containers import PROJECT_LABEL
from agenttui.backends.docker.host_trust import TrustedCAs
from agenttui.backends.docker.logstream import split_frames
from agenttui.core.config import Settings, runtime_dir
from agenttui.core.domain import Egress, ProviderConfig, TestRequest
from agenttui.core.errors import ConfigurationError
from agenttui.core.paths import data_dir
from agenttui.sandbox.egress import NetworkPlan, plan_network
from agenttui.sandbox.forwarder import TunnelHost, sidecar_user
from agenttui.sandbox.interception import CertificateAuthority, InterceptionError, Interceptor
from agenttui.sandbox.preflight import Check, endpoints_down, evaluate, failure_of, log_note

log = logging.getLogger(__name__)

NET_MOUNT = "/agenttui-net"
PLAN_FILE = "plan.json"
SCRIPT_FILE = "sandbox_net.py"
MARKER = ".container-id"
SIDECAR_SUFFIX = "-net"
ROLE_LABEL = "agenttui.role"
NET_FOR_LABEL = "agenttui.net_for"
SIDECAR_MEMORY = 64 * 1024 * 1024
SIDECAR_PIDS = 128
CA_FOLDER = "tls-ca"  # in the data dir (the state the store lives in): the TLS interception CA


def interception_folder() -> Path:
    return data_dir() / CA_FOLDER


def sandbox_script() -> str:
    return (Path(__file__).resolve().parents[2] / "sandbox" / "sidecar.py").read_text(encoding="utf-8")


def sidecar_name(name: str) -> str:
    return name + SIDECAR_SUFFIX


class SandboxNetwork:
    """The sidecars and tunnels of the tests this process runs."""

    def __init__(self, engine: DockerEngine, settings: Settings, trusted: TrustedCAs | None = None):
        self.engine = engine
        self.settings = settings
        self.trusted = trusted or TrustedCAs(settings)
        self._interceptor: Interceptor | None = None
        self.tunnels: dict[str, TunnelHost] = {}  # container name → its tunnels' host side
        self.notes: dict[str, list[str]] = {}  # container name → preflight notes for the test log
        self.down: dict[str, list[str]] = {}  # container name → model endpoints that did not answer

    # ------------------------------------------------------------------ planning
    def plan(self, spec: RunSpec) -> NetworkPlan:
        if spec.network is not None:
            return spec.network
        egress = spec.request.egress or Egress.parse(self.settings.default_egress)
        return plan_network(egress, ())[0]

    @property
    def interceptor(self) -> Interceptor | None:
        """What reads inside https tunnels; None when the setting tls_interception is off."""
        if not self.settings.tls_interception:
            return None
        if self._interceptor is None:
            self._interceptor = Interceptor(CertificateAuthority(interception_folder()), self.trusted.bundle())
        return self._interceptor

    def tls_bundle(self, spec: RunSpec) -> bytes | None:
        """The CAs `spec`'s container must trust when one of its endpoints is intercepted (https),
        else None. Makes the server's CA on first use (blocking file I/O: call it in a thread)."""
        interceptor = self.interceptor
        if interceptor is None or not any(t.scheme == "https" for t in self.plan(spec).tunnels):
            return None
        try:
            return interceptor.bundle()
        except InterceptionError as exc:
            raise ConfigurationError(str(exc)) from exc

    @staticmethod
    def folder_root() -> Path:
        return runtime_dir() / "net"

    def folder(self, name: str) -> Path:
        return self.folder_root() / name

    def agent_network(self, spec: RunSpec, sidecar: str | None) -> dict[str, Any]:
        """HostConfig entries of the agent's container."""
        if sidecar is not None:
            return {"NetworkMode": f"container:{sidecar}"}
        plan = self.plan(spec)
        if plan.isolated:
            hosts = [f"{name}:{address}" for name, address in plan.pins] or ["host.docker.internal:127.0.0.1"]
            return {"NetworkMode": "none", "ExtraHosts": hosts}
        return {"NetworkMode": "default", "ExtraHosts": ["host.docker.internal:host-gateway"]}

    # ------------------------------------------------------------------ the sidecar
    async def prepare(self, spec: RunSpec) -> str | None:
        """Start the test's sidecar and its tunnels, and run the preflight; returns the sidecar's
        id (None when the test needs no tunnel). Raises PreflightError/InfraError."""
        plan = self.plan(spec)
        if not plan.tunnels:
            return None
        name = spec.name
        existing = await self.engine.inspect(sidecar_name(name))
        if existing is not None:
            if await self.engine.inspect(name) is not None:
                # The agent's container exists already (a crash between create and record):
                # keep its sidecar, restart what is missing.
                await self._serve(name, Path(_mount_source(existing)), plan)
                if not existing["State"].get("Running"):
                    await self._start(existing["Id"], name)
                return existing["Id"]
            await self.engine.delete(existing["Id"])
        folder = self.folder(name)
        await asyncio.to_thread(self._write_folder, folder, plan)
        host = await self._serve(name, folder, plan)
        try:
            sidecar = await self._create(spec, plan, folder)
            await self._start(sidecar, name)
            reports = await self._reports(sidecar, plan)
        except BaseException:
            await asyncio.shield(self.discard(name))
            raise
        checks = evaluate(spec.request.provider, plan, reports, host.last_error)
        failure = failure_of(checks) if plan.preflight else None
        strict = self.settings.strict_preflight if spec.request.strict_preflight is None else spec.request.strict_preflight
        if failure is not None and strict:
            await asyncio.shield(self.discard(name))
            raise failure
        self.notes[name] = [log_note(check) for check in checks]
        self.down[name] = endpoints_down(checks)
        return sidecar

    def take_notes(self, name: str) -> list[str]:
        return self.notes.pop(name, [])

    def take_endpoints_down(self, name: str) -> list[str]:
        return self.down.pop(name, [])

    def _write_folder(self, folder: Path, plan: NetworkPlan) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o755)
        (folder / SCRIPT_FILE).write_text(sandbox_script(), encoding="utf-8")
        (folder / PLAN_FILE).write_text(plan.to_json(timeout=self.settings.preflight_timeout_s), encoding="utf-8")
        for child in (SCRIPT_FILE, PLAN_FILE):
            (folder / child).chmod(0o644)

    async def _serve(self, name: str, folder: Path, plan: NetworkPlan) -> TunnelHost:
        host = self.tunnels.get(name)
        if host is not None:
            return host
        host = TunnelHost(folder, plan, name, self.interceptor)
        try:
            await host.start()
        except OSError as exc:
            await host.close()
            raise InfraError(f"cannot open the model tunnel in {folder}: {exc}") from exc
        self.tunnels[name] = host
        return host

    async def _create(self, spec: RunSpec, plan: NetworkPlan, folder: Path) -> str:
        labels = {
            **self.settings.extra_labels,
            **spec.labels,
            PROJECT_LABEL: "1",
            "agenttui.store": spec.store_id,
            ROLE_LABEL: "net",
            NET_FOR_LABEL: spec.name,
        }
        image = self.settings.base_image
        if await self.engine.image_id(image) is None:
            raise InfraError(
                f"the base image {image} (which runs the sandbox's network helper) is not in the Docker "
                "engine; build or pull it, or set AGENTTUI_BASE_IMAGE"
            )
        config = {
            "Image": image,
            "Labels": labels,
            "User": "%d:%d" % sidecar_user(),  # the only user its tunnels' sockets let in
            "Entrypoint": ["python3", f"{NET_MOUNT}/{SCRIPT_FILE}", f"{NET_MOUNT}/{PLAN_FILE}"],
            "Cmd": [],
            "Env": ["PYTHONUNBUFFERED=1", "PYTHONDONTWRITEBYTECODE=1"],
            "WorkingDir": "/",
            "Tty": False,
            "HostConfig": {
                "NetworkMode": "none" if plan.isolated else "default",
                "ExtraHosts": [f"{n}:{a}" for n, a in plan.pins],
                # Tunnels listen on the endpoint's own port (443 for https) as an unprivileged user.
                "Sysctls": {"net.ipv4.ip_unprivileged_port_start": "0"},
                "Mounts": [{"Type": "bind", "Source": str(folder), "Target": NET_MOUNT, "ReadOnly": True}],
                "ReadonlyRootfs": True,
                "CapDrop": ["ALL"],
                "SecurityOpt": ["no-new-privileges:true"],
                "Privileged": False,
                "Init": True,
                "Memory": SIDECAR_MEMORY,
                "MemorySwap": SIDECAR_MEMORY,
                "PidsLimit": SIDECAR_PIDS,
                "NanoCpus": 500_000_000,
                "LogConfig": {"Type": "json-file", "Config": {"max-size": "1m", "max-file": "1"}},
            },
        }
        sidecar = await self.engine.create(
            sidecar_name(spec.name), config, f"create the network sidecar of {spec.name}"
        )
        await asyncio.to_thread((folder / MARKER).write_text, sidecar)
        return sidecar

    async def _start(self, sidecar: str, name: str) -> None:
        await self.engine.start(sidecar, f"start the network sidecar of {name}")

    async def _reports(self, sidecar: str, plan: NetworkPlan) -> dict[str, dict[str, Any]]:
        """Follow the sidecar's output until it has checked every endpoint."""
        limit = self.settings.preflight_timeout_s * (len(plan.tunnels) + 1) + 10
        action = "read the network sidecar's report"
        lines: list[str] = []
        reports = None
        try:
            async with self.engine.errors(action):
                async with asyncio.timeout(limit):
                    params = {"stdout": "1", "stderr": "1", "follow": "1"}
                    response = await self.engine.open_logs(sidecar, params, action)
                    if response is not None:
                        try:
                            reports = await _follow_reports(response, lines)
                        finally:
                            response.close()
        except InfraError as exc:
            if isinstance(exc.__cause__, TimeoutError):
                raise InfraError(f"the sandbox's network helper did not report within {limit:.0f} s") from exc
            raise
        if reports is not None:
            return reports
        tail = " | ".join(lines[-5:]) or "no output"
        raise InfraError(f"the sandbox's network helper stopped before it was ready: {tail}")

    # ------------------------------------------------------------------ life cycle
    async def reattach(self, info: dict[str, Any]) -> None:
        """Adoption: serve the tunnels of a running container this process did not start."""
        mode = (info.get("HostConfig") or {}).get("NetworkMode") or ""
        if not mode.startswith("container:"):
            return
        name = info["Name"].lstrip("/")
        if name in self.tunnels:
            return
        sidecar = await self.engine.inspect(mode.split(":", 1)[1])
        if sidecar is None:
            return
        folder = Path(_mount_source(sidecar))
        try:
            plan = NetworkPlan.from_json((folder / PLAN_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError, KeyError) as exc:
            log.warning("%s: cannot read its network plan in %s: %s", name, folder, exc)
            return
        await self._serve(name, folder, plan)

    def has_network(self, name: str) -> bool:
        """Whether the container may have a sidecar (saves engine calls on every remove)."""
        return name in self.tunnels or self.folder(name).is_dir()

    async def discard(self, name: str) -> None:
        """Remove the sidecar, its tunnels and its folder (never raises)."""
        with contextlib.suppress(Exception):
            await self.engine.delete(sidecar_name(name))
        host = self.tunnels.pop(name, None)
        if host is not None:
            with contextlib.suppress(Exception):
                await host.close()
        self.notes.pop(name, None)
        await asyncio.to_thread(shutil.rmtree, self.folder(name), True)

    def name_of_removed(self, handle: str) -> str | None:
        """The container name of a removed container, from the marker its folder keeps."""
        root = self.folder_root()
        for marker in root.glob(f"*/{MARKER}.agent") if root.is_dir() else ():
            with contextlib.suppress(OSError):
                if marker.read_text().strip() == handle:
                    return marker.parent.name
        return None

    def mark_agent(self, name: str, container_id: str) -> None:
        folder = self.folder(name)
        if folder.is_dir():
            (folder / f"{MARKER}.agent").write_text(container_id)

    async def close(self) -> None:
        hosts, self.tunnels = list(self.tunnels.values()), {}
        for host in hosts:
            with contextlib.suppress(Exception):
                await host.close()

    # ------------------------------------------------------------------ doctor
    async def probe(self, config: ProviderConfig, plan: NetworkPlan) -> list[Check]:
        """The preflight on demand: a throw-away sidecar (no agent) checks the endpoints."""
        request = TestRequest.parse(agent_code="def run(q):\n    return q\n", query="doctor", provider=config)
        spec = RunSpec(test_id=0, attempt=0, store_id=f"doctor{uuid.uuid4().hex[:6]}", request=request, env={},
                       network=plan)
        name = spec.name
        folder = self.folder(name)
        await asyncio.to_thread(self._write_folder, folder, plan)
        try:
            host = await self._serve(name, folder, plan)
            sidecar = await self._create(spec, plan, folder)
            await self._start(sidecar, name)
            reports = await self._reports(sidecar, plan)
            return evaluate(config, plan, reports, host.last_error)
        finally:
            await self.discard(name)


async def probe_from_sandbox(settings: Settings, config: ProviderConfig, plan: NetworkPlan) -> list[Check]:
    """The preflight on demand for `agenttui doctor` (agenttui.sandbox.preflight.NetworkProbe)."""
    engine = DockerEngine()
    network = SandboxNetwork(engine, settings)
    try:
        return await network.probe(config, plan)
    finally:
        await network.close()
        await engine.close()


def _mount_source(info: dict[str, Any]) -> str:
    for mount in info.get("Mounts") or []:
        if mount.get("Destination") == NET_MOUNT:
            return mount["Source"]
    raise InfraError(f"container {info.get('Name')} has no {NET_MOUNT} mount")


async def _follow_reports(response: aiohttp.ClientResponse, lines: list[str]) -> dict[str, dict[str, Any]] | None:
    """The sidecar's probe reports, once it says it is done; None when its output ends
    before (`lines` gets every line it printed)."""
    reports: dict[str, dict[str, Any]] = {}
    buffer = bytearray()
    text = ""
    while True:
        chunk = await response.content.read(65536)
        if not chunk:
            return None
        buffer += chunk
        frames, used = split_frames(buffer)
        del buffer[:used]
        for _stream, payload in frames:
            text += payload.decode("utf-8", "replace")
        *complete, text = text.split("\n")
        for line in complete:
            lines.append(line)
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if "probe" in record:
                reports[record["probe"]] = record
            if record.get("probes_done"):
                return reports
