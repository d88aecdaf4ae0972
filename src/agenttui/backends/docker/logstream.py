"""Docker's multiplexed log stream: frames decoded into lines with an exactly resumable
cursor (LogDecoder, the hot path of every test's output), and read in store-sized batches.
"""

from __future__ import annotations

import asyncio
import bisect
import calendar
import codecs
import itertools
import logging
import re
import struct
import time
from collections import deque
from collections.abc import AsyncIterator

import aiohttp

from agenttui.backends.base import InfraError, LogBatch, LogLine
from agenttui.backends.docker.client import DockerEngine
from agenttui.harness import RESULT_TAG

log = logging.getLogger(__name__)

# A batch is one store transaction: under a flood it fills up to these bounds (fewer, larger
# transactions); a trickle is flushed LOG_BATCH_DELAY_S after its first line (log latency).
LOG_BATCH_LINES = 5000
LOG_BATCH_BYTES = 2 * 1024 * 1024  # of the engine's stream: bounds a batch of long lines
LOG_BATCH_DELAY_S = 0.03
LOG_READ_CHUNK = 1024 * 1024  # whatever the connection has buffered, up to this
LOG_COALESCE_S = 0.005  # see read_batches
LOG_COALESCE_BYTES = 32 * 1024
FOLLOW_IDLE_CHECK_S = 2.0  # a follow quiet this long checks that its container still runs
MAX_FRAME_BYTES = 4 * 1024 * 1024  # json-file frames are ~16 KiB; anything huge is corruption
# The result record may be much longer than an ordinary line (runner caps the response).
RESULT_LINE_MAX_CHARS = 2_000_000

# ---------------------------------------------------------------------------------------
# Docker timestamps
# ---------------------------------------------------------------------------------------

_TS_RE = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$"
)
_NS = 1_000_000_000


def parse_docker_time(text: str) -> int | None:
    """RFC 3339 (with up to 9 fraction digits) → epoch nanoseconds; None when unparsable."""
    match = _TS_RE.match(text.strip())
    if not match:
        return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    seconds = calendar.timegm(
        (int(year), int(month), int(day), int(hour), int(minute), int(second), 0, 0, 0)
    )
    if zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        seconds -= sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    return seconds * _NS + int((fraction or "0").ljust(9, "0"))


def format_docker_time(ns: int) -> str:
    """Epoch nanoseconds → RFC 3339 with exactly 9 fraction digits, UTC."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // _NS)) + f".{ns % _NS:09d}Z"


def epoch_or_none(text: str | None) -> float | None:
    """A Docker time in epoch seconds; None for an unparsable time or Go's zero time."""
    if not text or text.startswith("0001-01-01"):  # Go's zero time: never happened
        return None
    ns = parse_docker_time(text)
    return ns / _NS if ns is not None else None


# ---------------------------------------------------------------------------------------
# Log stream decoding with an exactly resumable cursor
# ---------------------------------------------------------------------------------------

STDOUT, STDERR = 1, 2
_STREAM_NAMES = {STDOUT: "stdout", STDERR: "stderr"}
# Docker stamps each stream's messages in its own goroutine, so in the log file a message
# can follow one of the other stream stamped slightly later. Anything not yet seen is
# assumed to be stamped no earlier than (newest stamp seen - this window).
# (Measured reorders are microseconds; the margin is generous.) Frames delivered within
# this window are remembered, to be skipped on resume.
REORDER_WINDOW_NS = _NS // 4
# An unfinished line pins the resume point (Docker stamps all its pieces with its start),
# so what the other stream delivers meanwhile is remembered. Past this many frames per
# stream (~8 MB of stamps) the oldest are forgotten: a resume may then repeat some lines,
# never lose.
MAX_TRACKED_FRAMES = 200_000
_FRAME_HEADER = struct.Struct(">BBHI")  # stream type, 3 zero bytes, big-endian payload size
_FRACTION_NS = tuple(10 ** (9 - digits) for digits in range(10))


def _not_multiplexed(data: bytes | bytearray, position: int) -> InfraError:
    return InfraError(
        "the Docker log stream is not in the expected multiplexed format "
        f"(frame header {bytes(data[position:position + 8])!r})"
    )


