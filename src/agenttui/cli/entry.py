"""`agenttui`'s entry point: the TUI without a command, else the command's function."""

from __future__ import annotations

import argparse
import os
import sys
from importlib import import_module
from pathlib import Path

from agenttui.cli.common import EXIT_INVALID, UserError, client_settings
from agenttui.cli.parser import build_parser, command_of, normalise_argv
from agenttui.core import errors as codes

# Each command's module loads only when that command runs (a light start: no asyncio before it).
COMMANDS = {
    "doctor": "engine_commands:cmd_doctor",
    "submit": "submitting:cmd_submit",
    "show": "reading:cmd_show",
    "trace": "reading:cmd_trace",
    "logs": "reading:cmd_logs",
    "history": "reading:cmd_history",
    "queue": "reading:cmd_queue",
    "cancel": "reading:cmd_cancel",
    "retry": "submitting:cmd_retry",
    "package": "reading:cmd_package",
    "suite": "suites:cmd_suite",
    "cassette": "cassettes:cmd_cassette",
    "worker": "engine_commands:cmd_worker",
    "server": "engine_commands:cmd_server",  # status|stop|restart; without an action, the server runs
}


def command_function(name: str):
    """The function of a command (a coroutine function for those that run asyncio), from its
    module (agenttui.cli.<module>)."""
    module, function = COMMANDS[name].split(":")
    return getattr(import_module(f"agenttui.cli.{module}"), function)


_headless_done = False  # a blocking command (no asyncio, no TUI, no server) has returned


def run() -> None:
    """The `agenttui` command (pyproject's script): `main`, and once a blocking headless command
    has returned and its output is flushed, the process ends without the interpreter's teardown
    of every loaded module (~15 ms of a command that lasts a few tens)."""
    code = main()
    if _headless_done:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except BrokenPipeError:
            code = _output_closed()
        os._exit(code)
    raise SystemExit(code)


def main(argv: list[str] | None = None) -> int:
    argv = normalise_argv(list(sys.argv[1:] if argv is None else argv))
    parser = build_parser(command_of(argv))
    agent = _tui_agent_file(argv, parser)
    if agent is not None:  # `agenttui path/to/agent.py`: the TUI with that file loaded
        return _run_tui(parser.parse_args(argv[:-1]), agent)
    args = parser.parse_args(argv)
    if args.command is None:
        return _run_tui(args)
    if args.command == "server" and args.action is None:
        from agenttui.cli.engine_commands import run_server_command

        return run_server_command(args)
    try:
        code = command_function(args.command)(args)
        if hasattr(code, "__await__"):  # an asyncio command; the blocking ones never import asyncio
            import asyncio

            code = asyncio.run(code)
        elif "asyncio" not in sys.modules:
            global _headless_done
            _headless_done = True
        sys.stdout.flush()  # a reader that left shows here, not as a traceback at exit
        return code
    except KeyboardInterrupt:
        return codes.DETACHED.exit
    except BrokenPipeError:
        return _output_closed()
    except (UserError, LookupError, PermissionError, ValueError, codes.SettingsError, codes.InfraError) as exc:
        # Bad input, something impossible asked (NotFound, AccessDenied, NotActionable), a personal
        # server that refused its settings, or the infrastructure down: said without a traceback.
        print(f"agenttui: {exc}", file=sys.stderr)
        return _exit_code_of(exc)


def _output_closed() -> int:
    """The reader of our output went away (`| head`): end quietly. Later writes, and the flush at
    exit, go nowhere instead of raising again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return codes.OUTPUT_CLOSED.exit


def _exit_code_of(error: Exception) -> int:
    """The error table's exit code; any other error caught here is the user's input."""
    code = codes.code_of(error)
    return code.exit if code is not None else EXIT_INVALID


def _tui_agent_file(argv: list[str], parser: argparse.ArgumentParser) -> Path | None:
    """The agent file of `agenttui [options] path/to/agent.py` (no subcommand), else None."""
    if not argv or not argv[-1].endswith(".py") or not Path(argv[-1]).is_file():
        return None
    commands = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            commands.update(action.choices)
    if any(arg in commands for arg in argv[:-1]):
        return None
    return Path(argv[-1])


def _run_tui(args: argparse.Namespace, agent: Path | None = None) -> int:
    from importlib.util import find_spec

    if find_spec("textual") is None:
        print(
            "agenttui: the full-screen TUI is not available in this build yet; "
            "use the headless commands (agenttui --help)",
            file=sys.stderr,
        )
        return EXIT_INVALID
    try:
        settings = client_settings(args)  # without pydantic unless --in-process (TUI start-up)
    except UserError as exc:
        print(f"agenttui: {exc}", file=sys.stderr)
        return EXIT_INVALID
    from agenttui.tui.launch import run_tui  # imports Textual (the only place that does)

    return run_tui(settings, agent)
