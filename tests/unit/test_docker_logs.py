"""The Docker backend's pure parts: log frame decoding, the resumable cursor, build-failure
classification and requirement normalization (no engine needed)."""

from __future__ import annotations

import random

import pytest

from agenttui.backends.base import BuildError, InfraError
from agenttui.backends.docker.images import classify_build_failure, normalize_requirements
from agenttui.backends.docker.logstream import (
    STDERR,
    STDOUT,
    LogDecoder,
    format_docker_time,
    parse_docker_time,
    split_frames,
)
from agenttui.harness import RESULT_TAG

_SECOND = 1_000_000_000
T0 = 1_700_000_000 * _SECOND
CHUNK = 16 * 1024


def docker_messages(seed: int, count: int = 400) -> list[tuple[int, int, bytes]]:
    """What json-file stores: per stream, lines split into 16 KiB partial messages that share
    the first one's stamp; stamps rise per stream; streams interleave with small reorders."""
    rng = random.Random(seed)
    clocks = {STDOUT: T0, STDERR: T0}
    per_stream: list[tuple[int, int, bytes]] = []
    for number in range(count):
        stream = STDERR if rng.random() < 0.3 else STDOUT
        clocks[stream] += rng.choice([0, 1, 1000, 50_000])  # 0: same-nanosecond stamps
        stamp = clocks[stream]
        size = rng.choice([0, 5, 80, 80, 80, CHUNK - 3, CHUNK * 2 + 100])
        body = f"{number}:".encode() + b"x" * size
        chunks = [body[i : i + CHUNK] for i in range(0, len(body), CHUNK)] or [b""]
        for index, chunk in enumerate(chunks):
            last = index == len(chunks) - 1
            per_stream.append((stream, stamp, chunk + (b"\n" if last else b"")))
    # File order: by stamp, but a message may land just after a slightly newer one.
    keyed = [(stamp + rng.choice([0, 0, 0, 2000]), i, m) for i, m in enumerate(per_stream)]
    ordered = [m for _k, _i, m in sorted(keyed)]
    # Keep each stream's own order (one writer per stream).
    result, queues = [], {STDOUT: [], STDERR: []}
    for m in per_stream:
        queues[m[0]].append(m)
    for m in ordered:
        result.append(queues[m[0]].pop(0))
    return result


def read(messages, cursor=None, max_line=100_000):
    decoder = LogDecoder(max_line, cursor)
    since = parse_docker_time(cursor.split("|")[0]) if cursor else None
    lines = []
    for stream, stamp, data in messages:
        if since is not None and stamp < since:
            continue  # what Docker's `since` filter does
        lines.extend(decoder.feed(stream, stamp, data))
    lines.extend(decoder.finish())
    return lines


def by_stream(lines):
    return {s: [line.text for line in lines if line.stream == s] for s in ("stdout", "stderr")}


@pytest.mark.parametrize("seed", range(6))
def test_resume_from_any_point_is_gapless_and_duplicate_free(seed):
    messages = docker_messages(seed)
    full = by_stream(read(messages))
    assert sum(map(len, full.values())) == 400
    for cut in range(0, len(messages) + 1, 7):
        decoder = LogDecoder(100_000)
        before = []
        for stream, stamp, data in messages[:cut]:
            before.extend(decoder.feed(stream, stamp, data))
        cursor = decoder.cursor()
        after = read(messages, cursor)
        combined = by_stream(before + after)
        assert combined == full, f"seed {seed} cut {cut} cursor {cursor}"


def test_resume_twice_in_a_row():
    messages = docker_messages(42)
    full = by_stream(read(messages))
    first = LogDecoder(100_000)
    got = []
    for m in messages[:150]:
        got.extend(first.feed(*m))
    cursor = first.cursor()
    since = parse_docker_time(cursor.split("|")[0])
    second = LogDecoder(100_000, cursor)
    remaining = [m for m in messages if m[1] >= since]
    for m in remaining[:120]:
        got.extend(second.feed(*m))
    got.extend(read(messages, second.cursor()))
    assert by_stream(got) == full