def _engine_line(payload: bytes) -> LogLine:
    """A frame of the engine's own error (stream type 3) as a line of stderr."""
    text = payload.decode("utf-8", errors="replace").rstrip("\n")
    return LogLine(time.time(), "stderr", f"[docker] {text}")


class _LineBuilder:
    """One stream's line in progress: decodes incrementally, keeps at most `max_chars`
    of it and only counts the bytes beyond (a 50 MB line costs no memory)."""

    def __init__(self, max_chars: int):
        self.max_chars = max_chars
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.reset()

    def reset(self) -> None:
        self._parts: list[str] = []
        self._chars = 0
        self._limit = self.max_chars
        self.dropped_bytes = 0
        self.truncated = False
        self._decoder.reset()

    @property
    def buffered_chars(self) -> int:
        return self._chars

    def add(self, data: bytes) -> None:
        if self.truncated:
            self.dropped_bytes += len(data)
            return
        text = self._decoder.decode(data)
        room = self._limit - self._chars
        if len(text) > room and self._limit < RESULT_LINE_MAX_CHARS and self._is_result_line(text):
            self._limit = RESULT_LINE_MAX_CHARS  # the result record is kept whole
            room = self._limit - self._chars
        if len(text) <= room:
            self._parts.append(text)
            self._chars += len(text)
            return
        self._parts.append(text[:room])
        self._chars += room
        self.truncated = True
        self.dropped_bytes += len(text[room:].encode("utf-8", errors="surrogatepass"))

    def _is_result_line(self, more: str) -> bool:
        head = "".join(self._parts[:2]) + more[: len(RESULT_TAG)]
        return head.startswith(RESULT_TAG)

    def finish(self) -> str:
        if not self.truncated:
            self._parts.append(self._decoder.decode(b"", final=True))
        text = "".join(self._parts)
        if text.endswith("\r"):
            text = text[:-1]
        if self.truncated:
            text += f" …[line truncated: {self.dropped_bytes} bytes]"
        self.reset()
        return text


class _StreamState:
    def __init__(self, name: str, max_line: int):
        self.name = name
        self.line = _LineBuilder(max_line)
        self.skip = 0  # frames to drop on resume: already delivered before the cursor
        # In a continuation (see LogDecoder.continuation): the [stamp, frames] runs to skip.
        self.skip_runs: deque[list[int]] | None = None
        self.pending: list[int] = []  # stamps of the frames of the unfinished line
        # The stamp of every frame delivered at or after the floor, in stream order (so never
        # decreasing): the cursor counts them, a continuation skips them by stamp.
        self.emitted: list[int] = []
        self.last_stamp: int | None = None

    def prune_before(self, since: int) -> None:
        del self.emitted[: bisect.bisect_left(self.emitted, since)]


