"""Staging folders: the bundle (runner, agent, requirements, CA bundle) written on the host
and bind-mounted read-only at /agenttui in a container, one folder per container name.

Who may read what: the staging root is the server user's alone (0700), so no other user on the
host reaches anything below it. A container sees only its own folder (Docker bind-mounts it as
root; the host folders above it are never looked up from inside), and its unprivileged user
(uid 65534, "other" to the server's files: a server that is not root cannot chown to it) gets
read access to exactly the bundle it runs: the folder (r-x), the bundle's files and the job
pipe (r). Everything else there is 0600. A test's environment (secrets) never touches disk: a
cold container gets it in its configuration (kept by Docker, root-only), a warm-pool one
through the job pipe (pool.py).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from pathlib import Path

from agenttui.backends.base import RunSpec
from agenttui.backends.docker.host_trust import TrustedCAs
from agenttui.core.config import Settings
from agenttui.harness import harness_files

MOUNT_POINT = "/agenttui"  # where the staged bundle appears, read-only, in every container
AGENT_FILENAME = "agent.py"
REQUIREMENTS_FILENAME = "requirements.txt"
CA_FILENAME = "agenttui-ca.pem"
# The host's CAs plus agenttui's TLS interception CA (a test with an intercepted https endpoint).
TLS_BUNDLE_FILENAME = "agenttui-tls-bundle.pem"
CONTAINER_ID_MARKER = ".container-id"  # lets remove() find a staging dir by container id
JOB_PIPE = "job.pipe"  # the named pipe a waiting runner (warm pool) reads its job from
HANDED_OVER_MARKER = ".handed-over"  # its mtime: when a waiting container got its test
ROOT_MODE = 0o700  # the staging root: the server user's alone
PRIVATE_FILE_MODE = 0o600
CONTAINER_GID = 65534  # the group of the unprivileged user agents run as (containers.NOBODY)


def container_readable_mode(path: Path, directory: bool = False) -> int:
    """The mode that lets the container's user read `path` (and enter it, a folder) and keeps
    everyone else out but the owner. The container's user is "other" to the server's files; the
    group gets the same only when it is the container's own group (else it would be refused)."""
    other = 0o5 if directory else 0o4
    group = other if path.stat().st_gid == CONTAINER_GID else 0
    return (0o700 if directory else 0o600) | group << 3 | other


def write_private(path: Path, data: bytes, for_container: bool = False) -> None:
    """Write a file 0600 from its creation on (never through a link someone planted); one the
    container's user must read gets that read access too."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, PRIVATE_FILE_MODE)
    try:
        os.fchmod(fd, container_readable_mode(path) if for_container else PRIVATE_FILE_MODE)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def _write_readable(folder: Path, files: dict[str, bytes]) -> None:
    """The bundle's files: the container's user reads them (runner, agent, requirements, CA)."""
    for name, data in files.items():
        write_private(folder / name, data, for_container=True)


def ensure_private_dir(path: Path, mode: int = ROOT_MODE) -> None:
    """`path` as a folder of this user's with `mode`; refuses a link or another user's folder."""
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=mode, parents=True)
    info = path.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
        raise PermissionError(f"{path} is not a folder of this user's (uid {os.geteuid()}): remove it")
    if stat.S_IMODE(info.st_mode) != mode:
        path.chmod(mode)


class Staging:
    """The staging folders under the `staging_dir` setting."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.trusted = TrustedCAs(settings)

    def path(self, name: str) -> Path:
        return self.settings.staging_dir / name

    def ensure_root(self) -> Path:
        """The staging root, private to the server's user (0700)."""
        root = self.settings.staging_dir
        ensure_private_dir(root)
        return root

    def stage(self, spec: RunSpec, tls_bundle: bytes | None = None) -> Path:
        """Write the bundle that is bind-mounted read-only at /agenttui; `tls_bundle`: the CAs a
        test whose https endpoints are intercepted trusts (network.py), private to its folder."""
        staging = self.path(spec.name)
        self.prepare_folder(staging)
        self.write_agent_files(staging, spec)
        if tls_bundle is not None:
            _write_readable(staging, {TLS_BUNDLE_FILENAME: tls_bundle})
        return staging

    def prepare_folder(self, folder: Path) -> None:
        """The bundle's folder with what every container gets: the runner (and its grading), the CA bundle."""
        self.ensure_root()
        with contextlib.suppress(FileExistsError):
            folder.mkdir(mode=0o700)
        folder.chmod(container_readable_mode(folder, directory=True))  # the container's user enters it
        files = {name: text.encode() for name, text in harness_files().items()}
        ca_bundle = self.trusted.bundle()
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
        write_private(folder / CONTAINER_ID_MARKER, container_id.encode())

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
