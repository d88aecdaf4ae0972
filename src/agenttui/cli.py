"""Command line: the TUI (no arguments) and the headless commands (R-25).

Exit codes come from the table in agenttui.core.errors (0 completed, 1 agent failed, 2 invalid
input, 3 infrastructure failure, 4 timed out, 5 cancelled). This module must stay free of
Textual (a test checks it) and light to import: heavy modules load inside the commands that
need them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agenttui.core import errors as codes

if TYPE_CHECKING:
    from agenttui.client.base import Client
    from agenttui.core.wire import TestView
    from agenttui.core.lifecycle import InvalidRequest

EXIT_OK, EXIT_AGENT, EXIT_INVALID, EXIT_INFRA, EXIT_TIMEOUT, EXIT_CANCELLED = (
    code.exit for code in (codes.OK, codes.AGENT_FAILED, codes.INVALID_REQUEST, codes.INFRA, codes.TIMED_OUT,
                           codes.CANCELLED)
)
EXIT_CODES_HELP = (
    f"Exit codes: {EXIT_OK} completed, {EXIT_AGENT} agent failed, {EXIT_INVALID} invalid input, "
    f"{EXIT_INFRA} infrastructure failure, {EXIT_TIMEOUT} timed out, {EXIT_CANCELLED} cancelled, "
    f"{codes.DETACHED.exit} interrupted (Ctrl-C: the test keeps running)."
)


# In place of another user's query and response (the server's setting share_test_content is off).


class UserError(Exception):
    """Bad input: printed without a traceback, exit 2."""


def exit_code_for(view: TestView) -> int:
    return codes.outcome_of(view.status, view.failure_kind).exit


# ---------------------------------------------------------------------- argument parsing
def _add_request_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--query", "-q", help="the test query given to the agent (required, unless --queries)")
    parser.add_argument("--requirements", "-r", type=Path, help="requirements.txt for the agent")
    parser.add_argument("--dockerfile", type=Path, help="custom Dockerfile (runs its own command)")
    parser.add_argument("--timeout", type=int, help="seconds before the test is stopped (10-600)")
    parser.add_argument("--priority", choices=["high", "normal", "low"], default="normal")
    parser.add_argument("--provider", default="ollama", help="ollama | bedrock | openai")
    parser.add_argument("--model", default="llama3.2", help="model id (given to the agent as MODEL_ID)")
    _add_provider_options(parser)
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
    parser.add_argument("--cpus", type=float, help="CPU limit (default 1)")
    parser.add_argument("--memory", type=int, metavar="MB", help="memory limit in MB (default 2048)")
    parser.add_argument("--pids", type=int, help="process limit (default 1000)")


def _add_provider_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--option", "-o", dest="options", action="append", default=[], metavar="KEY=VALUE",
        help="provider setting given to the agent as an environment variable, e.g. OPENAI_BASE_URL=..., "
        "AWS_REGION=..., AWS_PROFILE=... (repeatable; secrets are never stored, docs/providers.md)",
    )


def _options_from_args(args: argparse.Namespace) -> dict[str, str]:
    options: dict[str, str] = {}
    for item in args.options or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--option {item!r}: expected KEY=VALUE, e.g. --option OPENAI_BASE_URL=http://host:8000/v1")
        options[key.strip()] = value
    return options


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agenttui",
        description="Test AI agents in isolated containers, watch them live, package them.",
        epilog=EXIT_CODES_HELP,
    )
    parser.add_argument("--max-concurrent", type=int, help="global cap on running tests")
    parser.add_argument("--base-image", help="image agents run on")
    parser.add_argument("--db-url", help="store URL (default: SQLite in the data dir)")
    parser.add_argument("--socket", type=Path, help="socket of a shared agenttui server")
    parser.add_argument(
        "--in-process", action="store_true", default=None,
        help="run without a server (the test stops when this command does)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_test_commands(sub)
    _add_engine_commands(sub)
    return parser


def _add_test_commands(sub: Any) -> None:
    """The commands about tests: queue one, read one, act on one."""
    submit = sub.add_parser("submit", help="run an agent on a query, stream its log, exit with its outcome")
    submit.add_argument("agent", type=Path, help="the agent's Python file")
    _add_request_options(submit)
    submit.add_argument("--json", action="store_true", help="print one JSON object at the end (logs go to stderr)")
    submit.add_argument("--no-wait", action="store_true", help="print the test id and exit; the server runs it")
    submit.add_argument(
        "--queries", type=Path, metavar="FILE",
        help="one query per line: a test for each, all queued in one request (all or none); prints their ids",
    )

    show = sub.add_parser("show", help="show a test's status, result and metrics")
    show.add_argument("id", type=int)
    show.add_argument("--json", action="store_true")

    trace = sub.add_parser("trace", help="list a test's model calls: model, tokens, cost, latency, tool calls")
    trace.add_argument("id", type=int)
    trace.add_argument("--json", action="store_true", help="print the calls and their totals as one JSON object")

    logs = sub.add_parser("logs", help="print a test's log")
    logs.add_argument("id", type=int)
    logs.add_argument("--follow", "-f", action="store_true", help="keep printing until the test ends")

    history = sub.add_parser("history", help="list finished tests")
    history.add_argument("--search", "-s", help="only tests whose query/response/error/owner/status match")
    history.add_argument("--limit", type=int, default=50)
    history.add_argument("--json", action="store_true")

    queue = sub.add_parser("queue", help="running and queued tests, with the cap and utilization")
    queue.add_argument("--json", action="store_true")

    cancel = sub.add_parser("cancel", help="cancel a queued or running test")
    cancel.add_argument("id", type=int)

    retry = sub.add_parser("retry", help="run a test again as a new linked test")
    retry.add_argument("id", type=int)
    retry.add_argument("--query", "-q", help="a different query")
    retry.add_argument("--agent", type=Path, help="different agent code")
    retry.add_argument("--json", action="store_true")

    package = sub.add_parser("package", help="write a finished test's deployment package (zip) and print its path")
    package.add_argument("id", type=int)
    package.add_argument(
        "-o", "--output", type=Path,
        help="folder for the zip, written with your rights; an earlier zip of the same test there is replaced "
        "(default: setting package_dir)",
    )
    package.add_argument("--json", action="store_true")


def _add_engine_commands(sub: Any) -> None:
    """The commands that run or check the engine itself."""
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

    doctor = sub.add_parser("doctor", help="check the engine and the model provider (from a sandbox like a test's)")
    doctor.add_argument("--provider", default="ollama", help="ollama | bedrock | openai")
    doctor.add_argument("--model", default="llama3.2", help="model id")
    _add_provider_options(doctor)

    worker = sub.add_parser("worker", help="work the queue in the foreground without a server")
    worker.add_argument("--idle-exit", action="store_true", help="exit once nothing is queued or running")


# The options every command takes, and whether each is followed by a value.
GLOBAL_OPTIONS = {"--max-concurrent": True, "--base-image": True, "--db-url": True, "--socket": True,
                  "--in-process": False}


def _normalise_argv(argv: list[str]) -> list[str]:
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


# ---------------------------------------------------------------------- helpers
# Far above any file field's own limit (agenttui.core.domain), so a file the engine would take
# is never cut; small enough that three such files fit the server's 1 MB body. A larger file is
# refused before it is read whole.
READ_CAP_CHARS = 256 * 1024


def _read_text(path: Path | None, what: str) -> str:
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
        raise UserError(_too_large(path, what, size))
    return text


def _too_large(path: Path, what: str, size: int) -> str:
    """What to say of a file far over its field's limit (the limits load only on this path)."""
    from agenttui.core import domain

    limit = {"agent": domain.MAX_AGENT_BYTES, "requirements": domain.MAX_REQUIREMENTS_BYTES,
             "Dockerfile": domain.MAX_DOCKERFILE_BYTES}.get(what, READ_CAP_CHARS)
    told = f"{size / 1048576:.1f} MB" if size else f"over {READ_CAP_CHARS // 1024} KB"
    return f"{what} file {path} is {told}: too large; it must be under {limit // 1024} KB"