class LogDecoder:
    """Turns Docker log messages (stream, stamp, bytes) into lines and cursors.

    Cursor: "<since RFC3339Nano>|<stdout frames>|<stderr frames>". Resuming asks Docker for
    messages stamped at or after `since` and drops, per stream, the first N frames: those
    were delivered already. Per stream, Docker's stamps never go back (the 16 KiB pieces of
    one long line all carry the line's first stamp), so the frames of a stream stamped
    >= since always start with exactly the delivered ones. `since` stays at or before the
    first frame of any unfinished line, which is thus re-read and rebuilt.
    """

    def __init__(self, max_line: int, cursor: str | None = None):
        self._max_line = max_line
        self._streams = {STDOUT: _StreamState("stdout", max_line), STDERR: _StreamState("stderr", max_line)}
        self._floor = 0  # every frame not yet delivered is stamped at or after this
        self._newest = 0
        self.lossy = False  # set once bookkeeping was dropped (resume may repeat lines)
        # The date, time and "." of the last stamp parsed in full, and its epoch ns (see decode).
        self._stamp_head, self._stamp_seconds = b"\0", 0
        if cursor:
            since, skips = self.parse_cursor(cursor)
            self._floor = self._newest = since
            self._streams[STDOUT].skip, self._streams[STDERR].skip = skips

    @staticmethod
    def parse_cursor(cursor: str) -> tuple[int, tuple[int, int]]:
        try:
            stamp, out_skip, err_skip = cursor.split("|")
            since = parse_docker_time(stamp)
            skips = (int(out_skip), int(err_skip))
            if since is None or min(skips) < 0:
                raise ValueError
            return since, skips
        except ValueError:
            raise ValueError(
                f"invalid log cursor {cursor!r}: expected '<RFC3339 time>|<stdout n>|<stderr n>'"
            ) from None

    @property
    def since_param(self) -> str | None:
        """`since` for the logs API (seconds.nanoseconds; inclusive), None from the start."""
        if not self._floor:
            return None
        return f"{self._floor // _NS}.{self._floor % _NS:09d}"

    def feed(self, stream: int, stamp: int, data: bytes) -> list[LogLine]:
        state = self._streams[STDERR if stream == STDERR else STDOUT]
        self._newest = max(self._newest, stamp)
        state.last_stamp = stamp
        if state.skip_runs is not None:
            # Skip exactly the frames delivered before, by stamp; those the engine no longer
            # has (rotated away under a flood) are not there to skip.
            runs = state.skip_runs
            while runs and runs[0][0] < stamp:
                state.skip -= runs.popleft()[1]
            if runs and runs[0][0] == stamp:
                runs[0][1] -= 1
                state.skip -= 1
                if not runs[0][1]:
                    runs.popleft()
                state.emitted.append(stamp)
                return []
        elif state.skip:
            state.skip -= 1
            state.emitted.append(stamp)
            return []
        name = state.name
        lines: list[LogLine] = []
        *complete, rest = data.split(b"\n")
        state.pending.append(stamp)
        for piece in complete:  # json-file gives at most one, at the very end
            state.line.add(piece)
            lines.append(LogLine(ts=state.pending[0] / _NS, stream=name, text=state.line.finish()))
            # Earlier frames belonged to that line: delivered. This one may hold more.
            for pending_stamp in state.pending[:-1]:
                state.emitted.append(pending_stamp)
            del state.pending[:-1]
        if rest:
            state.line.add(rest)
        elif complete:
            state.emitted.append(state.pending.pop())
        if len(state.emitted) > MAX_TRACKED_FRAMES:
            self._relieve_pressure()
        return lines

    def decode(self, data: bytes, position: int = 0, max_lines: int = LOG_BATCH_LINES,
               max_bytes: int = LOG_BATCH_BYTES) -> tuple[list[LogLine], int]:
        """The lines of the complete frames of `data` (the engine's multiplexed stream with
        timestamps=1) from `position`, and where they end. Stops once it has `max_lines` lines
        or has used `max_bytes`, so a caller can pair every batch with its exact cursor.

        The common frame, a whole line on a stream with no line in progress and nothing to
        skip, is decoded here in one pass; any other goes through feed()."""
        lines: list[LogLine] = []
        append = lines.append
        find, startswith = data.find, data.startswith
        header = _FRAME_HEADER.unpack_from
        out, err = self._streams[STDOUT], self._streams[STDERR]
        longest = self._max_line + 1  # bytes, newline included: such a line is never capped
        head, seconds, newest = self._stamp_head, self._stamp_seconds, self._newest
        end, bound = len(data), position + max_bytes
        while end - position >= 8 and position < bound and len(lines) < max_lines:
            kind, zero, zeros, size = header(data, position)
            if zero or zeros or size > MAX_FRAME_BYTES:
                raise _not_multiplexed(data, position)
            start, stop = position + 8, position + 8 + size
            if stop > end:
                break
            position = stop
            if kind == 3:  # the engine's own error, not the container's output
                append(_engine_line(data[start:stop]))
                continue
            # The stamp ("2024-05-01T10:00:00.123456789Z "): its seconds, rarely new, are parsed once.
            space = find(b" ", start, stop)
            stamp = None
            if startswith(head, start) and space - start > 20 and data[space - 1] == 0x5A:  # "Z"
                fraction = data[start + 20 : space - 1]
                if len(fraction) <= 9 and fraction.isdigit():
                    stamp = seconds + int(fraction) * _FRACTION_NS[len(fraction)]
            if stamp is None and space > start:
                stamp = self._stamp(data, start, space)
                head, seconds = self._stamp_head, self._stamp_seconds
            body = space + 1
            if stamp is None:  # not timestamped: should not happen with timestamps=1
                stamp, body = time.time_ns(), start
            state = err if kind == STDERR else out
            if (stop - body <= longest and not state.pending and not state.skip and not state.skip_runs
                    and find(b"\n", body, stop) == stop - 1):
                eol = stop - 1
                if eol > body and data[eol - 1] == 13:  # "\r"
                    eol -= 1
                append(LogLine(stamp / _NS, state.name, data[body:eol].decode("utf-8", errors="replace")))
                state.emitted.append(stamp)
                state.last_stamp = stamp
                if stamp > newest:
                    newest = stamp
            else:
                self._newest = newest
                lines += self.feed(kind, stamp, data[body:stop])
                newest = self._newest
        self._newest = newest
        if len(out.emitted) > MAX_TRACKED_FRAMES or len(err.emitted) > MAX_TRACKED_FRAMES:
            self._relieve_pressure()
        return lines, position

    def _stamp(self, data: bytes, start: int, space: int) -> int | None:
        """The stamp of the frame at `start`, in epoch nanoseconds; remembers its seconds."""
        if space - start > 20 and data[start + 19] == 0x2E:  # "."
            seconds = parse_docker_time(data[start : start + 19].decode("ascii", errors="replace") + "Z")
            if seconds is not None:
                self._stamp_head, self._stamp_seconds = bytes(data[start : start + 20]), seconds
        return parse_docker_time(data[start:space].decode("ascii", errors="replace"))

    def finish(self) -> list[LogLine]:
        """The stream ended: deliver unfinished lines as they stand."""
        lines = []
        for stream, state in self._streams.items():
            if state.pending:
                lines.append(self._emit_pending(stream, state))
        return lines

    def _emit_pending(self, stream: int, state: _StreamState) -> LogLine:
        line = LogLine(
            ts=state.pending[0] / _NS, stream=_STREAM_NAMES[stream], text=state.line.finish()
        )
        for pending_stamp in state.pending:
            state.emitted.append(pending_stamp)
        state.pending.clear()
        return line

    def _relieve_pressure(self) -> None:
        if all(len(s.emitted) <= MAX_TRACKED_FRAMES for s in self._streams.values()):
            return
        self.cursor()  # first drop what the resume point no longer needs
        for state in self._streams.values():
            if len(state.emitted) > MAX_TRACKED_FRAMES:
                if not self.lossy:
                    log.warning(
                        "log stream: a line has stayed unfinished for %d lines of the other "
                        "stream; a resume may repeat some lines", MAX_TRACKED_FRAMES
                    )
                self.lossy = True
            del state.emitted[: len(state.emitted) - MAX_TRACKED_FRAMES]

    def continuation(self) -> LogDecoder:
        """A decoder for reading on from here in another request of this process: the same
        cursor, plus the stamps of the frames it skips. json-file rotation can delete frames
        a slow reader had already delivered; a count alone would then skip as many newer ones
        (under a flood: the end of the log, where the harness reports)."""
        cursor = self.cursor()
        follower = LogDecoder(self._max_line, cursor)
        follower.lossy = self.lossy
        if any(state.skip for state in self._streams.values()):
            return follower  # still skipping by a stored count: only the count is known
        for stream, state in self._streams.items():
            follower._streams[stream].skip_runs = deque(
                [stamp, len(list(same))] for stamp, same in itertools.groupby(state.emitted)
            )
        return follower

    def cursor(self) -> str:
        """Where to resume after everything delivered so far (prunes bookkeeping)."""
        bounds = []
        for state in self._streams.values():
            if state.pending:
                bounds.append(state.pending[0])
            elif state.skip:
                bounds.append(self._floor)  # frames still to skip must stay in range
            else:
                newest_possible = max(self._floor, self._newest - REORDER_WINDOW_NS)
                bounds.append(max(newest_possible, state.last_stamp or 0))
        since = min(bounds)
        self._floor = since
        for state in self._streams.values():
            state.prune_before(since)
        skips = [len(self._streams[s].emitted) + self._streams[s].skip for s in (STDOUT, STDERR)]
        return f"{format_docker_time(since)}|{skips[0]}|{skips[1]}"

    @property
    def buffered_chars(self) -> int:
        return sum(s.line.buffered_chars for s in self._streams.values())


