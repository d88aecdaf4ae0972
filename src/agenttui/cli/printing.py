"""How tests, log lines and model calls are printed on a terminal."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agenttui.cli.common import printable

if TYPE_CHECKING:
    from agenttui.core.wire import TestView

def print_log_line(record: Any, stream: Any) -> None:
    prefix = "" if record.stream in ("stdout", "system") else f"[{record.stream}] "
    stream.write(prefix + printable(record.text) + "\n")


def print_log_lines(records: list[Any], stream: Any) -> None:
    """A batch of lines at once: one look for control characters in the whole batch, and the
    escaping line by line only when one is there."""
    from agenttui.core.display import has_control

    if has_control("".join(record.text for record in records)):
        for record in records:
            print_log_line(record, stream)
        return
    stream.write("".join(
        (record.text if record.stream in ("stdout", "system") else f"[{record.stream}] {record.text}") + "\n"
        for record in records
    ))


def print_view(view: TestView) -> None:
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
        print(f"query: {printable(view.query)}")
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
    print(f"model traffic: {view.traffic_note()}")
    if view.model_calls is not None:
        print(f"model calls: {view.model_calls.line()} (agenttui trace {view.id})")
    if view.error:
        print(f"error: {printable(view.error)}")
    if view.response is not None:
        print("response:")
        print(printable(view.response))


def print_call(call: Any) -> None:
    from datetime import datetime

    when = datetime.fromtimestamp(call.started_at).strftime("%H:%M:%S")
    if call.kind not in ("call", "judge"):  # judge: a suite rubric's judge model (docs/suites.md)
        detail = call.error or f"{call.bytes_up} bytes up, {call.bytes_down} down (not read: not plain HTTP)"
        print(f"  #{call.seq:<3} {when}  {call.provider or '-'}  {call.kind}: {printable(detail)}  {call.duration_s:.2f} s")
        return
    tokens = "unmeasured" if call.tokens_in is None else f"{call.tokens_in} in / {call.tokens_out} out"
    cost = "unmeasured" if call.cost_usd is None else f"${call.cost_usd:.6f}"
    first = f", first byte {call.first_byte_s:.2f} s" if call.first_byte_s is not None else ""
    judge = "judge: " if call.kind == "judge" else ""
    print(f"  #{call.seq:<3} {when}  {judge}{call.provider}  {call.model or '?'}  {call.status or '-'}"
          f"{'  streamed' if call.streamed else ''}  {call.duration_s:.2f} s{first}  tokens {tokens}  {cost}")
    for tool in call.tool_calls:
        print(f"       tool call: {tool.get('name')}({printable(str(tool.get('arguments') or ''))[:200]})")
    if call.error:
        print(f"       error: {printable(call.error)}")
    elif call.response:
        print(f"       response: {printable(call.response.replace(chr(10), ' '))[:200]}")