def _settings(args: argparse.Namespace):
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


def _client_settings(args: argparse.Namespace):
    """The few settings a server's client needs, read without pydantic (fast start-up); all of
    them with --in-process, where this command runs the engine itself."""
    from agenttui.client.settings import load_client_settings
    from agenttui.core.errors import SettingsError

    try:
        settings = load_client_settings(socket_path=args.socket, in_process=args.in_process)
    except SettingsError as exc:
        raise UserError(str(exc)) from None
    return _settings(args) if settings.in_process else settings


def _request_from_args(args: argparse.Namespace, settings) -> Any:
    """The request's fields. Validated here only when credentials must be resolved here (or
    the engine runs here); otherwise the server validates them, with the same errors."""
    from agenttui.core.lifecycle import InvalidRequest

    fields = dict(
        agent_code=_read_text(args.agent, "agent"),
        query=args.query,
        requirements=_read_text(args.requirements, "requirements"),
        dockerfile=_read_text(args.dockerfile, "Dockerfile"),
        provider={"name": args.provider, "model_id": args.model, "options": _options_from_args(args)},
        egress=args.egress,
        strict_preflight=True if args.strict_preflight or settings.strict_preflight else None,
        timeout_s=args.timeout if args.timeout is not None else settings.default_timeout_s,
        priority=args.priority,
        limits={
            "cpus": args.cpus if args.cpus is not None else settings.default_cpus,
            "memory_mb": args.memory if args.memory is not None else settings.default_memory_mb,
            "pids": args.pids if args.pids is not None else settings.default_pids,
        },
        agent_filename=args.agent.name,
        entrypoint=args.entrypoint,
    )
    # Only bedrock and openai have credentials to resolve on the submitting side.
    if not settings.in_process and args.provider.strip().lower() == "ollama":
        return fields
    from agenttui.core.domain import TestRequest
    from agenttui.engine.credentials import resolve_request

    # Credentials are resolved here, in the user's own process (docs/providers.md).
    def warn(message: str) -> None:
        print(f"agenttui: warning: {message}", file=sys.stderr)

    try:
        return resolve_request(TestRequest.parse(**fields), duration_s=settings.aws_session_duration_s, warn=warn)
    except InvalidRequest as exc:
        raise _invalid_request(args, exc) from None


