"""How recorded model calls read in the TUI (no Textual): a call's row in the calls view, its
whole text (messages, response, tool calls, error) and a test's totals in a table cell.

Everything stored came from the agent or its model: it goes through `printable` before it
reaches the screen. Unknown tokens or cost read "unmeasured", never 0 (docs/recorder.md)."""

from __future__ import annotations

import json
import time
from typing import Any

from agenttui.core.display import printable
from agenttui.core.wire import CallTotals, ModelCallView
from agenttui.tui.formatting import LocalTime, clock_time, printable_text

UNMEASURED = "unmeasured"
MODEL_WIDTH = 24  # a model's name in the calls table (the detail shows it whole)


def tokens_short(count: int | None) -> str:
    """1234 -> 1.2k, 2_500_000 -> 2.5M; None -> '?'."""
    if count is None:
        return "?"
    if count < 1000:
        return str(count)
    if count < 1_000_000:
        return f"{count / 1000:.1f}k"
    return f"{count / 1_000_000:.1f}M"


def cost_short(cost_usd: float | None) -> str:
    """$0 (a local model), $0.0021 under a cent, $1.25 from a cent; None -> 'unmeasured'."""
    if cost_usd is None:
        return UNMEASURED
    if cost_usd == 0:
        return "$0"
    if cost_usd < 0.01:
        return f"${cost_usd:.4f}"
    return f"${cost_usd:.2f}"


def totals_cells(totals: CallTotals | None) -> tuple[str, str, str]:
    """A test's (calls, tokens in/out, cost) for a history table: '-' when nothing was recorded;
    a cost some calls could not price reads '≥' what was measured."""
    if totals is None:
        return "-", "-", "-"
    calls = f"{totals.calls}+" if totals.truncated else str(totals.calls)
    if totals.tokens_in is None and totals.tokens_out is None:
        tokens = UNMEASURED if totals.calls else "-"
    else:
        tokens = f"{tokens_short(totals.tokens_in)}/{tokens_short(totals.tokens_out)}"
    if not totals.calls:
        cost = "-"
    elif totals.cost_usd is None:
        cost = UNMEASURED
    else:
        cost = ("≥" if totals.unmeasured else "") + cost_short(totals.cost_usd)
    return calls, tokens, cost


def latency(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1000:.0f}ms" if seconds < 1 else f"{seconds:.2f}s"


def call_status(call: ModelCallView) -> str:
    """The HTTP status, or what stands for it: 'error' (no answer), 'conn' (bytes only), 'cap'."""
    if call.kind == "connection":
        return "error" if call.error else "conn"
    if call.kind == "truncated":
        return "cap"
    if call.status is not None:
        return str(call.status)
    return "error" if call.error else "-"


def call_failed(call: ModelCallView) -> bool:
    return bool(call.error) or (call.status is not None and call.status >= 400)


def call_cells(call: ModelCallView) -> tuple[str, str, str, str, str, str, str]:
    """#, model, status, tokens in, tokens out, latency, cost."""
    if call.kind == "call":
        model = printable(call.model or "?")
        if len(model) > MODEL_WIDTH:
            model = model[: MODEL_WIDTH - 1] + "…"
        return (
            str(call.seq), model, call_status(call), tokens_short(call.tokens_in), tokens_short(call.tokens_out),
            latency(call.duration_s), cost_short(call.cost_usd),
        )
    what = "(calls past the cap)" if call.kind == "truncated" else f"({call.provider or '?'} connection)"
    return str(call.seq), what, call_status(call), "", "", latency(call.duration_s), ""


