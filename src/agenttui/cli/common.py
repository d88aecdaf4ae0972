"""What every command shares: exit codes, input files, settings, the client."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

from agenttui.core import errors as codes

if TYPE_CHECKING:
    from agenttui.client.base import Client
    from agenttui.core.wire import TestView

EXIT_OK, EXIT_AGENT, EXIT_INVALID, EXIT_INFRA, EXIT_TIMEOUT, EXIT_CANCELLED = (
    code.exit for code in (codes.OK, codes.AGENT_FAILED, codes.INVALID_REQUEST, codes.INFRA, codes.TIMED_OUT,
                           codes.CANCELLED)
)


class UserError(Exception):
    """Bad input: printed without a traceback, exit 2."""


def exit_code_for(view: TestView) -> int:
    return codes.outcome_of(view.status, view.failure_kind).exit


def options_from_args(args: argparse.Namespace) -> dict[str, str]:
    options: dict[str, str] = {}
    for item in args.options or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--option {item!r}: expected KEY=VALUE, e.g. --option OPENAI_BASE_URL=http://host:8000/v1")
        options[key.strip()] = value
    return options


# Far above any file field's own limit (agenttui.core.domain), so a file the engine would take
# is never cut; small enough that three such files fit the server's 1 MB body. A larger file is
# refused before it is read whole.
READ_CAP_CHARS = 256 * 1024


def read_text(path: Path | None, what: str) -> str:
    if path is None:
        return ""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read(READ_CAP_CHARS + 1)
            size = os.fstat(handle.fileno()).st_size
    except FileNotFoundError:
        raise UserError(f"{what} file {path} does not exist") from None
    except IsADirectoryError:
        raise UserError(f"{what} file {path} is a folder; name the file itself") from None
    except UnicodeDecodeError:
        raise UserError(f"{what} file {path} is not UTF-8 text") from None
    except OSError as exc:
        raise UserError(f"cannot read {what} file {path}: {exc.strerror}") from None
    if len(text) > READ_CAP_CHARS:
        raise UserError(too_large(path, what, size))
    return text


def too_large(path: Path, what: str, size: int) -> str:
    """What to say of a file far over its field's limit (the limits load only on this path)."""
    from agenttui.core import domain

    limit = {"agent": domain.MAX_AGENT_BYTES, "requirements": domain.MAX_REQUIREMENTS_BYTES,
             "Dockerfile": domain.MAX_DOCKERFILE_BYTES}.get(what, READ_CAP_CHARS)
    told = f"{size / 1048576:.1f} MB" if size else f"over {READ_CAP_CHARS // 1024} KB"
    return f"{what} file {path} is {told}: too large; it must be under {limit // 1024} KB"


def engine_settings(args: argparse.Namespace):
    """All settings (pydantic-settings): for the commands that run the engine themselves."""
    from agenttui.core.config import SettingsError, load_settings

    try:
        return load_settings(
            max_concurrent=args.max_concurrent,
            base_image=args.base_image,
            db_url=args.db_url,
            socket_path=args.socket,
            in_process=args.in_process,
        )
    except SettingsError as exc:
        raise UserError(str(exc)) from None


def client_settings(args: argparse.Namespace):
    """The few settings a server's client needs, read without pydantic (fast start-up); all of
    them with --in-process, where this command runs the engine itself."""
    from agenttui.client.settings import load_client_settings
    from agenttui.core.errors import SettingsError

    try:
        settings = load_client_settings(socket_path=args.socket, in_process=args.in_process)
    except SettingsError as exc:
        raise UserError(str(exc)) from None
    return engine_settings(args) if settings.in_process else settings


def open_client(settings) -> Client:
    """The server's client, or the engine in this process with --in-process."""
    if settings.in_process:
        from agenttui.client.local import LocalClient

        return LocalClient(settings)
    from agenttui.client.remote import SocketClient

    return SocketClient(settings)


def blocking_client(settings, sent=None):
    """The server's client on blocking sockets (no asyncio: a light start), or with --in-process
    the engine in this process behind the same calls. `sent`: a followed submit already on its
    way (agenttui.client.early), whose answer the client's submit reads."""
    if settings.in_process:
        from agenttui.cli.in_process import EngineHere

        return EngineHere(settings)
    from agenttui.client.blocking import BlockingClient

    return BlockingClient(settings, sent)


def printable(text: str) -> str:
    from agenttui.core.display import printable

    return printable(text)
