"""Staging folders: the bundle (runner, agent, requirements, CA bundle) written on the host
and bind-mounted read-only at /agenttui in a container, one folder per container name.
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

from agenttui.backends.base import InfraError, RunSpec
from agenttui.core.config import Settings
from agenttui.harness import RUNNER_FILENAME, runner_source

MOUNT_POINT = "/agenttui"  # where the staged bundle appears, read-only, in every container
AGENT_FILENAME = "agent.py"
REQUIREMENTS_FILENAME = "requirements.txt"
CA_FILENAME = "agenttui-ca.pem"
CONTAINER_ID_MARKER = ".container-id"  # lets remove() find a staging dir by container id
JOB_SIGNAL = "job.signal"  # the named pipe a waiting runner (warm pool) reads one byte from
JOB_FILE = "job.json"  # the test's environment, written before the signal


def read_ca_bundle(settings: Settings) -> bytes | None:
    """The extra CA bundle every container and build trusts, if the settings name one."""
    path = settings.extra_ca_bundle
    if path is None:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise InfraError(
            f"cannot read the CA bundle {path} (setting extra_ca_bundle / "
            f"AGENTTUI_EXTRA_CA_BUNDLE): {exc}"
        ) from exc


def _write_readable(folder: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        path = folder / name
        path.write_bytes(data)
        path.chmod(0o644)


class Staging:
    """The staging folders under the `staging_dir` setting."""

    def __init__(self, settings: Settings):
        self.settings = settings

    def path(self, name: str) -> Path:
        return self.settings.staging_dir / name

    def stage(self, spec: RunSpec) -> Path:
        """Write the bundle that is bind-mounted read-only at /agenttui."""
        staging = self.path(spec.name)
        self.prepare_folder(staging)
        self.write_agent_files(staging, spec)
        return staging

    def prepare_folder(self, folder: Path) -> None:
        """The bundle's folder with what every container gets: the runner, the CA bundle."""
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o755)  # readable by the unprivileged user inside the container
        files = {RUNNER_FILENAME: runner_source().encode()}
        ca_bundle = read_ca_bundle(self.settings)
        if ca_bundle:
            files[CA_FILENAME] = ca_bundle
        _write_readable(folder, files)

    @staticmethod
    def write_agent_files(folder: Path, spec: RunSpec) -> None:
        _write_readable(folder, {
            AGENT_FILENAME: spec.request.agent_code.encode(),
            REQUIREMENTS_FILENAME: spec.request.requirements.encode(),
        })

    @staticmethod
    def record_container(folder: Path, container_id: str) -> None:
        """Note which container mounts the folder (found again by `remove` once it is gone)."""
        (folder / CONTAINER_ID_MARKER).write_text(container_id)

    def remove(self, handle: str, name: str | None) -> None:
        """Remove the folder of container `name`, or when its name is no longer known, the
        folder that recorded container `handle`."""
        if name:
            shutil.rmtree(self.path(name), ignore_errors=True)
            return
        # The container is gone: find its staging dir by the id recorded at start.
        root = self.settings.staging_dir
        for marker in root.glob(f"*/{CONTAINER_ID_MARKER}") if root.is_dir() else ():
            with contextlib.suppress(OSError):
                if marker.read_text().strip() == handle:
                    shutil.rmtree(marker.parent, ignore_errors=True)