def _invalid_request(args: argparse.Namespace, exc: InvalidRequest) -> UserError:
    """Each bad field of a submit, named by the flag or file that set it (exit 2)."""
    flags = {"agent_code": f"agent ({args.agent})", "timeout_s": "--timeout", "limits.memory_mb": "--memory",
             "limits.cpus": "--cpus", "limits.pids": "--pids", "query": "--query",
             "requirements": f"requirements ({args.requirements})",
             "dockerfile": f"Dockerfile ({args.dockerfile})", "provider.name": "--provider",
             "provider.model_id": "--model", "egress": "--egress", "entrypoint": "--entrypoint",
             "provider.credentials": f"--provider {args.provider} (credentials)"}

    def flag(field: str) -> str:
        if field.startswith("provider.options."):
            return "--option " + field.removeprefix("provider.options.")
        return flags.get(field, field)

    lines = [f"{flag(field)}: {msg}" for field, msg in exc.errors.items()]
    return UserError("invalid request, nothing was queued:\n  " + "\n  ".join(lines))


def _client(settings) -> Client:
    """The server's client, or the engine in this process with --in-process."""
    if settings.in_process:
        from agenttui.client.local import LocalClient

        return LocalClient(settings)
    from agenttui.client.remote import SocketClient

    return SocketClient(settings)


