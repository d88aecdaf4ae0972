"""The commands that read or act on stored tests: show, trace, logs, history, queue, cancel, package.

All but `package` are plain functions on the blocking client: no asyncio, pydantic or store is
imported on their way (a light start); --in-process runs the engine here behind the same calls.
"""

from __future__ import annotations

import argparse
import json
import sys

from agenttui.cli.common import (
    EXIT_OK, UserError, blocking_client, client_settings, exit_code_for, open_client, printable,
)
from agenttui.cli.printing import print_call, print_log_lines, print_view

def cmd_show(args: argparse.Namespace) -> int:
    with blocking_client(client_settings(args)) as client:
        view = client.show(args.id)
        if args.json:
            print(json.dumps({**view.summary(), **view.to_json()}))
        else:
            print_view(view)
    return EXIT_OK


def cmd_trace(args: argparse.Namespace) -> int:
    from agenttui.core.wire import to_builtins

    with blocking_client(client_settings(args)) as client:
        trace = client.trace(args.id)
    if args.json:
        print(json.dumps(to_builtins(trace)))
        return EXIT_OK
    print(f"test {trace.test_id}: " + (trace.totals.line() if trace.totals else "no model call recorded"))
    for call in trace.calls:
        print_call(call)
    if trace.note:
        print(trace.note)
    return EXIT_OK


def cmd_logs(args: argparse.Namespace) -> int:
    with blocking_client(client_settings(args)) as client:
        if args.follow:
            for batch in client.follow_logs(args.id):
                print_log_lines(batch, sys.stdout)
                sys.stdout.flush()
        else:  # a page at a time: `logs` of a huge log holds one page, never the whole
            for batch in client.read_logs(args.id):
                print_log_lines(batch, sys.stdout)
    return EXIT_OK


def cmd_history(args: argparse.Namespace) -> int:
    from datetime import datetime

    from agenttui.core.wire import HIDDEN_CONTENT, to_builtins
    from agenttui.tui.call_text import totals_cells  # plain text, no Textual

    with blocking_client(client_settings(args)) as client:
        views = client.history(search=args.search, limit=args.limit)
    if args.json:
        print(json.dumps([v.summary() | {"created_at": v.created_at, "model_calls": to_builtins(v.model_calls)}
                          for v in views]))
        return EXIT_OK
    if not views:
        print(f"no finished test matches {args.search!r}" if args.search else "no finished tests yet")
    else:  # the model calls' totals: calls, tokens in/out, cost ("unmeasured" when unknown, never $0)
        print(f"{'id':>5}  {'created':<11}  {'owner':<10} {'status':<10} {'took':>7} {'calls':>5} {'tokens in/out':>13} "
              f"{'cost':>10}  response")
    for v in views:
        when = datetime.fromtimestamp(v.created_at).strftime("%m-%d %H:%M")
        duration = f"{v.duration_s:.1f}s" if v.duration_s is not None else "-"
        calls, tokens, cost = totals_cells(v.model_calls)
        preview = HIDDEN_CONTENT if v.content_hidden else printable((v.response or v.error or "").replace("\n", " "))[:40]
        print(f"{v.id:>5}  {when}  {v.owner_name:<10} {v.status.value:<10} {duration:>7} {calls:>5} {tokens:>13} "
              f"{cost:>10}  {preview}")
    return EXIT_OK


def cmd_queue(args: argparse.Namespace) -> int:
    from agenttui.core.wire import HIDDEN_CONTENT

    with blocking_client(client_settings(args)) as client:
        queue = client.queue()
    if args.json:
        print(json.dumps(queue.to_json()))
        return EXIT_OK
    print(f"running {queue.running}/{queue.cap} ({queue.utilization:.0f}% used), queued {queue.queued}")
    if queue.store_problem:
        print(f"stalled: {queue.store_problem}")
    for v in queue.tests:
        where = f"#{v.position} ~{v.eta_s:.0f}s" if v.position else ""
        query = HIDDEN_CONTENT if v.content_hidden else printable(v.query)[:40]
        print(f"{v.id:>5}  {v.owner_name:<10} {v.status.value:<9} {v.priority:<6} {where:<12} {query}")
    return EXIT_OK


def cmd_cancel(args: argparse.Namespace) -> int:
    from agenttui.core.lifecycle import Status

    with blocking_client(client_settings(args)) as client:
        view = client.cancel(args.id)
        if view.status is Status.CANCELLED:
            print(f"test {args.id} cancelled")
            return EXIT_OK
        final = client.wait(args.id)  # its container stopping: the server ends the wait as it ends
        print(f"test {args.id} {final.status.value}")
        return EXIT_OK if final.status is Status.CANCELLED else exit_code_for(final)


async def cmd_package(args: argparse.Namespace) -> int:
    from agenttui.client.hints import copy_hint
    from agenttui.packaging import PackageError

    output = args.output.resolve() if args.output else None
    async with open_client(client_settings(args)) as client:
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