def test_long_line_is_capped_without_buffering():
    decoder = LogDecoder(1000)
    chunk = b"y" * CHUNK
    for _ in range(50 * 1024 * 1024 // CHUNK):  # a 50 MB line without newline
        assert decoder.feed(STDOUT, T0, chunk) == []
        assert decoder.buffered_chars <= 1000
    (line,) = decoder.feed(STDOUT, T0, b"tail\n")
    assert line.text == "y" * 1000 + f" …[line truncated: {50 * 1024 * 1024 - 1000 + 4} bytes]"
    (line,) = decoder.feed(STDOUT, T0 + 1, b"next\n")
    assert line.text == "next"


def test_invalid_utf8_is_replaced_and_split_characters_survive():
    decoder = LogDecoder(1000)
    euro = "€".encode()
    assert decoder.feed(STDOUT, T0, b"a" + euro[:1]) == []
    (line,) = decoder.feed(STDOUT, T0, euro[1:] + b"\xff\xfe b\r\n")
    assert line.text == "a€\ufffd\ufffd b"
    assert line.stream == "stdout"


def test_result_record_is_not_capped():
    decoder = LogDecoder(300)
    record = f"{RESULT_TAG} nonce {{\"response\": \"{'r' * 5000}\"}}".encode()
    (line,) = decoder.feed(STDOUT, T0, record + b"\n")
    assert line.text == record.decode()


def test_streams_are_kept_apart():
    decoder = LogDecoder(1000)
    assert decoder.feed(STDOUT, T0, b"half ") == []
    (err,) = decoder.feed(STDERR, T0 + 5, b"oops\n")
    (out,) = decoder.feed(STDOUT, T0, b"line\n")
    assert (err.stream, err.text) == ("stderr", "oops")
    assert (out.stream, out.text, out.ts) == ("stdout", "half line", T0 / 1e9)


def test_cursor_format_and_bad_cursor():
    decoder = LogDecoder(1000)
    decoder.feed(STDOUT, T0 + 123, b"a\n")
    stamp, out, err = decoder.cursor().split("|")
    assert stamp.endswith("Z") and len(stamp) == 30
    assert (int(out), int(err)) == (1, 0)
    with pytest.raises(ValueError, match="invalid log cursor"):
        LogDecoder(1000, "yesterday|1")


def test_split_frames():
    frame = lambda kind, data: bytes([kind, 0, 0, 0]) + len(data).to_bytes(4, "big") + data
    buffer = bytearray(frame(1, b"ts a\n") + frame(2, b"ts b\n") + frame(1, b"ts c")[:6])
    frames, used = split_frames(buffer)
    assert frames == [(1, b"ts a\n"), (2, b"ts b\n")]
    assert used == len(buffer) - 6
    with pytest.raises(InfraError):
        split_frames(bytearray(b"garbage!garbage!"))


def test_docker_time_round_trip():
    text = "2024-05-01T10:00:00.123456789Z"
    ns = parse_docker_time(text)
    assert format_docker_time(ns) == text
    assert parse_docker_time("2024-05-01T10:00:00.5Z") == parse_docker_time(
        "2024-05-01T12:00:00.500000000+02:00"
    )
    assert parse_docker_time("not a time") is None


def test_normalize_requirements():
    text = "# comment\nSix==1.16.0  # pinned\n\nrequests>=2 \nsix==1.16.0\n"
    assert normalize_requirements(text) == "requests>=2\nsix==1.16.0\n"
    assert normalize_requirements("  \n# only comments\n") == ""


PIP_NOT_FOUND = [
    "ERROR: Could not find a version that satisfies the requirement nope==9.9 (from versions: none)",
    "ERROR: No matching distribution found for nope==9.9",
]
PIP_TLS = [
    "Could not fetch URL https://pypi.org/simple/six/: There was a problem confirming the ssl "
    "certificate: HTTPSConnectionPool(host='pypi.org', port=443): Max retries exceeded",
    *PIP_NOT_FOUND,
]
RUN_FAILED = "The command '/bin/sh -c python3 -m pip install' returned a non-zero code: 1"


def test_classify_build_failures():
    user = classify_build_failure(RUN_FAILED, PIP_NOT_FOUND, custom=False)
    assert isinstance(user, BuildError)
    assert "No matching distribution found for nope==9.9" in str(user)
    assert "nope==9.9" in user.log
    assert isinstance(classify_build_failure(RUN_FAILED, PIP_TLS, custom=False), InfraError)
    disk = classify_build_failure("write /var/lib/docker/x: no space left on device", [], False)
    assert isinstance(disk, InfraError)
    assert isinstance(classify_build_failure(RUN_FAILED, ["boom"], custom=True), BuildError)
    assert isinstance(classify_build_failure("unexpected EOF", [], custom=False), InfraError)


def test_a_never_ending_line_does_not_pin_memory(monkeypatch):
    """A line without newline on one stream while the other floods: Docker stamps all its
    pieces with its start, so it pins the resume point. Bookkeeping stays bounded; a resume
    may then repeat lines but never loses one."""
    import agenttui.backends.docker.logstream as docker_module

    monkeypatch.setattr(docker_module, "MAX_TRACKED_FRAMES", 50)
    messages = [(STDOUT, T0, b"progress 1%")]
    messages += [(STDERR, T0 + n * 10_000_000, f"err {n}\n".encode()) for n in range(1, 200)]
    messages += [(STDOUT, T0, b" 100%\n")]  # the line's end keeps the line's first stamp
    decoder = LogDecoder(1000)
    lines = []
    for index, message in enumerate(messages):
        lines.extend(decoder.feed(*message))
        assert all(len(s.emitted) <= 50 for s in decoder._streams.values())
        if index == 120:
            cursor = decoder.cursor()
            resumed_from = len(lines)
    assert decoder.lossy
    assert [l.text for l in lines if l.stream == "stdout"] == ["progress 1% 100%"]
    assert len(lines) == 200
    rest = [(l.stream, l.text) for l in read(messages, cursor)]
    expected = [(l.stream, l.text) for l in lines[resumed_from:]]
    assert set(expected) <= set(rest)  # nothing lost
    assert set(rest) <= {(l.stream, l.text) for l in lines}  # only repeats, nothing new


# ------------------------------------------------------------------ decoding the engine's stream


def go_time(ns: int) -> str:
    """A stamp as the engine writes it (Go's RFC3339Nano: trailing zeros dropped)."""
    text = format_docker_time(ns)
    whole, fraction = text[:-1].split(".")
    fraction = fraction.rstrip("0")
    return f"{whole}.{fraction}Z" if fraction else f"{whole}Z"


def frame(kind: int, payload: bytes) -> bytes:
    return bytes([kind, 0, 0, 0]) + len(payload).to_bytes(4, "big") + payload


def engine_stream(messages) -> bytes:
    return b"".join(frame(stream, go_time(stamp).encode() + b" " + data) for stream, stamp, data in messages)


def frame_by_frame(stream: bytes, max_line: int = 100_000) -> list:
    """The reference: each frame split off and fed on its own."""
    decoder = LogDecoder(max_line)
    frames, used = split_frames(bytearray(stream))
    assert used == len(stream)
    lines = []
    for kind, payload in frames:
        stamp_text, _space, data = payload.partition(b" ")
        lines += decoder.feed(kind, parse_docker_time(stamp_text.decode()), data)
    return lines + decoder.finish()


def decode_in_chunks(stream: bytes, rng: random.Random, decoder: LogDecoder, max_lines: int = 7):
    """What _read_logs does: arbitrary reads, a frame split anywhere, bounded batches."""
    data, position, offset = b"", 0, 0
    batches = []  # (lines, cursor)
    while True:
        max_bytes = rng.choice([50, 10_000, 1 << 20])
        lines, end = decoder.decode(data, position, max_lines, max_bytes)
        used, position = end - position, end
        if lines:
            batches.append((lines, decoder.cursor()))
        if len(lines) >= max_lines or used >= max_bytes:  # stopped by a bound: frames may remain
            continue
        if offset >= len(stream):
            break
        size = rng.choice([1, 3, 8, 9, 100, 4096, 70_000])
        data, position = data[position:] + stream[offset : offset + size], 0
        offset += size
    return batches


@pytest.mark.parametrize("seed", range(4))
def test_decode_in_any_chunks_matches_frame_by_frame(seed):
    rng = random.Random(seed)
    messages = docker_messages(seed, count=300)
    stream = engine_stream(messages)
    decoder = LogDecoder(100_000)
    got = [line for lines, _cursor in decode_in_chunks(stream, rng, decoder) for line in lines]
    got += decoder.finish()
    assert got == frame_by_frame(stream)
    assert by_stream(got) == by_stream(read(messages))


@pytest.mark.parametrize("seed", range(3))
def test_every_batch_cursor_resumes_exactly(seed):
    rng = random.Random(100 + seed)
    messages = docker_messages(seed, count=250)
    full = by_stream(read(messages))
    batches = decode_in_chunks(engine_stream(messages), rng, LogDecoder(100_000))
    delivered = []
    for index, (lines, cursor) in enumerate(batches):
        delivered += lines
        if index % 3 == 0:
            assert by_stream(delivered + read(messages, cursor)) == full, f"batch {index}"


def test_decode_edge_frames():
    stamps = [T0 + 1, T0 + 120_000_000, T0 + 1_000_000_000, T0 + 1_500_000_001, T0 + 2 * _SECOND]
    stream = b"".join(
        [
            frame(STDOUT, go_time(stamps[0]).encode() + b" crlf\r\n"),
            frame(STDERR, go_time(stamps[1]).encode() + b" bad \xff\xfe\n"),
            frame(STDOUT, go_time(stamps[2]).encode() + b" whole second\n"),  # no fraction
            frame(STDOUT, b"2023-11-14T23:13:21.500000001+01:00 zone\n"),  # not UTC
            frame(3, b"engine trouble\n"),
            frame(STDOUT, b"untimestamped\n"),
            frame(STDOUT, go_time(stamps[4]).encode() + b" two\nlines\n"),
            frame(STDOUT, go_time(stamps[4]).encode() + b" " + b"y" * 30 + b"\n"),  # capped
            frame(STDOUT, go_time(stamps[4]).encode() + b" no newline"),
        ]
    )
    decoder = LogDecoder(20)
    lines, used = decoder.decode(stream)
    lines += decoder.finish()
    assert used == len(stream)
    assert [(line.stream, line.text) for line in lines] == [
        ("stdout", "crlf"),
        ("stderr", "bad \ufffd\ufffd"),
        ("stdout", "whole second"),
        ("stdout", "zone"),
        ("stderr", "[docker] engine trouble"),
        ("stdout", "untimestamped"),
        ("stdout", "two"),
        ("stdout", "lines"),
        ("stdout", "y" * 20 + " …[line truncated: 10 bytes]"),
        ("stdout", "no newline"),
    ]
    assert [line.ts for line in lines[:4]] == [s / _SECOND for s in stamps[:4]]
    assert {line.ts for line in lines[6:]} == {stamps[4] / _SECOND}


def test_decode_stops_at_its_bounds_and_at_a_partial_frame():
    stream = engine_stream([(STDOUT, T0 + n, b"line %d\n" % n) for n in range(10)])
    decoder = LogDecoder(1000)
    lines, end = decoder.decode(stream, 0, max_lines=4)
    assert [line.text for line in lines] == [f"line {n}" for n in range(4)]
    lines, end = decoder.decode(stream, end, max_bytes=1)  # at least one frame
    assert [line.text for line in lines] == ["line 4"]
    lines, end = decoder.decode(stream[:-3], end)
    assert [line.text for line in lines] == [f"line {n}" for n in range(5, 9)]
    assert decoder.decode(stream[:-3], end) == ([], end)
    with pytest.raises(InfraError):
        decoder.decode(b"garbage!garbage!")
