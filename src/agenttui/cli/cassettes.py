"""`submit --record/--replay` on the client side, and `agenttui cassette show FILE` (docs/replay.md).

The cassette file is the user's: `submit --record` writes it here, in the user's own process and
with their rights, from what the server's `trace` answers once the test has ended (a server never
writes into a user's folder). `--replay` reads it here and sends it in the test's request.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from agenttui.cli.common import UserError, read_text


def read_cassette(path: Path) -> dict[str, Any]:
    from agenttui.sandbox.cassette import CassetteError, check_document  # a submit without cassettes never loads it

    text = read_text(path, "cassette")
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise UserError(f"cassette file {path} is not JSON ({exc}); record one with `agenttui submit --record FILE`") from None
    try:
        return check_document(document, f"cassette file {path}")
    except CassetteError as exc:
        raise UserError(str(exc)) from None


def cassette_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The request's `record` / `replay` fields from submit's flags (none when neither is given)."""
    record, replay = getattr(args, "record", None), getattr(args, "replay", None)
    if record is None and replay is None:
        if getattr(args, "replay_mode", None) or getattr(args, "replay_realtime", False):
            raise UserError("--replay-mode and --replay-realtime go with --replay CASSETTE")
        return {}
    if record is not None and replay is not None:
        raise UserError("give --record or --replay, not both (--replay-mode new-calls-live adds new calls "
                        "to the replayed cassette)")
    if args.egress is not None and args.egress.strip().lower() != "provider-only":
        raise UserError(f"--egress {args.egress}: --record and --replay need --egress provider-only "
                        "(the model calls must pass agenttui's forwarder)")
    if getattr(args, "no_wait", False) or getattr(args, "queries", None) is not None:
        raise UserError("--record and --replay take one test that this command waits for: drop --no-wait / --queries")
    if record is not None:
        if record.is_dir():
            raise UserError(f"--record {record} is a folder; name the cassette file to write")
        if not record.parent.is_dir():
            raise UserError(f"--record {record}: the folder {record.parent} does not exist")
        return {"record": True}
    return {"replay": {"cassette": read_cassette(replay), "mode": args.replay_mode or "strict",
                       "realtime": bool(args.replay_realtime)}}


def cassette_path(args: argparse.Namespace) -> Path | None:
    """Where this submit writes a cassette: --record's file, or --replay's in new-calls-live mode."""
    if getattr(args, "record", None) is not None:
        return args.record
    if getattr(args, "replay", None) is not None and args.replay_mode == "new-calls-live":
        return args.replay
    return None


def write_cassette(client: Any, test_id: int, path: Path) -> Any:
    """The test's recorded exchanges, from the server's `trace`, written to `path` (atomically).
    With a blocking client it writes at once; with an asyncio one it returns the coroutine to await."""
    trace = client.trace(test_id)
    if hasattr(trace, "__await__"):  # an asyncio client's
        async def when_read() -> None:
            save_cassette(test_id, await trace, path)

        return when_read()
    save_cassette(test_id, trace, path)
    return None