def _printable(text: str) -> str:
    from agenttui.core.display import printable

    return printable(text)


def _print_log_line(record: Any, stream: Any) -> None:
    prefix = "" if record.stream in ("stdout", "system") else f"[{record.stream}] "
    stream.write(prefix + _printable(record.text) + "\n")


def _print_log_lines(records: list[Any], stream: Any) -> None:
    """A batch of lines at once: one look for control characters in the whole batch, and the
    escaping line by line only when one is there."""
    from agenttui.core.display import has_control

    if has_control("".join(record.text for record in records)):
        for record in records:
            _print_log_line(record, stream)
        return
    stream.write("".join(
        (record.text if record.stream in ("stdout", "system") else f"[{record.stream}] {record.text}") + "\n"
        for record in records
    ))


def _print_view(view: TestView) -> None:
    from datetime import datetime

    from agenttui.core.wire import HIDDEN_CONTENT

    when = datetime.fromtimestamp(view.created_at).strftime("%Y-%m-%d %H:%M:%S")
    print(f"test {view.id}  {view.status.value}  owner {view.owner_name}  priority {view.priority}  created {when}")
    if view.parent_id:
        print(f"retry of test {view.parent_id}")
    if view.position:
        print(f"queue position {view.position}, estimated wait {view.eta_s:.0f} s")
    if view.content_hidden:
        print(f"query, response and error: {HIDDEN_CONTENT}")
    else:
        print(f"query: {_printable(view.query)}")
    metrics = view.metrics
    if metrics:
        peak = metrics.get("peak_memory_bytes")
        print(
            "metrics: wall {wall} s, build {build} s, queue wait {wait} s, cpu {cpu} s, peak memory {peak}, "
            "exit code {code}, OOM {oom}".format(
                wall=metrics.get("wall_s"), build=metrics.get("build_s"), wait=metrics.get("queue_wait_s"),
                cpu=metrics.get("cpu_s"), peak=f"{peak / 1048576:.1f} MB" if peak else "unknown",
                code=view.exit_code, oom="yes" if view.oom_killed else "no",
            )
        )
    if view.model_calls is not None:
        print(f"model calls: {view.model_calls.line()} (agenttui trace {view.id})")
    if view.error:
        print(f"error: {_printable(view.error)}")
    if view.response is not None:
        print("response:")
        print(_printable(view.response))