def split_frames(buffer: bytearray) -> tuple[list[tuple[int, bytes]], int]:
    """Complete frames of Docker's multiplexed stream (8-byte header: stream type, 3 zero
    bytes, big-endian payload size) at the start of `buffer`, and how many bytes they use."""
    frames = []
    position = 0
    end = len(buffer)
    while end - position >= 8:
        size = int.from_bytes(buffer[position + 4 : position + 8], "big")
        if size > MAX_FRAME_BYTES or buffer[position + 1 : position + 4] != b"\0\0\0":
            raise _not_multiplexed(buffer, position)
        if end - position - 8 < size:
            break
        frames.append((buffer[position], bytes(buffer[position + 8 : position + 8 + size])))
        position += 8 + size
    return frames, position


# ---------------------------------------------------------------------------------------
# Reading a container's log in batches
# ---------------------------------------------------------------------------------------


async def read_batches(
    engine: DockerEngine, handle: str, decoder: LogDecoder, follow: bool, tail: int | None = None
) -> AsyncIterator[LogBatch]:
    """The container's log from the decoder's cursor (or its last `tail` lines), in batches
    each paired with its exact cursor; nothing when the container is gone."""
    params = {"stdout": "1", "stderr": "1", "timestamps": "1", "follow": "1" if follow else "0"}
    if tail is not None:
        params["tail"] = str(tail)
    if decoder.since_param:
        params["since"] = decoder.since_param
    response = await engine.open_logs(handle, params, "read the container's logs")
    if response is None:
        return  # gone: there is nothing more to read
    loop = asyncio.get_running_loop()
    data, position = b"", 0  # what was read; frames before `position` are decoded
    batch: list[LogLine] = []
    batch_bytes = 0  # of the stream, since the batch's first line
    deadline = 0.0
    try:
        while True:
            line_room, byte_room = LOG_BATCH_LINES - len(batch), LOG_BATCH_BYTES - batch_bytes
            lines, end = decoder.decode(data, position, line_room, byte_room)
            used, position = end - position, end
            if lines:
                if not batch:
                    deadline = loop.time() + LOG_BATCH_DELAY_S
                batch += lines
            if batch:
                batch_bytes += used
            bounded = len(lines) >= line_room or used >= byte_room  # complete frames may remain
            if batch and (bounded or loop.time() >= deadline):
                yield LogBatch(batch, decoder.cursor())
                batch, batch_bytes = [], 0
            if bounded:
                continue
            if batch and len(data) < LOG_COALESCE_BYTES:
                # A flood arrives one small write per frame: reading each on its own costs
                # a wake-up and a read per line, so let a few milliseconds' worth gather.
                await asyncio.sleep(min(LOG_COALESCE_S, max(0.0, deadline - loop.time())))
            try:
                async with asyncio.timeout(
                    max(0.0, deadline - loop.time()) if batch else (FOLLOW_IDLE_CHECK_S if follow else None)
                ):
                    chunk = await _read_chunk(response, handle)
            except TimeoutError:
                if batch or await engine.is_running(handle):
                    continue  # time to flush the batch, or a quiet agent
                break  # exited, and the follow says nothing more: the caller reads the rest
            if not chunk:
                break
            data, position = (data[position:] + chunk if position < len(data) else chunk), 0
        if not follow:  # the real end: unfinished lines are delivered as they stand
            batch.extend(decoder.finish())
        if batch:
            yield LogBatch(batch, decoder.cursor())
    finally:
        response.close()


async def _read_chunk(response: aiohttp.ClientResponse, handle: str) -> bytes:
    try:
        return await response.content.read(LOG_READ_CHUNK)
    except (aiohttp.ClientError, OSError) as exc:
        raise InfraError(
            f"lost the log stream of container {handle[:12]} ({type(exc).__name__}: {exc}); "
            "resume from the last cursor"
        ) from exc
