"""Cassettes (docs/replay.md): the JSON-path difference, normalisation, matching (Nth call, then a
concurrent call's content), secrets never kept, and a record → replay round trip through the real
forwarder over Unix sockets, against a fake Ollama on loopback that sees nothing during the replay."""

import asyncio
import json

from agenttui.core.redact import Redactor
from agenttui.sandbox import cassette, recorder
from agenttui.sandbox.forwarder import TunnelHost
from tests.providers.fakes import FakeOllama
from tests.recorder.test_forwarder import Sink, plan_for

CANARY = "canary-secret-9d2f7a61c4"


def entry(content: str, answer: str = "ok", path: str = "/v1/chat/completions") -> dict:
    return {"endpoint": "openai", "method": "POST", "path": path,
            "request": {"headers": {}, "body": {"model": "m", "messages": [
                {"role": "system", "content": "be brief"}, {"role": "user", "content": content}]}},
            "response": {"status": 200, "headers": {"content-type": "application/json"}, "body": {"answer": answer}}}


def body(content: str, **extra) -> bytes:
    return json.dumps({"model": "m", "messages": [{"role": "system", "content": "be brief"},
                                                  {"role": "user", "content": content}], **extra}).encode()


def test_the_first_difference_is_named_as_a_json_path_with_both_values():
    recorded = {"messages": [{"content": "a"}, {"content": "what is a cat"}], "model": "m"}
    new = {"messages": [{"content": "a"}, {"content": "what is a dog"}], "model": "m"}
    assert cassette.first_difference(recorded, new) == ("messages[1].content", "what is a cat", "what is a dog")
    assert cassette.first_difference({"a": [1, 2]}, {"a": [1]}) == ("a[1]", 2, "(absent)")
    assert cassette.first_difference({"a": 1}, {"a": 1, "b": True}) == ("b", "(absent)", True)
    assert cassette.first_difference({"a": 1}, {"a": 1.5}) == ("a", 1, 1.5)
    assert cassette.first_difference({"a": [1, {"b": None}]}, {"a": [1, {"b": None}]}) is None


def test_keys_that_vary_by_themselves_are_left_out_of_matching():
    replayer = cassette.Replayer(cassette.cassette_document([entry("hi")]), "strict", Redactor())
    found = replayer.find("openai", "POST", "/v1/chat/completions", body("hi", user="u-42", request_id="r-9"))
    assert not isinstance(found, cassette.Miss)
    custom = cassette.cassette_document([entry("hi")], {"ignore_keys": ["temperature"]})
    replayer = cassette.Replayer(custom, "strict", Redactor())
    assert not isinstance(replayer.find("openai", "POST", "/v1/chat/completions", body("hi", temperature=0.3)),
                          cassette.Miss)


def test_the_nth_call_matches_the_nth_recording_and_concurrent_calls_match_by_content():
    document = cassette.cassette_document([entry("one", "A"), entry("two", "B"), entry("three", "C")])
    replayer = cassette.Replayer(document, "strict", Redactor())
    answers = [replayer.find("openai", "POST", "/v1/chat/completions", body(q))["response"]["body"]["answer"]
               for q in ("one", "three", "two")]
    assert answers == ["A", "C", "B"]
    spent = replayer.find("openai", "POST", "/v1/chat/completions", body("one"))
    assert isinstance(spent, cassette.Miss) and "3 recorded call(s) of it and all were used" in spent.message
    assert replayer.first_miss() == spent.message


def test_a_miss_names_the_place_and_both_values():
    replayer = cassette.Replayer(cassette.cassette_document([entry("what is a cat")]), "strict", Redactor())
    miss = replayer.find("openai", "POST", "/v1/chat/completions", body("what is a dog"))
    assert isinstance(miss, cassette.Miss)
    assert miss.message == ('replay miss: call 1 of POST /v1/chat/completions (openai) differs from the recording '
                            'at messages[1].content: recorded "what is a cat", now "what is a dog"')


def test_secrets_and_signatures_are_never_kept():
    taped = cassette.Recorded("openai", "POST", "/v1/chat/completions", [
        ("Host", "x"), ("Authorization", "Bearer " + CANARY), ("x-api-key", CANARY), ("api-key", CANARY),
        ("X-Amz-Security-Token", "tok"), ("X-Amz-Date", "20260101T000000Z"), ("X-Custom", "key " + CANARY),
        ("Content-Length", "10"), ("User-Agent", "OpenAI/Python 1.109.1"),
    ], 0.0, bytearray(body("my key is " + CANARY)))
    taped.status = 200
    taped.response_headers = [("Content-Type", "application/json"), ("Set-Cookie", "s=" + CANARY)]
    taped.chunks = [(0.1, json.dumps({"echo": CANARY}).encode())]
    kept = taped.entry(Redactor([CANARY]))
    assert kept["request"]["headers"] == {"host": "x", "user-agent": "OpenAI/Python 1.109.1"}
    assert kept["response"]["headers"] == {"content-type": "application/json"}
    assert CANARY not in json.dumps(kept) and "[redacted]" in kept["request"]["body"]["messages"][1]["content"]


