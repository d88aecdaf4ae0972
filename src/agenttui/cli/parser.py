"""The command line's grammar: commands, their options, the global options."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any, NoReturn

from agenttui import __version__
from agenttui.cli.common import EXIT_AGENT, EXIT_CANCELLED, EXIT_INFRA, EXIT_INVALID, EXIT_OK, EXIT_TIMEOUT
from agenttui.core import errors as codes

EXIT_CODES_HELP = (
    f"Exit codes: {EXIT_OK} completed, {EXIT_AGENT} agent failed, {EXIT_INVALID} invalid input, "
    f"{EXIT_INFRA} infrastructure failure, {EXIT_TIMEOUT} timed out, {EXIT_CANCELLED} cancelled, "
    f"{codes.BUDGET_EXHAUSTED.exit} budget used up (--max-cost, --max-tokens, --max-model-calls), "
    f"{codes.REPLAY_MISS.exit} replay miss (--replay met a call its cassette lacks), "
    f"{codes.DETACHED.exit} interrupted (Ctrl-C: the test keeps running)."
)


class CommandLine(argparse.ArgumentParser):
    """argparse's grammar, with its mistakes said in agenttui's words (and its exit code 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_INVALID, f"{self.prog}: {usage_mistake(message)}\n  (`{self.prog} --help` lists what it takes)\n")


_VALUE_KINDS = {"int": "a whole number", "float": "a number"}


