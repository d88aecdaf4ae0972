"""`submit` and `retry`: build the request from the flags, queue it, follow it to its end.

On blocking sockets (no asyncio: a light start), following from the submit's own answer, which
ends with the test's final view; --in-process runs the engine here behind the same calls."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from typing import TYPE_CHECKING, Any

from agenttui.cli.cassettes import cassette_fields, cassette_path, write_cassette
from agenttui.cli.common import EXIT_INFRA, EXIT_OK, UserError, blocking_client, client_settings, exit_code_for, options_from_args, printable, read_text
from agenttui.cli.printing import print_log_line
from agenttui.core import errors as codes

if TYPE_CHECKING:
    from agenttui.core.lifecycle import InvalidRequest
    from agenttui.core.wire import TestView

def request_from_args(args: argparse.Namespace, settings) -> Any:
    """The request's fields. Validated here only when credentials must be resolved here (or
    the engine runs here); otherwise the server validates them, with the same errors."""
    from agenttui.core.lifecycle import InvalidRequest

    fields = dict(
        agent_code=read_text(args.agent, "agent"),
        query=args.query,
        requirements=read_text(args.requirements, "requirements"),
        dockerfile=read_text(args.dockerfile, "Dockerfile"),
        provider={"name": args.provider, "model_id": args.model, "options": options_from_args(args)},
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
        **cassette_fields(args),
    )
    budget = budget_from_args(args)
    if budget:
        fields["budget"] = budget
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
        raise invalid_request(args, exc) from None


def budget_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """--max-cost, --max-tokens, --max-model-calls as the request's budget; a bad value is exit 2."""
    from agenttui.core.budget import FIELDS, check

    budget = {}
    for field in FIELDS:
        value = getattr(args, field.flag.removeprefix("--").replace("-", "_"), None)
        if value is None:
            continue
        try:
            budget[field.name] = check(field.name, value)
        except ValueError as exc:
            raise UserError(f"{field.flag} {value}: {exc}; nothing was queued") from None
    return budget


def invalid_request(args: argparse.Namespace, exc: InvalidRequest) -> UserError:
    """Each bad field of a submit, named by the flag or file that set it (exit 2)."""
    flags = {"agent_code": f"agent ({args.agent})", "timeout_s": "--timeout", "limits.memory_mb": "--memory",
             "limits.cpus": "--cpus", "limits.pids": "--pids", "query": "--query",
             "requirements": f"requirements ({args.requirements})",
             "dockerfile": f"Dockerfile ({args.dockerfile})", "provider.name": "--provider",
             "provider.model_id": "--model", "egress": "--egress", "entrypoint": "--entrypoint",
             "provider.credentials": f"--provider {args.provider} (credentials)",
             "budget.max_cost_usd": "--max-cost", "budget.max_tokens": "--max-tokens",
             "budget.max_model_calls": "--max-model-calls"}

    def flag(field: str) -> str:
        if field.startswith("provider.options."):
            return "--option " + field.removeprefix("provider.options.")
        return flags.get(field, field)

    lines = [f"{flag(field)}: {msg}" for field, msg in exc.errors.items()]
    return UserError("invalid request, nothing was queued:\n  " + "\n  ".join(lines))


def follow_to_end(client: Any, view: TestView, as_json: bool, in_process: bool) -> int:
    """Print the test's log as it comes, then its end. Ctrl-C (or SIGTERM) detaches from a test
    the server runs, and cancels one this command runs itself."""
    out = sys.stderr if as_json else sys.stdout
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        for batch in client.follow_logs(view.id):
            for record in batch:
                print_log_line(record, out)
            out.flush()
    except KeyboardInterrupt:
        if not in_process:
            # The server keeps running it: leaving the terminal never stops a test.
            print(f"\ndetached: test {view.id} keeps running; follow it with `agenttui logs {view.id} --follow`, "
                  f"stop it with `agenttui cancel {view.id}`", file=sys.stderr)
            return codes.DETACHED.exit
        # Nothing else would run an in-process test: cancel it cleanly.
        print(f"\ninterrupted: cancelling test {view.id}", file=sys.stderr)
        client.cancel(view.id)
    finally:
        signal.signal(signal.SIGTERM, previous)
    final = client.wait(view.id)  # the end the follow stream brought: no request of its own
    if as_json:
        print(json.dumps(final.summary()))
    else:
        duration = f" in {final.duration_s:.2f} s" if final.duration_s is not None else ""
        print(f"── test {final.id} {final.status.value}{duration} ──")
        if final.response is not None:
            print(printable(final.response))
        if final.error:
            print(f"error: {printable(final.error)}", file=sys.stderr)
    return exit_code_for(final)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def queue_and_follow(args: argparse.Namespace, settings, queue, sent=None) -> int:
    """Queue a test with `queue(client)` (which checks the backend first), then follow it (or not):
    on blocking sockets, or with --in-process on the engine here behind the same calls. `sent`:
    the submit already on its way (agenttui.client.early), which `queue` completes."""
    from agenttui.core.errors import InfraError

    try:
        with blocking_client(settings, sent) as client:
            view = queue(client)
            notice = None if settings.in_process else client.settings_notice()
            if notice:  # before the log: a changed setting applies only once the server restarts
                print(f"agenttui: {notice}", file=sys.stderr)
            if getattr(args, "no_wait", False):
                print(json.dumps(view.summary()) if args.json else view.id)
                return EXIT_OK
            origin = f" as a retry of test {view.parent_id}" if view.parent_id else ""
            where = f" (position {view.position})" if view.position else ""
            print(f"agenttui: test {view.id} queued{origin}{where}", file=sys.stderr)
            code = follow_to_end(client, view, args.json, settings.in_process)
            record_to = cassette_path(args)
            if record_to is not None and code != codes.DETACHED.exit:
                write_cassette(client, view.id, record_to)
            return code
    except InfraError as exc:
        print(f"agenttui: infrastructure failure, nothing was queued: {exc}", file=sys.stderr)
        return EXIT_INFRA


