"""`agenttui server status|stop|restart`: the server's life, asked over its socket.

Each is a request the server allows by the caller's kernel credentials (SO_PEERCRED): its own
user, root, or a member of its admin_group. No pid is read and no signal is sent, so stopping a
shared server needs no right over its process. A stop is SIGTERM's: the server stops claiming,
leaves its running tests to be adopted by the next server, and lets go of its socket.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

from agenttui.client.remote import SocketClient
from agenttui.core.errors import NOT_RUNNING, OK, NotActionable, NotFound
from agenttui.core.wire import ServerStatus, to_builtins

if TYPE_CHECKING:
    from agenttui.client.settings import ClientSettings
    from agenttui.core.config import Settings


async def server_command(action: str, settings: Settings | ClientSettings, *, as_json: bool = False) -> int:
    """Run `action` (status, stop or restart) and print what it did; returns the exit code."""
    client = SocketClient(settings)
    if action == "restart" and not client.personal:
        # Its settings are the service's, and a stop over the socket is not restarted by the
        # unit (Restart=on-failure): refuse before stopping rather than leave it down.
        raise NotActionable(
            f"the shared agenttui server at {client.socket_path} is restarted by its service manager "
            "(`sudo systemctl restart agenttui`, docs/shared-box.md); `agenttui server stop` only stops it"
        )
    health = await client.running_server()
    if action == "status":
        if health is None:
            _print(as_json, {"running": False, "socket_path": str(client.socket_path)}, _not_running(client))
            return NOT_RUNNING.exit
        try:
            status = await client.server_status()
        except NotFound:  # a server older than GET /v1/server
            raise NotActionable(f"the agenttui server at {client.socket_path} runs version {health.version}, "
                                "which cannot tell its status; restart it to run this one (`agenttui server restart`, or on a shared "
                                "box its service)") from None
        _print(as_json, {"running": True, **to_builtins(status)}, describe(status))
        return OK.exit
    if health is not None:
        await client.stop_server()
    if action == "stop":
        said = f"stopped the agenttui server at {client.socket_path}" if health else "no agenttui server was running"
        _print(as_json, {"stopped": health is not None, "socket_path": str(client.socket_path)}, [said])
        return OK.exit
    await client.open()  # starts a personal server with this command's settings
    status = await client.server_status()
    said = f"restarted the agenttui server at {client.socket_path} with your settings"
    _print(as_json, {"running": True, **to_builtins(status)}, [said, *describe(status)])
    return OK.exit


def _not_running(client: SocketClient) -> list[str]:
    if client.personal:
        return [f"agenttui server: not running (socket {client.socket_path}); any agenttui command starts it"]
    return [f"agenttui server: not running (socket {client.socket_path}); the box's admin starts it "
            "(`systemctl start agenttui`)"]


def describe(status: ServerStatus) -> list[str]:
    """`agenttui server status`'s lines."""
    kind = "personal" if status.personal else "shared"
    return [
        f"agenttui server: running ({kind}), pid {status.pid}, up {_duration(status.uptime_s)}",
        f"  version  {status.version} (build {status.build})",
        f"  socket   {status.socket_path}",
        f"  owner    {status.owner.name} (uid {status.owner.uid})",
        f"  backend  {status.backend}",
        f"  store    {status.store}",
        f"  tests    {status.tests_running} running (cap {status.cap}), {status.tests_queued} queued",
    ]


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


def _print(as_json: bool, record: dict[str, Any], lines: list[str]) -> None:
    if as_json:
        print(json.dumps(record))
    else:
        print("\n".join(lines), file=sys.stdout)