async def _stream_until_done(client: Client, view: TestView, as_json: bool, in_process: bool) -> int:
    out = sys.stderr if as_json else sys.stdout
    loop = asyncio.get_running_loop()
    interrupted = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, interrupted.set)

    async def follow() -> None:
        async for batch in client.follow_logs(view.id):
            for record in batch:
                _print_log_line(record, out)
            out.flush()

    follower = asyncio.create_task(follow())
    stop_wait = asyncio.create_task(interrupted.wait())
    await asyncio.wait({follower, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
    if interrupted.is_set() and not follower.done():
        if not in_process:
            # The server keeps running it: leaving the terminal never stops a test.
            follower.cancel()
            print(f"\ndetached: test {view.id} keeps running; follow it with `agenttui logs {view.id} --follow`, "
                  f"stop it with `agenttui cancel {view.id}`", file=sys.stderr)
            return codes.DETACHED.exit
        # Nothing else would run an in-process test: cancel it cleanly.
        print(f"\ninterrupted: cancelling test {view.id}", file=sys.stderr)
        await client.cancel(view.id)
        await follower
    stop_wait.cancel()
    if follower.done() and not follower.cancelled() and follower.exception() is not None:
        raise follower.exception()  # type: ignore[misc]
    final = await client.wait(view.id)
    if as_json:
        print(json.dumps(final.summary()))
    else:
        duration = f" in {final.duration_s:.2f} s" if final.duration_s is not None else ""
        print(f"── test {final.id} {final.status.value}{duration} ──")
        if final.response is not None:
            print(_printable(final.response))
        if final.error:
            print(f"error: {_printable(final.error)}", file=sys.stderr)
    return exit_code_for(final)


# ---------------------------------------------------------------------- commands
async def _queue_and_follow(args: argparse.Namespace, settings, queue) -> int:
    """Queue a test with `queue(client)` (which checks the backend first), then follow it (or not)."""
    from agenttui.core.errors import InfraError

    try:
        async with _client(settings) as client:
            notice = None if settings.in_process else client.settings_notice()
            if notice:  # before the log: a changed setting applies only once the server restarts
                print(f"agenttui: {notice}", file=sys.stderr)
            view = await queue(client)
            if getattr(args, "no_wait", False):
                print(json.dumps(view.summary()) if args.json else view.id)
                return EXIT_OK
            origin = f" as a retry of test {view.parent_id}" if view.parent_id else ""
            where = f" (position {view.position})" if view.position else ""
            print(f"agenttui: test {view.id} queued{origin}{where}", file=sys.stderr)
            return await _stream_until_done(client, view, args.json, settings.in_process)
    except InfraError as exc:
        print(f"agenttui: infrastructure failure, nothing was queued: {exc}", file=sys.stderr)
        return EXIT_INFRA


async def _cmd_submit(args: argparse.Namespace) -> int:
    from agenttui.core.lifecycle import InvalidRequest

    settings = _client_settings(args)
    queries = _queries_from_args(args)
    if (args.no_wait or queries) and settings.in_process:
        raise UserError(f"{'--queries' if queries else '--no-wait'} needs the server to run the tests, and "
                        "--in-process runs them in this command: drop one of them")
    if queries:
        args.query = queries[0][1]  # the common request is checked with the first one
    request = _request_from_args(args, settings)
    if queries:
        return await _submit_many(args, settings, request, queries)

    async def queue(client):
        try:
            return await client.submit(request, check_backend=True, follow=not args.no_wait)
        except InvalidRequest as exc:
            raise _invalid_request(args, exc) from None

    return await _queue_and_follow(args, settings, queue)


def _queries_from_args(args: argparse.Namespace) -> list[tuple[int, str]]:
    """--queries FILE as (line number, query) for each line that is not blank; [] without it."""
    if args.queries is None:
        if args.query is None:
            raise UserError("--query is required (or --queries FILE: one query per line)")
        return []
    if args.query is not None:
        raise UserError("give --query or --queries, not both")
    queries = [(number, line) for number, line in enumerate(_read_text(args.queries, "queries").splitlines(), 1)
               if line.strip()]
    if not queries:
        raise UserError(f"--queries {args.queries}: the file holds no query (one per line)")
    return queries


async def _submit_many(args: argparse.Namespace, settings: Any, request: Any, queries: list[tuple[int, str]]) -> int:
    """A test per query, queued in one request (all or none); prints their ids, one per line."""
    from agenttui.core.lifecycle import InvalidRequest

    async with _client(settings) as client:
        await client.check_backend()
        try:
            ids = await client.submit_many(request, [{"query": query} for _number, query in queries])
        except InvalidRequest as exc:
            raise _invalid_many(args, exc, queries) from None
    print("\n".join(str(test_id) for test_id in ids))
    return EXIT_OK


def _invalid_many(args: argparse.Namespace, exc: Any, queries: list[tuple[int, str]]) -> UserError:
    """Each bad query named by its line in --queries; the rest as for one test."""
    from agenttui.core.lifecycle import InvalidRequest

    lines, common = [], {}
    for field, message in exc.errors.items():
        place, _, rest = field.partition("].")
        if place.startswith("tests[") and rest == "query":
            lines.append(f"--queries {args.queries} line {queries[int(place[6:])][0]}: {message}")
        else:
            common[rest or field] = message
    if common:
        lines.append(str(_invalid_request(args, InvalidRequest(common))).split("\n", 1)[-1].strip())
    return UserError("invalid request, nothing was queued:\n  " + "\n  ".join(lines))


async def _cmd_retry(args: argparse.Namespace) -> int:
    from agenttui.core.lifecycle import InvalidRequest

    settings = _client_settings(args)
    code = _read_text(args.agent, "agent") if args.agent else None

    async def queue(client):
        await client.check_backend()
        try:
            return await client.retry(args.id, query=args.query, agent_code=code)
        except InvalidRequest as exc:
            raise UserError(f"invalid retry, nothing was queued: {exc}") from None

    return await _queue_and_follow(args, settings, queue)


async def _cmd_show(args: argparse.Namespace) -> int:
    async with _client(_client_settings(args)) as client:
        view = await client.show(args.id)
        if args.json:
            print(json.dumps({**view.summary(), **view.to_json()}))
        else:
            _print_view(view)
    return EXIT_OK


async def _cmd_trace(args: argparse.Namespace) -> int:
    from agenttui.core.wire import to_builtins

    async with _client(_client_settings(args)) as client:
        trace = await client.trace(args.id)
    if args.json:
        print(json.dumps(to_builtins(trace)))
        return EXIT_OK
    print(f"test {trace.test_id}: " + (trace.totals.line() if trace.totals else "no model call recorded"))
    for call in trace.calls:
        _print_call(call)
    if trace.note:
        print(trace.note)
    return EXIT_OK


def _print_call(call: Any) -> None:
    from datetime import datetime

    when = datetime.fromtimestamp(call.started_at).strftime("%H:%M:%S")
    if call.kind != "call":
        detail = call.error or f"{call.bytes_up} bytes up, {call.bytes_down} down (not read: not plain HTTP)"
        print(f"  #{call.seq:<3} {when}  {call.provider or '-'}  {call.kind}: {_printable(detail)}  {call.duration_s:.2f} s")
        return
    tokens = "unmeasured" if call.tokens_in is None else f"{call.tokens_in} in / {call.tokens_out} out"
    cost = "unmeasured" if call.cost_usd is None else f"${call.cost_usd:.6f}"
    first = f", first byte {call.first_byte_s:.2f} s" if call.first_byte_s is not None else ""
    print(f"  #{call.seq:<3} {when}  {call.provider}  {call.model or '?'}  {call.status or '-'}"
          f"{'  streamed' if call.streamed else ''}  {call.duration_s:.2f} s{first}  tokens {tokens}  {cost}")
    for tool in call.tool_calls:
        print(f"       tool call: {tool.get('name')}({_printable(str(tool.get('arguments') or ''))[:200]})")
    if call.error:
        print(f"       error: {_printable(call.error)}")
    elif call.response:
        print(f"       response: {_printable(call.response.replace(chr(10), ' '))[:200]}")


async def _cmd_logs(args: argparse.Namespace) -> int:
    async with _client(_client_settings(args)) as client:
        if args.follow:
            async for batch in client.follow_logs(args.id):
                _print_log_lines(batch, sys.stdout)
                sys.stdout.flush()
        else:  # a page at a time: `logs` of a huge log holds one page, never the whole
            async for batch in client.read_logs(args.id):
                _print_log_lines(batch, sys.stdout)
    return EXIT_OK


async def _cmd_history(args: argparse.Namespace) -> int:
    from datetime import datetime

    from agenttui.core.wire import HIDDEN_CONTENT, to_builtins

    async with _client(_client_settings(args)) as client:
        views = await client.history(search=args.search, limit=args.limit)
    if args.json:
        print(json.dumps([v.summary() | {"created_at": v.created_at, "model_calls": to_builtins(v.model_calls)}
                          for v in views]))
        return EXIT_OK
    if not views:
        print(f"no finished test matches {args.search!r}" if args.search else "no finished tests yet")
    for v in views:
        when = datetime.fromtimestamp(v.created_at).strftime("%m-%d %H:%M")
        duration = f"{v.duration_s:.1f}s" if v.duration_s is not None else "-"
        preview = HIDDEN_CONTENT if v.content_hidden else _printable((v.response or v.error or "").replace("\n", " "))[:40]
        print(f"{v.id:>5}  {when}  {v.owner_name:<10} {v.status.value:<10} {duration:>7}  {preview}")
    return EXIT_OK


async def _cmd_queue(args: argparse.Namespace) -> int:
    from agenttui.core.wire import HIDDEN_CONTENT

    async with _client(_client_settings(args)) as client:
        queue = await client.queue()
    if args.json:
        print(json.dumps(queue.to_json()))
        return EXIT_OK
    print(f"running {queue.running}/{queue.cap} ({queue.utilization:.0f}% used), queued {queue.queued}")
    if queue.store_problem:
        print(f"stalled: {queue.store_problem}")
    for v in queue.tests:
        where = f"#{v.position} ~{v.eta_s:.0f}s" if v.position else ""
        query = HIDDEN_CONTENT if v.content_hidden else _printable(v.query)[:40]
        print(f"{v.id:>5}  {v.owner_name:<10} {v.status.value:<9} {v.priority:<6} {where:<12} {query}")
    return EXIT_OK


async def _cmd_cancel(args: argparse.Namespace) -> int:
    from agenttui.core.lifecycle import Status

    async with _client(_client_settings(args)) as client:
        view = await client.cancel(args.id)
        if view.status is Status.CANCELLED:
            print(f"test {args.id} cancelled")
            return EXIT_OK
        final = await asyncio.wait_for(client.wait(args.id), timeout=60)
        print(f"test {args.id} {final.status.value}")
        return EXIT_OK if final.status is Status.CANCELLED else exit_code_for(final)


async def _cmd_package(args: argparse.Namespace) -> int:
    from agenttui.client.hints import copy_hint
    from agenttui.packaging import PackageError

    output = args.output.resolve() if args.output else None
    async with _client(_client_settings(args)) as client:
        try:  # this process writes the zip, with this user's rights
            result = await client.package(args.id, out_dir=output)
        except PackageError as exc:
            raise UserError(f"package of test {args.id} not written: {exc}") from None
    if args.json:
        print(json.dumps({"path": str(result.path), "size": result.size, "files": list(result.files),
                          "warnings": list(result.warnings), "copy": copy_hint(result.path),
                          "url": result.url, "url_expires_at": result.url_expires_at}))
        return EXIT_OK
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(result.path)
    print(f"{result.size:,} bytes, {len(result.files)} files. From another machine: {copy_hint(result.path)}",
          file=sys.stderr)
    if result.url:  # the AWS backend also put it in S3
        print(f"download for 24 hours: {result.url}", file=sys.stderr)
    return EXIT_OK


async def _cmd_server(args: argparse.Namespace) -> int:
    """`agenttui server status|stop|restart` (agenttui.client.control)."""
    from agenttui.client.control import server_command

    return await server_command(args.action, _client_settings(args), as_json=args.json)


async def _cmd_worker(args: argparse.Namespace) -> int:
    from agenttui.engine.runtime import Engine

    settings = _settings(args)
    async with await Engine.open(settings) as engine:
        orchestrator = engine.orchestrator
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, orchestrator.stop)
        print(f"agenttui worker {orchestrator.owner_id}: working the queue (cap {settings.max_concurrent})", file=sys.stderr)
        if args.idle_exit:
            await orchestrator.wait_idle()
        else:
            await orchestrator.run()
    return EXIT_OK


async def _cmd_doctor(args: argparse.Namespace) -> int:
    """Checks on demand; each prints ok/FAIL with what to do. Exit 0 when all pass, else 3."""
    from agenttui.backends import make_backend
    from agenttui.backends.base import InfraError

    settings = _settings(args)
    failed = 0
    if settings.backend == "ecs":  # each AWS resource the settings name (agenttui.backends.ecs.doctor)
        from agenttui.backends.ecs.doctor import aws_checks

        for check in await aws_checks(settings):
            mark = "ok" if check.ok and not check.warning else ("warn" if check.ok else "FAIL")
            print(f"{mark:<5} {check.name}: {check.message}")
            failed += not check.ok
        if not failed:
            failed += await doctor_provider(args, settings)
        return EXIT_OK if not failed else EXIT_INFRA
    backend = make_backend(settings)
    try:
        await backend.check()
        print(f"ok    {settings.backend} engine: reachable")
    except InfraError as exc:
        failed += 1
        print(f"FAIL  {settings.backend} engine: {exc}")
    finally:
        await backend.close()
    if not failed:
        failed += await doctor_provider(args, settings)
    return EXIT_OK if not failed else EXIT_INFRA


async def doctor_provider(args: argparse.Namespace, settings: Any) -> int:
    """The provider part of `agenttui doctor` (agenttui.sandbox.preflight); returns how many failed."""
    from agenttui.core.domain import InvalidRequest, ProviderConfig
    from agenttui.sandbox.preflight import provider_checks
    from agenttui.engine.credentials import resolve_for_submit

    probe = None
    if settings.backend == "docker":  # reachability from a sandbox like a test's
        from agenttui.backends.docker.network import probe_from_sandbox as probe
    try:
        config = ProviderConfig(name=args.provider, model_id=args.model, options=_options_from_args(args))
    except ValueError as exc:
        print(f"FAIL  provider: {exc}")
        return 1
    try:
        checks = await provider_checks(settings, config, probe, resolve=resolve_for_submit)
    except InvalidRequest as exc:
        print(f"FAIL  {args.provider} configuration: {exc}")
        return 1
    for check in checks:
        mark = "ok" if check.ok and not check.warning else ("warn" if check.ok else "FAIL")
        print(f"{mark:<5} {check.name}: {check.message}")
    return sum(1 for c in checks if not c.ok)


COMMANDS = {
    "doctor": _cmd_doctor,
    "submit": _cmd_submit,
    "show": _cmd_show,
    "trace": _cmd_trace,
    "logs": _cmd_logs,
    "history": _cmd_history,
    "queue": _cmd_queue,
    "cancel": _cmd_cancel,
    "retry": _cmd_retry,
    "package": _cmd_package,
    "worker": _cmd_worker,
    "server": _cmd_server,  # status|stop|restart; without an action, the server runs (_run_server)
}


def main(argv: list[str] | None = None) -> int:
    argv = _normalise_argv(list(sys.argv[1:] if argv is None else argv))
    parser = build_parser()
    agent = _tui_agent_file(argv, parser)
    if agent is not None:  # `agenttui path/to/agent.py`: the TUI with that file loaded
        return _run_tui(parser.parse_args(argv[:-1]), agent)
    args = parser.parse_args(argv)
    if args.command is None:
        return _run_tui(args)
    if args.command == "server" and args.action is None:
        return _run_server(args)
    try:
        code = asyncio.run(COMMANDS[args.command](args))
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


def _run_server(args: argparse.Namespace) -> int:
    from agenttui.server.main import ServerError, run_server

    try:
        return run_server(_settings(args), foreground_log=args.foreground)
    except (UserError, codes.SettingsError) as exc:  # a bad setting or store: the client that started it reports it
        print(f"agenttui: {exc}", file=sys.stderr)
        return codes.BAD_SETTING.exit
    except ServerError as exc:
        print(f"agenttui server: {exc}", file=sys.stderr)
        return EXIT_INFRA


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
        settings = _client_settings(args)  # without pydantic unless --in-process (TUI start-up)
    except UserError as exc:
        print(f"agenttui: {exc}", file=sys.stderr)
        return EXIT_INVALID
    from agenttui.tui.launch import run_tui  # imports Textual (the only place that does)

    return run_tui(settings, agent)


if __name__ == "__main__":
    sys.exit(main())