def sent_as_fields(request: Any, settings) -> Any:
    """The request as the server's client sends it (a dict); the engine here takes it as it is."""
    if settings.in_process or isinstance(request, dict):
        return request
    return request.model_dump(mode="json")  # credentials were resolved here (request_from_args)


def cmd_submit(args: argparse.Namespace) -> int:
    from agenttui.core.lifecycle import InvalidRequest

    settings = client_settings(args)
    queries = queries_from_args(args)
    if (args.no_wait or queries) and settings.in_process:
        raise UserError(f"{'--queries' if queries else '--no-wait'} needs the server to run the tests, and "
                        "--in-process runs them in this command: drop one of them")
    if queries:
        args.query = queries[0][1]  # the common request is checked with the first one
    request = sent_as_fields(request_from_args(args, settings), settings)
    if queries:
        return submit_many(args, settings, request, queries)

    sent = None
    if not args.no_wait and not settings.in_process:
        from agenttui.client.early import send_submit

        # On its way before the client's heavier modules load: the test starts meanwhile.
        sent = send_submit(settings, request, check_backend=True)

    def queue(client):
        try:
            return client.submit(request, check_backend=True, follow=not args.no_wait)
        except InvalidRequest as exc:
            raise invalid_request(args, exc) from None

    return queue_and_follow(args, settings, queue, sent)


def queries_from_args(args: argparse.Namespace) -> list[tuple[int, str]]:
    """--queries FILE as (line number, query) for each line that is not blank; [] without it."""
    if args.queries is None:
        if args.query is None:
            raise UserError("--query is required (or --queries FILE: one query per line)")
        return []
    if args.query is not None:
        raise UserError("give --query or --queries, not both")
    queries = [(number, line) for number, line in enumerate(read_text(args.queries, "queries").splitlines(), 1)
               if line.strip()]
    if not queries:
        raise UserError(f"--queries {args.queries}: the file holds no query (one per line)")
    return queries


def submit_many(args: argparse.Namespace, settings: Any, request: Any, queries: list[tuple[int, str]]) -> int:
    """A test per query, queued in one request (all or none); prints their ids, one per line."""
    from agenttui.core.lifecycle import InvalidRequest

    with blocking_client(settings) as client:
        client.check_backend()
        try:
            ids = client.submit_many(request, [{"query": query} for _number, query in queries])
        except InvalidRequest as exc:
            raise invalid_many(args, exc, queries) from None
    print("\n".join(str(test_id) for test_id in ids))
    return EXIT_OK


def invalid_many(args: argparse.Namespace, exc: Any, queries: list[tuple[int, str]]) -> UserError:
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
        lines.append(str(invalid_request(args, InvalidRequest(common))).split("\n", 1)[-1].strip())
    return UserError("invalid request, nothing was queued:\n  " + "\n  ".join(lines))


def cmd_retry(args: argparse.Namespace) -> int:
    from agenttui.core.lifecycle import InvalidRequest

    settings = client_settings(args)
    code = read_text(args.agent, "agent") if args.agent else None
    budget = budget_from_args(args)

    def queue(client):
        client.check_backend()
        try:
            return client.retry(args.id, query=args.query, agent_code=code, budget=budget or None)
        except InvalidRequest as exc:
            raise UserError(f"invalid retry, nothing was queued: {exc}") from None

    return queue_and_follow(args, settings, queue)