def save_cassette(test_id: int, trace: Any, path: Path, *, quiet: bool = False) -> None:
    """The trace's cassette written to `path` atomically; `quiet`: no line about it (a suite says
    once what it wrote)."""
    if trace.cassette is None:
        print(f"agenttui: test {test_id} recorded no new model exchange; {path} is unchanged", file=sys.stderr)
        return
    import tempfile

    from agenttui.sandbox.cassette import dumps

    handle, temporary = tempfile.mkstemp(prefix=".cassette-", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(dumps(trace.cassette))
        os.chmod(temporary, 0o666 & ~_umask())  # a file meant to be committed, as the user's umask allows
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    if quiet:
        return
    count = len(trace.cassette.get("exchanges", []))
    print(f"agenttui: wrote {count} exchange(s) to {path}", file=sys.stderr)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# ------------------------------------------------------------------ agenttui cassette show

WORDS = 8


def _first_words(text: Any, words: int = WORDS) -> str:
    if not isinstance(text, str):
        text = "" if text is None else json.dumps(text, ensure_ascii=False)
    parts = text.split()
    return " ".join(parts[:words]) + (" …" if len(parts) > words else "")


def _last_message(body: Any) -> str:
    if not isinstance(body, dict):
        return ""
    messages = body.get("messages")
    if isinstance(messages, list) and messages and isinstance(messages[-1], dict):
        content = messages[-1].get("content")
        if isinstance(content, list):  # Bedrock Converse and Anthropic: blocks, of which the text ones
            content = " ".join(b["text"] for b in content if isinstance(b, dict) and isinstance(b.get("text"), str))
        return _first_words(content)
    return _first_words(body.get("prompt") or body.get("input") or body.get("inputText") or "")


def _event_text(event: dict[str, Any]) -> str:
    """The text an AWS event-stream message adds (Bedrock ConverseStream, or an InvokeModel stream's
    chunk in its vendor's shape); a tool call's first message adds "[tool call]"."""
    payload = event.get("payload")
    if not isinstance(payload, dict):
        return ""
    chunk = payload.get("bytes_json")
    if isinstance(chunk, dict):
        if (chunk.get("content_block") or {}).get("type") == "tool_use":
            return " [tool call] "
        delta = chunk.get("delta") if isinstance(chunk.get("delta"), dict) else {}
        return delta.get("text") or chunk.get("outputText") or chunk.get("generation") or ""
    if isinstance(payload.get("start"), dict) and "toolUse" in payload["start"]:
        return " [tool call] "
    delta = payload.get("delta")
    return (delta.get("text") or "") if isinstance(delta, dict) else ""


def _answer(response: dict[str, Any]) -> str:
    """The answer's text: a JSON answer's message, or a stream's pieces joined (SSE, NDJSON, or an
    AWS event stream's messages)."""
    if "events" in response:
        return _first_words("".join(_event_text(e) for e in response["events"] if isinstance(e, dict)))
    if "chunks" in response:
        pieces: list[str] = []
        for line in "".join(response["chunks"]).splitlines():
            line = line.removeprefix("data:").strip()
            if not line or line == "[DONE]":
                continue
            try:
                pieces.append(_text_of(json.loads(line)))
            except ValueError:
                continue
        return _first_words("".join(pieces))
    body = response.get("body", response.get("body_text", ""))
    return _first_words(_text_of(body) if isinstance(body, dict) else body)


def _text_of(body: Any) -> str:
    if not isinstance(body, dict):
        return ""
    choices = body.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        part = choices[0].get("delta") or choices[0].get("message") or {}
        if part.get("tool_calls"):
            return "[tool call] "
        return part.get("content") or choices[0].get("text") or ""
    message = body.get("message")
    if isinstance(message, dict):
        if message.get("tool_calls"):
            return "[tool call] "
        return message.get("content") or ""
    output = body.get("output")  # Bedrock Converse
    converse = output.get("message") if isinstance(output, dict) else None
    blocks = converse.get("content") if isinstance(converse, dict) else body.get("content")
    if isinstance(blocks, list):  # Converse's blocks, or an Anthropic body's
        return "".join(b.get("text") or (" [tool call] " if "toolUse" in b or b.get("type") == "tool_use" else "")
                       for b in blocks if isinstance(b, dict))
    results = body.get("results")  # Amazon Titan
    if isinstance(results, list) and results and isinstance(results[0], dict):
        return results[0].get("outputText") or ""
    return body.get("response") or body.get("generation") or ""


def show_lines(document: dict[str, Any]) -> list[str]:
    lines = []
    for number, entry in enumerate(document["exchanges"], 1):
        body = entry["request"].get("body")
        model = body.get("model", "?") if isinstance(body, dict) else "?"
        if entry["path"].startswith("/model/"):  # Bedrock: the model is the path's
            model = unquote(entry["path"].split("/")[2])
        response = entry["response"]
        kind = "streamed" if "chunks" in response or "events" in response else "whole"
        lines.append(f"#{number} {entry['endpoint']} {entry['method']} {entry['path']} {model} "
                     f"[{response['status']} {kind}] asks: {_last_message(body)!r} → {_answer(response)!r}")
    return lines


def cmd_cassette(args: argparse.Namespace) -> int:
    document = read_cassette(args.file)
    lines = show_lines(document)
    print(f"{args.file}: {len(lines)} exchange(s)")
    for line in lines:
        print(line)
    return 0