def test_a_bad_cassette_file_is_named_with_its_problem():
    for document, says in (({"exchanges": []}, "is not an agenttui cassette"),
                           ({"agenttui_cassette": 1, "exchanges": [{"endpoint": "x"}]}, "exchanges[0] needs")):
        try:
            cassette.check_document(document, "cassette file c.json")
        except cassette.CassetteError as exc:
            assert says in str(exc) and "c.json" in str(exc)
        else:
            raise AssertionError("accepted")


def chat(content: str, stream: bool) -> bytes:
    data = json.dumps({"model": "llama3.2", "stream": stream, "messages": [{"role": "user", "content": content}]}).encode()
    return (b"POST /api/chat HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n"
            b"Connection: close\r\n\r\n%s") % (CANARY.encode(), len(data), data)


async def roundtrip(path, raw: bytes) -> tuple[int, bytes, bool]:
    reader, writer = await asyncio.open_unix_connection(str(path))
    writer.write(raw)
    answer = await reader.read()
    writer.close()
    head, _, rest = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1])
    chunked = b"transfer-encoding: chunked" in head.lower()
    if chunked:
        data, pieces = rest, []
        while data:
            size, _, data = data.partition(b"\r\n")
            if int(size, 16) == 0:
                break
            pieces.append(data[: int(size, 16)])
            data = data[int(size, 16) + 2:]
        return status, b"".join(pieces), True
    return status, rest, False


def test_a_recorded_stream_replays_as_a_stream_with_nothing_upstream(tmp_path):
    async def main(port, fake):
        sink, tape = Sink(), cassette.Tape(Redactor([CANARY]))
        recorder.attach("t1", sink)
        cassette.attach_tape("t1", tape)
        host = TunnelHost(tmp_path, plan_for(port), "t1")
        await host.start()
        try:
            live = [await roundtrip(tmp_path / "0.sock", chat("abc", True)),
                    await roundtrip(tmp_path / "0.sock", chat("xyz", False))]
            await recorder.settled()
        finally:
            await host.close()
            recorder.detach("t1", sink)
            cassette.detach("t1")
        document = json.loads(cassette.dumps(tape.document()))
        seen = len(fake.requests)
        replayer = cassette.Replayer(document, "strict", Redactor([CANARY]))
        cassette.attach_replayer("t2", replayer)
        host = TunnelHost(tmp_path, plan_for(port), "t2")
        await host.start()
        try:
            replayed = [await roundtrip(tmp_path / "0.sock", chat("abc", True)),
                        await roundtrip(tmp_path / "0.sock", chat("abd", False)),
                        await roundtrip(tmp_path / "0.sock", chat("xyz", False))]
        finally:
            await host.close()
            cassette.detach("t2")
        return document, live, replayed, len(fake.requests) - seen, replayer

    with FakeOllama() as fake:
        document, live, replayed, upstream, replayer = asyncio.run(main(fake.port, fake))
    assert upstream == 0
    assert [e["path"] for e in document["exchanges"]] == ["/api/chat", "/api/chat"]
    streamed = document["exchanges"][0]["response"]
    assert len(streamed["chunks"]) > 1 and len(streamed["offsets_s"]) == len(streamed["chunks"])
    assert CANARY not in json.dumps(document)
    assert replayed[0] == live[0] and replayed[0][2] is True  # the same bytes, chunked again
    assert replayed[2][:2] == live[1][:2]
    status, error, _ = replayed[1]
    assert status == 409 and "messages[0].content" in json.loads(error)["error"]
    assert replayer.first_miss().endswith('at messages[0].content: recorded "xyz", now "abd"')


def test_cassette_show_has_a_line_per_call_with_its_question_and_answer():
    from agenttui.cli.cassettes import show_lines

    streamed = entry("name a quiet bird")
    streamed["response"] = {"status": 200, "headers": {"content-type": "text/event-stream"}, "chunks": [
        'data: {"choices": [{"delta": {"content": "the "}}]}\n\n', 'data: {"choices": [{"delta": {"content": "owl"}}]}\n\n',
        "data: [DONE]\n\n"], "offsets_s": [0.01, 0.02, 0.03]}
    ollama = {"endpoint": "ollama", "method": "POST", "path": "/api/chat",
              "request": {"body": {"model": "llama3.2", "messages": [{"role": "user", "content": "hi"}]}},
              "response": {"status": 200, "chunks": ['{"message": {"content": "he"}}\n', '{"message": {"content": "llo"}}\n'],
                           "headers": {"content-type": "application/x-ndjson"}}}
    lines = show_lines(cassette.cassette_document([entry("what is one plus one", "ignored"), streamed, ollama]))
    assert lines[0] == "#1 openai POST /v1/chat/completions m [200 whole] asks: 'what is one plus one' → ''"
    assert lines[1] == "#2 openai POST /v1/chat/completions m [200 streamed] asks: 'name a quiet bird' → 'the owl'"
    assert lines[2] == "#3 ollama POST /api/chat llama3.2 [200 streamed] asks: 'hi' → 'hello'"


