"""A container's resource use: read from its cgroup files when this host can see them
(instant), else from the engine's stats API (which waits for its next sample, ~1 s).
"""

from __future__ import annotations

from pathlib import Path

from agenttui.backends.base import InfraError, Stats
from agenttui.backends.docker.client import DockerEngine, engine_status


async def container_stats(engine: DockerEngine, handle: str) -> Stats | None:
    """CPU and memory of a running container; None when it is not running."""
    info = await engine.inspect(handle)
    if info is None or not info["State"].get("Running"):
        return None
    local = _host_cgroup_stats(info["State"].get("Pid") or 0, info["Id"])
    if local is not None:
        return local
    try:
        raw = await engine.api(
            "read container stats",
            f"containers/{handle}/stats",
            params={"stream": "0", "one-shot": "1"},
        )
    except InfraError as exc:
        if engine_status(exc) in (404, 409):
            return None
        raise
    memory = raw.get("memory_stats") if isinstance(raw, dict) else None
    if not memory:  # it stopped between the inspect and the reading
        return None
    usage = memory.get("usage")
    details = memory.get("stats") or {}
    # Like `docker stats`: page cache that can be dropped is not counted as use.
    inactive = details.get("total_inactive_file", details.get("inactive_file", 0))
    peak = memory.get("max_usage")  # cgroup v1 only; v2 has no peak in this API
    cpu_ns = ((raw.get("cpu_stats") or {}).get("cpu_usage") or {}).get("total_usage")
    return Stats(
        cpu_s=cpu_ns / 1e9 if cpu_ns is not None else None,
        memory_bytes=usage - inactive if usage is not None else None,
        peak_memory_bytes=peak,
    )


_CGROUP_ROOT = Path("/sys/fs/cgroup")


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _read_keyed(path: Path, key: str) -> int | None:
    """A value from a "key value" file such as memory.stat or cpu.stat."""
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except (OSError, ValueError):
        pass
    return None


def _host_cgroup_stats(pid: int, container_id: str) -> Stats | None:
    """Resource use read from the container's cgroup files, when this host can see them
    (local engine, same pid namespace); None otherwise."""
    if pid <= 0:
        return None
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return None
    groups: dict[str, str] = {}
    for line in lines:
        _number, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            groups[controller] = path
    unified = groups.get("")
    if "memory" in groups:  # cgroup v1
        memory_path = groups["memory"]
        if container_id not in memory_path:  # pid reused by something else
            return None
        memory_dir = _CGROUP_ROOT / "memory" / memory_path.lstrip("/")
        usage = _read_int(memory_dir / "memory.usage_in_bytes")
        if usage is None:
            return None
        inactive = _read_keyed(memory_dir / "memory.stat", "total_inactive_file") or 0
        cpu_ns = None
        cpu_path = groups.get("cpuacct", "").lstrip("/")
        for mount in ("cpuacct", "cpu,cpuacct", "cpuacct,cpu"):
            cpu_ns = _read_int(_CGROUP_ROOT / mount / cpu_path / "cpuacct.usage")
            if cpu_ns is not None:
                break
        return Stats(
            cpu_s=cpu_ns / 1e9 if cpu_ns is not None else None,
            memory_bytes=usage - inactive,
            peak_memory_bytes=_read_int(memory_dir / "memory.max_usage_in_bytes"),
        )
    if unified is not None and (_CGROUP_ROOT / "cgroup.controllers").exists():  # cgroup v2
        if container_id not in unified:
            return None
        group = _CGROUP_ROOT / unified.lstrip("/")
        usage = _read_int(group / "memory.current")
        if usage is None:
            return None
        inactive = _read_keyed(group / "memory.stat", "inactive_file") or 0
        cpu_us = _read_keyed(group / "cpu.stat", "usage_usec")
        return Stats(
            cpu_s=cpu_us / 1e6 if cpu_us is not None else None,
            memory_bytes=usage - inactive,
            peak_memory_bytes=_read_int(group / "memory.peak"),  # kernel 5.19+
        )
    return None
