"""A followed submit sent before the client loads its heavier modules.

Most of `agenttui submit`'s own start-up is loading the wire schema (msgspec, its dataclasses)
and the blocking client. Sent first, with the standard library's json and the light transport,
the request is queued and its container started while they load; the blocking client then reads
the answer (BlockingClient.submit). A server that is not there, or a personal server running
other code (it refuses the submit, agenttui.core.wire_headers), leaves the submit to the
blocking client's usual way, which starts or replaces the server first.
"""

from __future__ import annotations

import json
from typing import Any

from agenttui import build_id
from agenttui.client import transport
from agenttui.client.trust import check_server
from agenttui.core.wire_headers import BUILD_HEADER

SUBMIT_PATH = "/v1/tests"


def send_submit(settings: Any, request: dict[str, Any], *, check_backend: bool) -> transport.Sent | None:
    """`request` submitted with a followed answer (the body agenttui.core.wire.SubmitBody
    decodes); None when no server answers on the socket or the request is not plain JSON."""
    socket_path = settings.resolved_socket_path
    personal = settings.socket_path is None
    check_server(socket_path, personal)  # before anything is sent, as the blocking client does
    try:
        body = json.dumps({"request": request, "parent_id": None, "check_backend": check_backend},
                          ensure_ascii=False).encode()
    except (TypeError, ValueError, UnicodeEncodeError):
        return None
    # A shared server's build is only warned about (BlockingClient.ensure_server): not asked for.
    headers = {BUILD_HEADER: build_id()} if personal else {}
    try:
        return transport.send(str(socket_path), "POST", SUBMIT_PATH, params={"follow": "1"}, body=body,
                              headers=headers)
    except transport.ConnectionLost:
        return None
