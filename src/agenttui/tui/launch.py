"""Start-up of the full-screen app, before Textual loads (this module must not import it).

With the server's socket client, the first queue and history snapshot is fetched in a thread
(its own event loop) while Textual and the app are imported and the screen is built, so the
first frame already shows them instead of waiting for round trips queued behind the screen's
set-up on the app's loop. `--in-process` has no such head start: its engine lives on the
app's loop.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING

from agenttui.tui.snapshot import HISTORY_LIMIT

if TYPE_CHECKING:
    from agenttui.client.settings import ClientSettings
    from agenttui.core.config import Settings
    from agenttui.tui.snapshot import Snapshot


def prefetch_snapshot(settings: Settings | ClientSettings) -> Future[Snapshot] | None:
    """Reach the server (starting the personal one when none answers) and read the queue and
    the history in a background thread. None with --in-process."""
    if settings.in_process:
        return None
    from agenttui.client.remote import SocketClient

    future: Future[Snapshot] = Future()

    async def fetch() -> Snapshot:
        client = SocketClient(settings)
        await client.open()
        queue, history = await asyncio.gather(client.queue(), client.history(limit=HISTORY_LIMIT))
        return queue, history

    def run() -> None:
        try:
            result = asyncio.run(fetch())
        except BaseException as exc:  # handed to the app, which reports it and retries
            future.set_exception(exc)
        else:
            future.set_result(result)

    threading.Thread(target=run, name="agenttui-first-snapshot", daemon=True).start()
    return future


def run_tui(settings: Settings | ClientSettings, agent_path: Path | None = None) -> int:
    """Entry point of `agenttui` without a command (agenttui.cli.entry)."""
    first = prefetch_snapshot(settings)
    from agenttui.tui.app import run_app  # Textual loads while the snapshot travels

    return run_app(settings, agent_path=agent_path, first_snapshot=first)