def call_summary(call: ModelCallView, localtime: LocalTime = time.localtime) -> list[str]:
    """The lines above a call's texts: what, when, how long, how much."""
    when = clock_time(call.started_at, localtime, "%H:%M:%S")
    if call.kind == "truncated":
        return [f"#{call.seq} · {when} · the cap of stored calls was reached"]
    if call.kind == "connection":
        return [
            f"#{call.seq} · {call.provider or '?'} · connection not read (not plain HTTP) · {when}",
            f"{latency(call.duration_s)} · {call.bytes_up:,} bytes up / {call.bytes_down:,} down",
        ]
    status = f"HTTP {call.status}" if call.status is not None else "no answer"
    head = [f"#{call.seq}", call.provider or "?", printable(call.model or "?"), status]
    if call.streamed:
        head.append("streamed")
    head.append(when)
    first = f" · first byte {latency(call.first_byte_s)}" if call.first_byte_s is not None else ""
    tokens = UNMEASURED if call.tokens_in is None and call.tokens_out is None else (
        f"{_count(call.tokens_in)} in / {_count(call.tokens_out)} out")
    cost = UNMEASURED if call.cost_usd is None else f"${call.cost_usd:.6f}"
    where = f"{call.method or ''} {printable(call.path or '')}".strip()
    return [
        " · ".join(head),
        f"latency {latency(call.duration_s)}{first} · tokens {tokens} · cost {cost}",
        f"{where} · {call.bytes_up:,} bytes up / {call.bytes_down:,} down" if where else
        f"{call.bytes_up:,} bytes up / {call.bytes_down:,} down",
    ]


def _count(value: int | None) -> str:
    return "?" if value is None else f"{value:,}"


def call_sections(call: ModelCallView) -> list[tuple[str, str]]:
    """(heading, text) of what a call said: its messages, response, tool calls and error; the
    texts escaped (newlines kept) and whole as stored."""
    sections: list[tuple[str, str]] = []
    if call.error:
        sections.append(("Error", printable_text(call.error)))
    if call.request is not None:
        sections.append(("Messages", messages_text(call.request)))
    if call.response:
        sections.append(("Response", printable_text(call.response)))
    if call.tool_calls:
        sections.append(("Tool calls", "\n".join(tool_call_text(tool) for tool in call.tool_calls)))
    if call.kind == "call" and call.request is None and not call.response and not call.error:
        sections.append(("Messages", "(not read: the request or the answer was not JSON, or too long)"))
    return sections


def tool_call_text(tool: Any) -> str:
    if not isinstance(tool, dict):
        return printable(str(tool))
    arguments = tool.get("arguments")
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments, ensure_ascii=False) if arguments is not None else ""
    return printable(f"{tool.get('name') or '?'}({arguments})")


def messages_text(request: str) -> str:
    """A request's messages as `role: content` paragraphs when they are the chat shape (OpenAI,
    Ollama); a prompt as itself; anything else (cut by the size cap, another shape) as stored."""
    try:
        data = json.loads(request)
    except ValueError:
        return printable_text(request)
    if isinstance(data, str):
        return printable_text(data)
    if isinstance(data, dict) and "prompt" in data:
        return printable_text(f"system: {_content(data.get('system'))}\n\nprompt: {_content(data['prompt'])}")
    if isinstance(data, list) and all(isinstance(m, dict) for m in data):
        return "\n\n".join(printable_text(_message(m)) for m in data)
    return printable_text(json.dumps(data, indent=2, ensure_ascii=False))


def _message(message: dict[str, Any]) -> str:
    role = str(message.get("role") or "?")
    text = _content(message.get("content"))
    for tool in message.get("tool_calls") or []:
        function = tool.get("function", tool) if isinstance(tool, dict) else {}
        text += ("\n" if text else "") + "→ " + tool_call_text(function)
    if message.get("tool_call_id"):
        role += f" ({message['tool_call_id']})"
    return f"{role}: {text}"


def _content(content: Any) -> str:
    """A message's content: a string, or the text parts of a list of parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
            elif isinstance(part, dict):
                parts.append(f"[{part.get('type', 'part')}]")
            else:
                parts.append(str(part))
        return "\n".join(parts)
    return json.dumps(content, ensure_ascii=False)