def usage_mistake(message: str) -> str:
    """One of argparse's error messages, in agenttui's words; one it has no words for is kept."""
    if found := re.fullmatch(r"argument (\S+): invalid choice: '(.*)' \(choose from (.*)\)", message):
        name, given, listed = found.groups()
        choices = [c.strip().strip("'") for c in listed.split(",")]
        if name in ("COMMAND", "ACTION"):
            import difflib

            close = difflib.get_close_matches(given, choices, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            if name == "COMMAND":
                return f"'{given}' is not a command{hint}. The commands: {', '.join(choices)}."
            return f"'{given}' is not an action of this command{hint}. Its actions: {', '.join(choices)}."
        return f"{name} is one of {', '.join(choices)}, not '{given}'."
    if found := re.fullmatch(r"the following arguments are required: (.*)", message):
        return f"missing {found.group(1)}: give it after the command."
    if found := re.fullmatch(r"unrecognized arguments: (.*)", message):
        return f"unknown option or argument: {found.group(1)}."
    if found := re.fullmatch(r"argument (\S+): invalid (\w+) value: '(.*)'", message):
        name, kind, given = found.groups()
        return f"{name} takes {_VALUE_KINDS.get(kind, 'a ' + kind)}, not '{given}'."
    if found := re.fullmatch(r"argument (\S+): expected one argument", message):
        return f"{found.group(1)} needs a value after it."
    if found := re.fullmatch(r"argument (\S+): not allowed with argument (\S+)", message):
        return f"{found.group(1)} and {found.group(2)} cannot be used together."
    return message


def add_request_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--query", "-q", help="the test query given to the agent (required, unless --queries)")
    parser.add_argument("--requirements", "-r", type=Path, help="requirements.txt for the agent")
    parser.add_argument("--dockerfile", type=Path, help="custom Dockerfile (runs its own command)")
    parser.add_argument("--timeout", type=int, help="seconds before the test is stopped (10-600)")
    parser.add_argument("--priority", choices=["high", "normal", "low"], default="normal")
    parser.add_argument("--provider", default="ollama", help="ollama | bedrock | openai")
    parser.add_argument("--model", default="llama3.2", help="model id (given to the agent as MODEL_ID)")
    add_provider_options(parser)
    parser.add_argument(
        "--egress", choices=["none", "provider-only", "full"],
        help="what the agent may reach: nothing, its model endpoint only (default: setting default_egress), "
        "or Docker's bridge network",
    )
    parser.add_argument(
        "--strict-preflight", action="store_true", default=None,
        help="fail the test at once when its model endpoint does not answer (default: run the agent with "
        "a warning; setting strict_preflight)",
    )
    parser.add_argument(
        "--entrypoint", metavar="NAME",
        help="the agent's object or function to call, by name or dotted path (e.g. graph or app.crew); "
        "default: found as docs/agents.md says",
    )
    add_budget_options(parser)
    parser.add_argument("--cpus", type=float, help="CPU limit (default 1)")
    parser.add_argument("--memory", type=int, metavar="MB", help="memory limit in MB (default 2048)")
    parser.add_argument("--pids", type=int, help="process limit (default 1000)")


def add_budget_options(parser: argparse.ArgumentParser) -> None:
    """Read as text and checked by agenttui.cli.submitting (a bad value is told in agenttui's words)."""
    parser.add_argument("--max-cost", metavar="USD",
                        help="refuse the test's model calls once they cost this much; the test ends with exit 7 "
                        "(default: setting default_max_cost_usd, else no limit)")
    parser.add_argument("--max-tokens", metavar="N",
                        help="refuse its model calls once they used N tokens, in and out (exit 7; setting "
                        "default_max_tokens)")
    parser.add_argument("--max-model-calls", metavar="N",
                        help="let N model calls through and refuse the next (exit 7; setting default_max_model_calls)")


def add_provider_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--option", "-o", dest="options", action="append", default=[], metavar="KEY=VALUE",
        help="provider setting given to the agent as an environment variable, e.g. OPENAI_BASE_URL=..., "
        "AWS_REGION=..., AWS_PROFILE=... (repeatable; secrets are never stored, docs/providers.md)",
    )


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole grammar; with `command` (one of COMMAND_PARSERS), the global options and that
    command alone: what a command's own run needs, at a fraction of the start-up cost."""
    parser = CommandLine(
        prog="agenttui",
        description="Test AI agents in isolated containers, watch them live, package them.",
        epilog=EXIT_CODES_HELP,
    )
    parser.add_argument("--version", action="version", version=f"agenttui {__version__}")
    parser.add_argument("--max-concurrent", type=int, help="global cap on running tests")
    parser.add_argument("--base-image", help="image agents run on")
    parser.add_argument("--db-url", help="store URL (default: SQLite in the data dir)")
    parser.add_argument("--socket", type=Path, help="socket of a shared agenttui server")
    parser.add_argument(
        "--in-process", action="store_true", default=None,
        help="run without a server (the test stops when this command does)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, add in COMMAND_PARSERS.items():
        if command is None or name == command:
            add(sub)
    return parser


def command_of(argv: list[str]) -> str | None:
    """The command of a normalised argv (global options first), None when there is none."""
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        takes_value = GLOBAL_OPTIONS.get(argv[i].split("=", 1)[0])
        if takes_value is None:  # --help, --version or a mistake: the whole grammar answers
            return None
        i += 2 if takes_value and "=" not in argv[i] else 1
    return argv[i] if i < len(argv) and argv[i] in COMMAND_PARSERS else None


def add_submit(sub: Any) -> None:
    submit = sub.add_parser("submit", help="run an agent on a query, stream its log, exit with its outcome")
    submit.add_argument("agent", type=Path, help="the agent's Python file")
    add_request_options(submit)
    submit.add_argument("--json", action="store_true", help="print one JSON object at the end (logs go to stderr)")
    submit.add_argument("--no-wait", action="store_true", help="print the test id and exit; the server runs it")
    submit.add_argument(
        "--queries", type=Path, metavar="FILE",
        help="one query per line: a test for each, all queued in one request (all or none); prints their ids",
    )
    submit.add_argument("--record", type=Path, metavar="CASSETTE",
                        help="write the test's model exchanges to this cassette file (docs/replay.md)")
    submit.add_argument("--replay", type=Path, metavar="CASSETTE",
                        help="answer the test's model calls from this cassette; nothing upstream is opened")
    submit.add_argument("--replay-mode", choices=["strict", "new-calls-live"],
                        help="strict (default): a call the cassette lacks fails the test (exit 9); "
                             "new-calls-live: it goes to the endpoint and is added to the cassette")
    submit.add_argument("--replay-realtime", action="store_true",
                        help="replay a stream's chunks at their recorded pace (default: as fast as possible)")


def add_cassette(sub: Any) -> None:
    cassette = sub.add_parser("cassette", help="read a cassette of recorded model exchanges")
    cassette_actions = cassette.add_subparsers(dest="action", metavar="ACTION", required=True)
    cassette_show = cassette_actions.add_parser("show", help="one line per call: endpoint, model, question, answer")
    cassette_show.add_argument("file", type=Path)


def add_show(sub: Any) -> None:
    show = sub.add_parser("show", help="show a test's status, result and metrics")
    show.add_argument("id", type=int)
    show.add_argument("--json", action="store_true")


def add_trace(sub: Any) -> None:
    trace = sub.add_parser("trace", help="list a test's model calls: model, tokens, cost, latency, tool calls")
    trace.add_argument("id", type=int)
    trace.add_argument("--json", action="store_true", help="print the calls and their totals as one JSON object")


def add_logs(sub: Any) -> None:
    logs = sub.add_parser("logs", help="print a test's log")
    logs.add_argument("id", type=int)
    logs.add_argument("--follow", "-f", action="store_true", help="keep printing until the test ends")


def add_history(sub: Any) -> None:
    history = sub.add_parser("history", help="list finished tests")
    history.add_argument("--search", "-s", help="only tests whose query/response/error/owner/status match")
    history.add_argument("--limit", type=int, default=50)
    history.add_argument("--json", action="store_true")


def add_queue(sub: Any) -> None:
    queue = sub.add_parser("queue", help="running and queued tests, with the cap and utilization")
    queue.add_argument("--json", action="store_true")


def add_cancel(sub: Any) -> None:
    cancel = sub.add_parser("cancel", help="cancel a queued or running test")
    cancel.add_argument("id", type=int)


def add_retry(sub: Any) -> None:
    retry = sub.add_parser("retry", help="run a test again as a new linked test")
    retry.add_argument("id", type=int)
    retry.add_argument("--query", "-q", help="a different query")
    retry.add_argument("--agent", type=Path, help="different agent code")
    add_budget_options(retry)
    retry.add_argument("--json", action="store_true")


def add_package(sub: Any) -> None:
    package = sub.add_parser("package", help="write a finished test's deployment package (zip) and print its path")
    package.add_argument("id", type=int)
    package.add_argument(
        "-o", "--output", type=Path,
        help="folder for the zip, written with your rights; an earlier zip of the same test there is replaced "
        "(default: setting package_dir)",
    )
    package.add_argument("--json", action="store_true")


def add_server(sub: Any) -> None:
    server = sub.add_parser(
        "server", help="run the agenttui server (started automatically when needed), or status|stop|restart it",
        description="Without an action: run the server. status: is it running, its pid, version, uptime, socket, "
        "owner, backend, store and tests (exit 3 when none runs). stop: stop it as SIGTERM does (its running "
        "tests are adopted by the next server). restart: stop your personal server and start it with your "
        "settings now. Asked over the socket: the server's own user and admin_group only.",
    )
    server.add_argument("action", nargs="?", choices=["status", "stop", "restart"], help="(default: run the server)")
    server.add_argument("--foreground", action="store_true", help="also log to stderr")
    server.add_argument("--json", action="store_true", help="status|stop|restart: one JSON object")


def add_doctor(sub: Any) -> None:
    doctor = sub.add_parser("doctor", help="check the engine and the model provider (from a sandbox like a test's)")
    doctor.add_argument("--provider", default="ollama", help="ollama | bedrock | openai")
    doctor.add_argument("--model", default="llama3.2", help="model id")
    add_provider_options(doctor)


def add_worker(sub: Any) -> None:
    worker = sub.add_parser("worker", help="work the queue in the foreground without a server")
    worker.add_argument("--idle-exit", action="store_true", help="exit once nothing is queued or running")


def add_suite(sub: Any) -> None:
    from agenttui.cli.suites import add_suite_commands  # the suite modules load for `suite` alone

    add_suite_commands(sub)


# Each command's part of the grammar, in the order `agenttui --help` lists them.
COMMAND_PARSERS = {
    "submit": add_submit, "cassette": add_cassette, "show": add_show, "trace": add_trace, "logs": add_logs,
    "history": add_history, "queue": add_queue, "cancel": add_cancel, "retry": add_retry,
    "package": add_package, "server": add_server, "doctor": add_doctor, "worker": add_worker, "suite": add_suite,
}

# The options every command takes, and whether each is followed by a value.
GLOBAL_OPTIONS = {"--max-concurrent": True, "--base-image": True, "--db-url": True, "--socket": True,
                  "--in-process": False}


def normalise_argv(argv: list[str]) -> list[str]:
    """`agenttui --submit AGENT ...` is an alias of `agenttui submit AGENT ...`; the global
    options are taken after the command too (`agenttui submit --in-process ...`)."""
    if "--submit" in argv:
        i = argv.index("--submit")
        argv = argv[:i] + ["submit"] + argv[i + 1 :]
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(argv):
        word = argv[i]
        if word == "--":  # what follows is nobody's option
            rest += argv[i:]
            break
        name = word.split("=", 1)[0]
        takes_value = GLOBAL_OPTIONS.get(name)
        if takes_value is None:
            rest.append(word)
        elif takes_value and "=" not in word and i + 1 < len(argv):
            front += argv[i : i + 2]
            i += 1
        else:
            front.append(word)
        i += 1
    return front + rest