def test_bad_record_and_replay_flags_are_refused_with_the_fix(tmp_path):
    import argparse

    import pytest

    from agenttui.cli.cassettes import cassette_fields
    from agenttui.cli.common import UserError

    def flags(**given):
        values = dict(record=None, replay=None, replay_mode=None, replay_realtime=False, egress=None, no_wait=False,
                      queries=None)
        return argparse.Namespace(**{**values, **given})

    bad = tmp_path / "bad.json"
    bad.write_text("not json")
    good = tmp_path / "good.json"
    good.write_text(cassette.dumps(cassette.cassette_document([entry("hi")])))
    for given, says in (
        (dict(replay=bad), f"cassette file {bad} is not JSON"),
        (dict(replay=tmp_path / "none.json"), "does not exist"),
        (dict(replay=good, egress="full"), "--egress full: --record and --replay need --egress provider-only"),
        (dict(record=good, replay=good), "not both"),
        (dict(record=tmp_path / "no" / "c.json"), "does not exist"),
        (dict(replay_mode="strict"), "go with --replay CASSETTE"),
        (dict(replay=good, no_wait=True), "drop --no-wait"),
    ):
        with pytest.raises(UserError, match=None) as caught:
            cassette_fields(flags(**given))
        assert says in str(caught.value), (given, str(caught.value))
    fields = cassette_fields(flags(replay=good, replay_mode="new-calls-live"))
    assert fields["replay"]["mode"] == "new-calls-live" and fields["replay"]["cassette"]["exchanges"][0]["path"]
    assert cassette_fields(flags(record=tmp_path / "c.json")) == {"record": True}


def test_a_realtime_replay_keeps_the_recorded_pace_and_a_miss_is_not_retried(tmp_path):
    import time

    from tests.recorder.test_forwarder import plan_for as plan

    paced = {"endpoint": "ollama", "method": "POST", "path": "/api/chat",
             "request": {"body": json.loads(chat("abc", True).split(b"\r\n\r\n", 1)[1])},
             "response": {"status": 200, "headers": {"content-type": "application/x-ndjson"},
                          "chunks": ['{"a": 1}\n', '{"b": 2}\n'], "offsets_s": [0.0, 0.4]}}

    async def main():
        replayer = cassette.Replayer(cassette.cassette_document([paced]), "strict", Redactor(), realtime=True)
        cassette.attach_replayer("t3", replayer)
        host = TunnelHost(tmp_path, plan(9), "t3")  # port 9: nothing listens, nothing is opened
        await host.start()
        try:
            began = time.monotonic()
            answer = await roundtrip(tmp_path / "0.sock", chat("abc", True))
            took = time.monotonic() - began
            reader, writer = await asyncio.open_unix_connection(str(tmp_path / "0.sock"))
            writer.write(chat("abd", True))
            miss = await reader.read()
            writer.close()
        finally:
            await host.close()
            cassette.detach("t3")
        return answer, took, miss

    answer, took, miss = asyncio.run(main())
    assert answer == (200, b'{"a": 1}\n{"b": 2}\n', True)
    assert took >= 0.4  # the second chunk waited for its recorded offset
    assert b"409 " in miss.split(b"\r\n", 1)[0] and b"x-should-retry: false" in miss.lower()


def test_the_installed_command_ends_a_headless_command_with_its_whole_output_and_its_code(tmp_path):
    """`agenttui` (pyproject's script) ends a blocking command without the interpreter's teardown:
    what it printed still reaches a pipe whole, and its exit code is the command's."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from agenttui.cli import main

    many = tmp_path / "many.json"
    many.write_text(cassette.dumps(cassette.cassette_document([entry(f"question number {n}") for n in range(400)])))
    binary = Path(sys.executable).parent / "agenttui"
    env = {**{k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}, "XDG_CONFIG_HOME": str(tmp_path)}
    shown = subprocess.run([str(binary), "cassette", "show", str(many)], capture_output=True, text=True, env=env,
                           timeout=60)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert len(lines) == 401 and lines[-1].startswith("#400 ") and "question number 399" in lines[-1]
    missing = subprocess.run([str(binary), "cassette", "show", str(tmp_path / "none.json")], capture_output=True,
                             text=True, env=env, timeout=60)
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    assert main(["cassette", "show", str(tmp_path / "none.json")]) == 2  # in this process, main only returns
