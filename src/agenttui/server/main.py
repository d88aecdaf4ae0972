"""`agenttui server`: one long-running process owning the orchestrator, the store and the backend.

Tests outlive every terminal: clients come and go; the server keeps claiming, timing out and
collecting logs. SIGTERM (or `agenttui server stop`, asked over the socket: POST /v1/shutdown)
stops it gracefully: it stops claiming, leaves running containers alone and exits; the next
server adopts them when their leases expire.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import grp
import logging
import os
import signal
import socket
import time
from pathlib import Path

from aiohttp import web

from agenttui.core.config import Settings
from agenttui.core.paths import UnsafeFolder, data_dir, private_dir, private_file, runtime_dir, trusted_runtime_dir
from agenttui.engine.runtime import Engine
from agenttui.server.api import Api
from agenttui.server.guard import GuardedSockSite, RepeatedErrors, raise_descriptor_limit
from agenttui.engine.store import Owner

log = logging.getLogger("agenttui.server")

IDLE_CHECK_S = 2.0
# A connection's request must be whole this long after it opens (or after the last answer):
# a half-sent request or an idle connection holds no descriptor longer.
HEADER_TIMEOUT_S = 10.0


class ServerError(Exception):
    """The server cannot start (already running, socket dir unusable, ...)."""


class SingleInstanceLock:
    """An flock next to the socket: a second server on the same socket refuses to start, and a
    server killed with SIGKILL leaves no lock behind (the kernel drops it)."""

    def __init__(self, socket_path: Path):
        self.path = socket_path.with_name(socket_path.name + ".lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = self.path.read_text().strip() or "another process"
            raise ServerError(f"a server is already running on {self.path.with_suffix('')} (pid {holder})") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def admin_check(settings: Settings):
    """Admins may act on every test: root, the server's own user, and the admin group."""
    members: set[str] = set()
    admin_gid: int | None = None
    if settings.admin_group:
        try:
            group = grp.getgrnam(settings.admin_group)
            members, admin_gid = set(group.gr_mem), group.gr_gid
        except KeyError:
            log.warning("admin group %r does not exist; only root and the server's user are admins", settings.admin_group)
    own_uid = os.getuid()

    def is_admin(owner: Owner) -> bool:
        if owner.uid in (0, own_uid) or owner.name in members:
            return True
        if admin_gid is not None:
            import pwd

            with contextlib.suppress(KeyError):
                return pwd.getpwuid(owner.uid).pw_gid == admin_gid
        return False

    return is_admin


def _prepare_folders(settings: Settings, socket_path: Path) -> None:
    """The socket's folder and this server's private runtime folder (the tunnels' sockets live
    there): one another user made is refused, as the client refuses it."""
    try:
        if settings.socket_path is None:
            trusted_runtime_dir(socket_path.parent)
            return
        socket_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if runtime_dir() != socket_path.parent:
            trusted_runtime_dir(runtime_dir())
    except UnsafeFolder as exc:
        raise ServerError(str(exc)) from None


def _listening_socket(settings: Settings, socket_path: Path) -> socket.socket:
    """The server's socket, bound with its mode already set (no moment with a wider one)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    os.fchmod(sock.fileno(), settings.socket_mode_bits)  # Linux gives the bound file this mode
    sock.bind(str(socket_path))
    os.chmod(socket_path, settings.socket_mode_bits)  # the same mode on systems that ignore fchmod
    if settings.socket_group:
        os.chown(socket_path, -1, grp.getgrnam(settings.socket_group).gr_gid)
    return sock


async def serve(settings: Settings, socket_path: Path, *, idle_exit_s: float) -> None:
    files = raise_descriptor_limit()  # a service starts with 1024: a few users' tests and follows
    repeated = RepeatedErrors()
    for handler in logging.getLogger().handlers:
        handler.addFilter(repeated)
    _prepare_folders(settings, socket_path)
    lock = SingleInstanceLock(socket_path)
    lock.acquire()
    engine = await Engine.open(settings, is_admin=admin_check(settings))
    api = Api(engine.service, engine.backend, settings)
    runner = web.AppRunner(api.app(), access_log=None, handle_signals=False, keepalive_timeout=HEADER_TIMEOUT_S)
    await runner.setup()
    with contextlib.suppress(FileNotFoundError):
        socket_path.unlink()  # left by a server that was killed; the lock proves nobody uses it
    # Open follow streams must not hold a stopping server for a minute.
    site = GuardedSockSite(runner, _listening_socket(settings, socket_path), shutdown_timeout=2.0, backlog=1024)
    await site.start()
    stop = asyncio.Event()
    api.stop = stop.set
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)
    log.info("serving on %s (pid %s, owner id %s, cap %s, open files %s)", socket_path, os.getpid(),
             engine.orchestrator.owner_id, settings.max_concurrent, files)
    engine.start()
    idle = asyncio.create_task(_exit_when_idle(engine, api, settings, idle_exit_s, stop))
    try:
        await stop.wait()
        log.info("stopping: no new claims; running containers stay for the next server to adopt")
    finally:
        idle.cancel()
        await engine.stop()
        await runner.cleanup()
        with contextlib.suppress(FileNotFoundError):
            socket_path.unlink()
        await engine.close()
        lock.release()
        log.info("stopped")


async def _exit_when_idle(engine: Engine, api: Api, settings: Settings, idle_exit_s: float, stop: asyncio.Event) -> None:
    """A personal server goes away after idle_exit_s with nothing queued, running or watched."""
    if idle_exit_s <= 0:
        return
    idle_since = time.monotonic()
    while not stop.is_set():
        await asyncio.sleep(IDLE_CHECK_S)
        status = await engine.store.queue_status(settings.max_concurrent)
        busy = engine.orchestrator.runs or status.running or status.queued or api.active_streams
        recent_request = asyncio.get_running_loop().time() - api.last_request < idle_exit_s
        if busy or recent_request:
            idle_since = time.monotonic()
        elif time.monotonic() - idle_since >= idle_exit_s:
            log.info("idle for %.0f s: exiting", idle_exit_s)
            stop.set()


def run_server(settings: Settings, *, foreground_log: bool) -> int:
    from agenttui.core.config import server_log_file

    socket_path = settings.resolved_socket_path
    log_file = server_log_file()
    # Every folder and file of agenttui's is its user's alone (the socket aside).
    private_dir(log_file.parent, ours=True)
    private_dir(data_dir(), ours=True)
    private_dir(settings.resolved_package_dir, ours=settings.package_dir is None)
    private_dir(settings.staging_dir, ours=True)  # mounted folder by folder: containers never cross it
    handlers: list[logging.Handler] = [logging.FileHandler(private_file(log_file))]
    if foreground_log:
        handlers.append(logging.StreamHandler())
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", handlers=handlers)
    idle = settings.server_idle_exit_s if settings.socket_path is None else 0.0
    asyncio.run(serve(settings, socket_path, idle_exit_s=idle))
    return 0
