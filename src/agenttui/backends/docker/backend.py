"""The Docker backend: builds or reuses an image, runs one attempt in a locked-down container,
follows its logs with an exactly resumable cursor, and reads exit status and resource use.

Talks to the engine with aiodocker (one client per backend). Every engine/connection problem
surfaces as InfraError (retried by the orchestrator); a user's broken requirements or
Dockerfile surface as BuildError (not retried).
"""

from __future__ import annotations

import asyncio
import bisect
import calendar
import codecs
import contextlib
import dataclasses
import gzip
import hashlib
import inspect
import io
import itertools
import logging
import math
import os
import re
import shutil
import struct
import tarfile
import time
from collections import deque
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiodocker
import aiohttp
import jinja2
from aiodocker.exceptions import DockerError, DockerStreamError
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from agenttui.backends.base import (
    Backend,
    BuildError,
    BuildLog,
    ExitInfo,
    HandleState,
    InfraError,
    LogBatch,
    LogLine,
    RunSpec,
    Stats,
)
from agenttui.core.config import Settings
from agenttui.harness import RESULT_TAG, RUNNER_FILENAME, runner_source
from agenttui.core.resources import resource_dir

log = logging.getLogger(__name__)

MOUNT_POINT = "/agenttui"  # where the staged bundle appears, read-only, in every container
AGENT_FILENAME = "agent.py"
REQUIREMENTS_FILENAME = "requirements.txt"
CA_FILENAME = "agenttui-ca.pem"
CONTAINER_ID_MARKER = ".container-id"  # lets remove() find a staging dir by container id
ENV_IMAGE_REPO = "agenttui-env"
CUSTOM_IMAGE_REPO = "agenttui-custom"
PROJECT_LABEL = "agenttui"
NOBODY = "65534:65534"
CHECK_TIMEOUT_S = 10.0
API_TIMEOUT_S = 60.0  # any single short engine call
POST_KILL_WAIT_S = 10.0
BUILD_LOG_TAIL_LINES = 60
# A batch is one store transaction: under a flood it fills up to these bounds (fewer, larger
# transactions); a trickle is flushed LOG_BATCH_DELAY_S after its first line (log latency).
LOG_BATCH_LINES = 5000
LOG_BATCH_BYTES = 2 * 1024 * 1024  # of the engine's stream: bounds a batch of long lines
LOG_BATCH_DELAY_S = 0.03
LOG_READ_CHUNK = 1024 * 1024  # whatever the connection has buffered, up to this
LOG_COALESCE_S = 0.005  # see _read_logs
LOG_COALESCE_BYTES = 32 * 1024
FOLLOW_IDLE_CHECK_S = 2.0  # a follow quiet this long checks that its container still runs
MAX_FRAME_BYTES = 4 * 1024 * 1024  # json-file frames are ~16 KiB; anything huge is corruption
# The result record may be much longer than an ordinary line (runner caps the response).
RESULT_LINE_MAX_CHARS = 2_000_000
HOWTO_START = (
    "Start it (e.g. `sudo systemctl start docker`, or scripts/dev-docker.sh on a dev box) "
    "or set DOCKER_HOST."
)

# ---------------------------------------------------------------------------------------
# Build failure classification
# ---------------------------------------------------------------------------------------

# Signs that the network, TLS or the engine broke the build (pip reports an unreachable
# index as "No matching distribution", so these are checked first).
_INFRA_BUILD_MARKERS = (
    "no space left on device",
    "could not fetch url",
    "sslerror",
    "certificate_verify_failed",
    "certificate verify failed",
    "problem confirming the ssl certificate",
    "proxyerror",
    "newconnectionerror",
    "max retries exceeded",
    "temporary failure in name resolution",
    "name or service not known",
    "network is unreachable",
    "connection refused",
    "connection reset",
    "connecttimeouterror",
    "readtimeouterror",
    "read timed out",
    "tls handshake timeout",
    "i/o timeout",
    "dial tcp",
    "connection timed out",
    "503 service unavailable",
    "502 bad gateway",
    "cannot connect to the docker daemon",
)
_PIP_USER_MARKERS = (
    "no matching distribution found",
    "could not find a version that satisfies",
    "invalid requirement",
    "resolutionimpossible",
    "conflicting dependencies",
    "subprocess-exited-with-error",
    "failed building wheel",
    "metadata-generation-failed",
)


# The classic builder colours a RUN step's stderr.
_ANSI_RE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


# A custom image whose configuration cannot start (the user's Dockerfile, not retried).
_USER_IMAGE_START_FAILURES = (
    "executable file not found",
    "no such file or directory",
    "unable to find user",
    "unable to find group",
)


def _key_error_line(error: str, tail: list[str]) -> str:
    """The most telling line of a failed build: pip's last ERROR line, else the engine's."""
    for line in reversed(tail):
        if line.strip().startswith("ERROR:"):
            return line.strip()
    return error.strip()


def classify_build_failure(error: str, tail: list[str], custom: bool) -> Exception:
    """BuildError when the user's requirements/Dockerfile are at fault, else InfraError."""
    tail_text = "\n".join(tail)
    haystack = f"{error}\n{tail_text}".lower()
    key = _key_error_line(error, tail)
    if any(marker in haystack for marker in _INFRA_BUILD_MARKERS):
        culprit = next(
            (
                line.strip()
                for line in [*tail, error]
                if any(marker in line.lower() for marker in _INFRA_BUILD_MARKERS)
            ),
            key,
        )
        if len(culprit) > 400:
            culprit = culprit[:400] + "…"
        hint = ""
        if "ssl" in culprit.lower() or "certificate" in culprit.lower():
            hint = (
                " (behind a TLS-intercepting proxy? give its CA bundle with the setting "
                "extra_ca_bundle / AGENTTUI_EXTRA_CA_BUNDLE)"
            )
        return InfraError(
            f"image build failed because of the network or the engine: {culprit}{hint}"
        )
    if custom:
        return BuildError(f"your Dockerfile failed to build: {key}", log=tail_text)
    if "returned a non-zero code" in haystack or any(m in haystack for m in _PIP_USER_MARKERS):
        return BuildError(f"pip could not install the requirements: {key}", log=tail_text)
    return InfraError(f"image build failed in the engine: {key}")


# ---------------------------------------------------------------------------------------
# Requirements and image keys
# ---------------------------------------------------------------------------------------


def normalize_requirements(text: str) -> str:
    """Requirements in a canonical form (no comments/blanks, canonical names, sorted), so
    equivalent files share one image (R-13). Empty string when nothing is required."""
    lines: set[str] = set()
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        try:
            requirement = Requirement(line)
            requirement.name = canonicalize_name(requirement.name)
            line = str(requirement)
        except InvalidRequirement:
            pass  # domain validation rejects these; keep the text so pip explains
        lines.add(line)
    return "".join(f"{line}\n" for line in sorted(lines))


def _digest(*parts: str | bytes) -> str:
    hasher = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        hasher.update(len(data).to_bytes(8, "big"))  # length-prefixed: no ambiguous joins
        hasher.update(data)
    return hasher.hexdigest()[:20]


def _build_context(files: dict[str, bytes]) -> bytes:
    """A gzipped tar of `files` with fixed metadata (the build cache depends on it)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), mtime=0)


_template_env: jinja2.Environment | None = None


def _render(template: str, **values: Any) -> str:
    global _template_env
    if _template_env is None:
        _template_env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(resource_dir("templates") / "docker")),
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
            undefined=jinja2.StrictUndefined,
            autoescape=False,
        )
    return _template_env.get_template(template).render(**values)


def _template_source(template: str) -> str:
    return (resource_dir("templates") / "docker" / template).read_text(encoding="utf-8")


REQUIREMENTS_TEMPLATE = "requirements.Dockerfile.j2"

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


def _epoch_or_none(text: str | None) -> float | None:
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

    def decode(
        self, data: bytes, position: int = 0, max_lines: int = LOG_BATCH_LINES, max_bytes: int = LOG_BATCH_BYTES
    ) -> tuple[list[LogLine], int]:
        """The lines of the complete frames of `data` (the engine's multiplexed stream with
        timestamps=1) from `position`, and where they end. Stops once it has `max_lines` lines
        or has used `max_bytes`, so a caller can pair every batch with its exact cursor.

        The common frame, a whole line on a stream with no line in progress and nothing to
        skip, is decoded here in one pass; any other goes through feed()."""
        lines: list[LogLine] = []
        append = lines.append
        find = data.find
        startswith = data.startswith
        header = _FRAME_HEADER.unpack_from
        out, err = self._streams[STDOUT], self._streams[STDERR]
        longest = self._max_line + 1  # bytes, newline included: such a line is never capped
        head, seconds = self._stamp_head, self._stamp_seconds
        newest = self._newest
        end, bound = len(data), position + max_bytes
        while end - position >= 8 and position < bound and len(lines) < max_lines:
            kind, zero, zeros, size = header(data, position)
            if zero or zeros or size > MAX_FRAME_BYTES:
                raise InfraError(
                    "the Docker log stream is not in the expected multiplexed format "
                    f"(frame header {bytes(data[position:position + 8])!r})"
                )
            start = position + 8
            stop = start + size
            if stop > end:
                break
            position = stop
            if kind == 3:  # the engine's own error, not the container's output
                text = data[start:stop].decode("utf-8", errors="replace").rstrip("\n")
                append(LogLine(time.time(), "stderr", f"[docker] {text}"))
                continue
            # The stamp ("2024-05-01T10:00:00.123456789Z "): its seconds change rarely, so
            # they are parsed once and only the fraction per frame.
            space = find(b" ", start, stop)
            stamp = None
            if startswith(head, start) and space - start > 20 and data[space - 1] == 0x5A:  # "Z"
                fraction = data[start + 20 : space - 1]
                if len(fraction) <= 9 and fraction.isdigit():
                    stamp = seconds + int(fraction) * _FRACTION_NS[len(fraction)]
            if stamp is None and space > start:
                stamp = self._stamp(data, start, space)
                head, seconds = self._stamp_head, self._stamp_seconds
            if stamp is None:  # not timestamped: should not happen with timestamps=1
                stamp, body = time.time_ns(), start
            else:
                body = space + 1
            state = err if kind == STDERR else out
            if (
                stop - body <= longest
                and not state.pending
                and not state.skip
                and not state.skip_runs
                and find(b"\n", body, stop) == stop - 1
            ):
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
            raise InfraError(
                "the Docker log stream is not in the expected multiplexed format "
                f"(frame header {bytes(buffer[position:position + 8])!r})"
            )
        if end - position - 8 < size:
            break
        frames.append((buffer[position], bytes(buffer[position + 8 : position + 8 + size])))
        position += 8 + size
    return frames, position


# ---------------------------------------------------------------------------------------
# The backend
# ---------------------------------------------------------------------------------------


def _write_readable(folder: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        path = folder / name
        path.write_bytes(data)
        path.chmod(0o644)


def _engine_status(exc: InfraError) -> int | None:
    """The engine's HTTP status behind an InfraError (404: no such thing), if any."""
    cause = exc.__cause__
    return cause.status if isinstance(cause, DockerError) else None


class DockerBackend(Backend):
    """Backend protocol (agenttui.backends.base.Backend) on a local Docker engine."""

    name = "docker"

    def __init__(self, settings: Settings):
        self.settings = settings
        self._docker: aiodocker.Docker | None = None
        self._where = os.environ.get("DOCKER_HOST") or "the default Docker socket"
        self._build_locks: dict[str, asyncio.Lock] = {}
        self._stopped: set[str] = set()  # handles this backend signalled itself
        from agenttui.backends.docker.network import SandboxNetwork

        self.net = SandboxNetwork(self)  # egress policy, net sidecar, tunnels, preflight
        from agenttui.backends.docker.pool import WarmPool

        self.pool = WarmPool(self)  # containers started ahead of their tests (warm_pool)

    # -- engine access ------------------------------------------------------------------

    async def _client(self) -> aiodocker.Docker:
        # Created lazily: aiohttp wants a running event loop.
        if self._docker is None:
            # DOCKER_HOST wins over a docker CLI context, as with the docker CLI itself.
            url = os.environ.get("DOCKER_HOST") or None
            try:
                self._docker = aiodocker.Docker(
                    url=url, timeout=aiohttp.ClientTimeout(sock_connect=CHECK_TIMEOUT_S)
                )
            except (ValueError, OSError, DockerError) as exc:
                raise self._unreachable(str(exc)) from exc
            self._where = getattr(self._docker, "_connection_info", None) or url or self._where
        return self._docker

    def _unreachable(self, why: str) -> InfraError:
        return InfraError(f"Docker engine is not reachable at {self._where}: {why}. {HOWTO_START}")

    @contextlib.asynccontextmanager
    async def _engine_errors(self, action: str) -> AsyncIterator[None]:
        """Turn every engine/connection failure into an InfraError naming what was tried."""
        try:
            yield
        except (InfraError, BuildError):
            raise
        except DockerError as exc:
            if exc.status == 900:  # aiodocker's code for "could not connect"
                raise self._unreachable(exc.message) from exc
            raise InfraError(
                f"Docker engine failed to {action}: {exc.message} (HTTP {exc.status})"
            ) from exc
        except TimeoutError as exc:
            raise InfraError(
                f"Docker engine at {self._where} did not answer in time to {action}"
            ) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise self._unreachable(f"{type(exc).__name__}: {exc}") from exc

    async def _api(self, action: str, path: str, method: str = "GET", **kwargs: Any) -> Any:
        """A short JSON API call with a timeout."""
        docker = await self._client()
        async with self._engine_errors(action):
            async with asyncio.timeout(API_TIMEOUT_S):
                return await docker._query_json(path, method, **kwargs)

    async def _inspect_raw(self, handle: str) -> dict[str, Any] | None:
        try:
            return await self._api("inspect the container", f"containers/{handle}/json")
        except InfraError as exc:
            if _engine_status(exc) == 404:
                return None
            raise

    async def _image_id(self, image: str) -> str | None:
        try:
            info = await self._api("inspect an image", f"images/{image}/json")
        except InfraError as exc:
            if _engine_status(exc) == 404:
                return None
            raise
        return info["Id"]

    async def check(self) -> None:
        docker = await self._client()
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_S):
                await docker._query_json("version", versioned_api=False)
        except DockerError as exc:
            raise self._unreachable(exc.message) from exc
        except TimeoutError as exc:
            raise self._unreachable(f"no answer within {CHECK_TIMEOUT_S:.0f} s") from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise self._unreachable(f"{type(exc).__name__}: {exc}") from exc

    async def start_up(self) -> None:
        """A server's orchestrator begins: sweep what dead servers' warm pools left."""
        if self.settings.warm_pool > 0:
            await self.pool.start_once()

    async def close(self) -> None:
        await self.pool.close()
        await self.net.close()
        if self._docker is not None:
            docker, self._docker = self._docker, None
            with contextlib.suppress(Exception):
                await docker.close()

    # -- images -------------------------------------------------------------------------

    def _ca_bundle(self) -> bytes | None:
        path = self.settings.extra_ca_bundle
        if path is None:
            return None
        try:
            return Path(path).read_bytes()
        except OSError as exc:
            raise InfraError(
                f"cannot read the CA bundle {path} (setting extra_ca_bundle / "
                f"AGENTTUI_EXTRA_CA_BUNDLE): {exc}"
            ) from exc

    async def prepare(self, spec: RunSpec, on_log: BuildLog) -> tuple[str, bool]:
        request = spec.request
        if request.dockerfile.strip():
            return await self._prepare_custom(spec, on_log)
        base = self.settings.base_image
        base_id = await self._image_id(base)
        if base_id is None:
            raise InfraError(
                f"the base image {base} is not in the Docker engine at {self._where}. "
                f"Pull it (`docker pull {base}`), build it (scripts/dev-docker.sh builds "
                "agenttui-base:bookworm), or set AGENTTUI_BASE_IMAGE to an image that exists."
            )
        requirements = normalize_requirements(request.requirements)
        if not requirements:
            return base, False  # stdlib-only agents run on the base image: no build
        tag = f"{ENV_IMAGE_REPO}:{_digest(base_id, _template_source(REQUIREMENTS_TEMPLATE), requirements)}"
        ca_bundle = self._ca_bundle()

        def context() -> bytes:
            dockerfile = _render(REQUIREMENTS_TEMPLATE, base_image=base, ca_bundle=bool(ca_bundle))
            files = {"Dockerfile": dockerfile.encode(), REQUIREMENTS_FILENAME: requirements.encode()}
            if ca_bundle:
                files[CA_FILENAME] = ca_bundle
            return _build_context(files)

        labels = {"agenttui.image": "requirements", "agenttui.base-id": base_id}
        return await self._build_once(tag, context, labels, on_log, custom=False)

    async def _prepare_custom(self, spec: RunSpec, on_log: BuildLog) -> tuple[str, bool]:
        request = spec.request
        files = {
            "Dockerfile": request.dockerfile.encode(),
            AGENT_FILENAME: request.agent_code.encode(),
            REQUIREMENTS_FILENAME: request.requirements.encode(),
            RUNNER_FILENAME: runner_source().encode(),
        }
        ca_bundle = self._ca_bundle()
        if ca_bundle:
            files[CA_FILENAME] = ca_bundle
        tag = f"{CUSTOM_IMAGE_REPO}:{_digest(*(p for item in sorted(files.items()) for p in item))}"
        labels = {"agenttui.image": "custom"}
        return await self._build_once(tag, lambda: _build_context(files), labels, on_log, True)

    async def _build_once(
        self, tag: str, context: Any, labels: dict[str, str], on_log: BuildLog, custom: bool
    ) -> tuple[str, bool]:
        # One build per key even when several tests want the same image at once.
        lock = self._build_locks.setdefault(tag, asyncio.Lock())
        async with lock:
            if await self._image_id(tag) is not None:
                return tag, False
            await self._build(tag, context(), labels, on_log, custom)
            return tag, True

    async def _build(
        self, tag: str, context: bytes, labels: dict[str, str], on_log: BuildLog, custom: bool
    ) -> None:
        docker = await self._client()
        tail: deque[str] = deque(maxlen=BUILD_LOG_TAIL_LINES)
        partial = ""
        dropped = 0  # chars of the unfinished line beyond log_max_line
        max_line = self.settings.log_max_line

        async def emit(text: str) -> None:
            # Build output arrives in arbitrary pieces: pass on whole lines only, each at most
            # log_max_line chars (a RUN step may print one line of gigabytes; growing it here
            # would cost the server memory and quadratic time).
            nonlocal partial, dropped
            *complete, rest = text.split("\n")
            lines = []
            for piece in complete:
                raw = partial + piece[: max(0, max_line - len(partial))]
                cut = dropped + max(0, len(partial) + len(piece) - max_line)
                lines.append(raw + (f" …[line truncated: {cut} chars]" if cut else ""))
                partial, dropped = "", 0
            room = max(0, max_line - len(partial))
            dropped += max(0, len(rest) - room)
            partial += rest[:room]
            for raw in lines:
                line = _ANSI_RE.sub("", raw).rstrip()
                if not line:
                    continue
                tail.append(line)
                result = on_log(line)
                if inspect.isawaitable(result):
                    await result

        started = time.monotonic()
        try:
            async with self._engine_errors(f"build image {tag}"):
                async with asyncio.timeout(self.settings.build_timeout_s):
                    stream = docker.images.build(
                        fileobj=io.BytesIO(context),
                        encoding="gzip",
                        tag=tag,
                        rm=True,
                        forcerm=True,  # no intermediate containers left behind on failure
                        pull=False,
                        labels=labels,
                        stream=True,
                    )
                    try:
                        async for chunk in stream:
                            if chunk.get("stream"):
                                await emit(chunk["stream"])
                            elif chunk.get("status"):  # e.g. pulling a FROM image
                                await emit(f"{chunk['status']} {chunk.get('progress', '')}\n")
                    except DockerStreamError as exc:  # the build itself failed
                        if partial:
                            await emit("\n")
                        raise classify_build_failure(exc.message, list(tail), custom) from exc
        except InfraError as exc:
            cause = exc.__cause__
            if isinstance(cause, TimeoutError):
                raise InfraError(
                    f"building {tag} did not finish within {self.settings.build_timeout_s} s "
                    "(setting build_timeout_s)"
                ) from exc
            if (
                custom
                and isinstance(cause, DockerError)
                and not isinstance(cause, DockerStreamError)
                and cause.status == 400
            ):
                # The engine refused the user's Dockerfile itself (e.g. a parse error).
                raise BuildError(
                    f"your Dockerfile failed to build: {cause.message}", log="\n".join(tail)
                ) from exc
            raise
        if partial:
            await emit("\n")
        if await self._image_id(tag) is None:
            raise InfraError(
                f"building {tag} ended without producing the image (the engine connection "
                f"may have dropped); last output: {' | '.join(list(tail)[-3:])}"
            )
        log.info("built %s in %.1f s", tag, time.monotonic() - started)

    # -- containers ---------------------------------------------------------------------

    def _staging(self, name: str) -> Path:
        return self.settings.staging_dir / name

    def _stage(self, spec: RunSpec) -> Path:
        """Write the bundle that is bind-mounted read-only at /agenttui."""
        staging = self._staging(spec.name)
        self.prepare_folder(staging)
        self.write_agent_files(staging, spec)
        return staging

    def prepare_folder(self, folder: Path) -> None:
        """The bundle's folder with what every container gets: the runner, the CA bundle."""
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o755)  # readable by the unprivileged user inside the container
        files = {RUNNER_FILENAME: runner_source().encode()}
        ca_bundle = self._ca_bundle()
        if ca_bundle:
            files[CA_FILENAME] = ca_bundle
        _write_readable(folder, files)

    @staticmethod
    def write_agent_files(folder: Path, spec: RunSpec) -> None:
        _write_readable(folder, {
            AGENT_FILENAME: spec.request.agent_code.encode(),
            REQUIREMENTS_FILENAME: spec.request.requirements.encode(),
        })

    @staticmethod
    def _identity_labels(spec: RunSpec) -> dict[str, str]:
        """The labels that say which test attempt a container belongs to."""
        return {
            PROJECT_LABEL: "1",
            "agenttui.engine.store": spec.store_id,
            "agenttui.test_id": str(spec.test_id),
            "agenttui.attempt": str(spec.attempt),
        }

    def _labels(self, spec: RunSpec) -> dict[str, str]:
        # The identity labels win: extra labels cannot disguise whose container it is.
        return {**self.settings.extra_labels, **spec.labels, **self._identity_labels(spec)}

    def _container_config(
        self,
        spec: RunSpec,
        image: str,
        staging: Path,
        sidecar: str | None = None,
        *,
        waiting_labels: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """The container of `spec`; with `waiting_labels`, a warm-pool container of its kind
        instead: no test's environment, and a runner that waits for its job (docker_pool)."""
        custom = bool(spec.request.dockerfile.strip())
        limits = spec.request.limits
        if waiting_labels is None:
            env = dict(spec.env)
            env.setdefault("AGENTTUI_QUERY", spec.request.query)
        else:
            from agenttui.backends.docker.pool import JOB_FILE, JOB_SIGNAL

            env = {
                "AGENTTUI_JOB_SIGNAL": f"{MOUNT_POINT}/{JOB_SIGNAL}",
                "AGENTTUI_JOB_FILE": f"{MOUNT_POINT}/{JOB_FILE}",
                "AGENTTUI_JOB_WAIT_S": str(int(self.settings.warm_pool_idle_s)),
            }
        if self.settings.extra_ca_bundle is not None:
            env.setdefault("SSL_CERT_FILE", f"{MOUNT_POINT}/{CA_FILENAME}")
            env.setdefault("REQUESTS_CA_BUNDLE", f"{MOUNT_POINT}/{CA_FILENAME}")
        env.update(PYTHONUNBUFFERED="1", PYTHONDONTWRITEBYTECODE="1")
        memory = limits.memory_mb * 1024 * 1024
        log_file_mb = max(1, math.ceil(self.settings.log_max_bytes / 1_000_000))
        host_config: dict[str, Any] = {
            "NanoCpus": int(limits.cpus * 1e9),
            "Memory": memory,
            "MemorySwap": memory,  # equal to Memory: no swap
            "PidsLimit": limits.pids,
            "Init": True,  # reaps zombies and forwards signals to the agent
            "Privileged": False,
            "CapDrop": ["ALL"],
            "SecurityOpt": ["no-new-privileges:true"],
            # Egress policy (docker_net): no network, the net sidecar's, or the bridge.
            **self.net.agent_network(spec, sidecar),
            "Mounts": [
                {"Type": "bind", "Source": str(staging), "Target": MOUNT_POINT, "ReadOnly": True}
            ],
            # Bounded on disk: a flooding agent cannot fill it (the store caps what it keeps).
            "LogConfig": {
                "Type": "json-file",
                "Config": {"max-size": f"{log_file_mb}m", "max-file": "3"},
            },
        }
        config: dict[str, Any] = {
            "Image": image,
            "Labels": self._labels(spec) if waiting_labels is None else waiting_labels,
            "AttachStdout": True,
            "AttachStderr": True,
            "Tty": False,  # keeps stdout and stderr apart in the log stream
            "OpenStdin": False,
            "HostConfig": host_config,
        }
        if custom:
            # The user's image runs its own CMD, as its own user; the root stays writable.
            host_config["ReadonlyRootfs"] = False
        else:
            env["HOME"] = "/tmp"
            env["AGENTTUI_AGENT_PATH"] = f"{MOUNT_POINT}/{AGENT_FILENAME}"
            host_config["ReadonlyRootfs"] = True
            host_config["Tmpfs"] = {
                "/tmp": f"rw,nosuid,nodev,size={self.settings.scratch_mb}m,mode=1777"
            }
            config["User"] = NOBODY
            config["WorkingDir"] = "/tmp"
            # Set as the entrypoint so a base image's own ENTRYPOINT/CMD cannot interfere.
            config["Entrypoint"] = ["python3", f"{MOUNT_POINT}/{RUNNER_FILENAME}"]
            config["Cmd"] = []
        config["Env"] = [f"{key}={value}" for key, value in env.items()]
        return config

    async def start(self, spec: RunSpec, image: str) -> str:
        container_id = await self.pool.take(spec, image)
        if container_id is not None:
            return container_id
        self.pool.cold_starts += 1
        try:
            return await self._start_cold(spec, image)
        finally:
            self.pool.cold_starts -= 1

    async def _start_cold(self, spec: RunSpec, image: str) -> str:
        docker = await self._client()
        try:
            staging = await asyncio.to_thread(self._stage, spec)
        except OSError as exc:
            raise InfraError(
                f"cannot stage the agent bundle in {self._staging(spec.name)}: {exc}"
            ) from exc
        try:
            sidecar = await self.net.prepare(spec)  # tunnels + preflight from the sandbox
        except BaseException:
            await asyncio.to_thread(shutil.rmtree, staging, True)
            raise
        config = self._container_config(spec, image, staging, sidecar)
        try:
            async with self._engine_errors(f"create container {spec.name}"):
                async with asyncio.timeout(API_TIMEOUT_S):
                    created = await docker._query_json(
                        "containers/create", "POST", data=config, params={"name": spec.name}
                    )
            container_id = created["Id"]
        except InfraError as exc:
            if _engine_status(exc) == 409:  # the name is taken
                return await self._adopt_existing(spec)
            # The engine may have created it before the error reached us (a timeout).
            with contextlib.suppress(Exception):
                await self._discard_unstarted(spec)
            await asyncio.to_thread(shutil.rmtree, staging, True)
            await asyncio.shield(self.net.discard(spec.name))
            raise
        try:
            (staging / CONTAINER_ID_MARKER).write_text(container_id)
            self.net.mark_agent(spec.name, container_id)
            await self._start_container(container_id, spec)
        except BaseException:
            # Never leave a created-but-unstarted container behind (also on cancellation).
            await asyncio.shield(self._discard(container_id, staging))
            await asyncio.shield(self.net.discard(spec.name))
            raise
        return container_id

    def take_notes(self, name: str) -> list[str]:
        """Preflight results of a container just started, and whether it was started ahead
        (warm pool), for the test's log."""
        return self.pool.take_notes(name) + self.net.take_notes(name)

    async def probe_network(self, config: Any, plan: Any) -> list[Any]:
        """The preflight on demand (agenttui doctor)."""
        return await self.net.probe(config, plan)

    async def _start_container(self, container_id: str, spec: RunSpec) -> None:
        docker = await self._client()
        try:
            async with self._engine_errors(f"start container {spec.name}"):
                async with asyncio.timeout(API_TIMEOUT_S):
                    async with docker._query(f"containers/{container_id}/start", "POST"):
                        pass
        except InfraError as exc:
            cause = exc.__cause__
            message = cause.message.lower() if isinstance(cause, DockerError) else ""
            if spec.request.dockerfile.strip() and any(
                sign in message for sign in _USER_IMAGE_START_FAILURES
            ):
                raise BuildError(
                    f"the image built from your Dockerfile cannot start its command: "
                    f"{cause.message}"
                ) from exc
            raise

    async def _discard_unstarted(self, spec: RunSpec) -> None:
        info = await self._inspect_raw(spec.name)
        if info is None or info.get("State", {}).get("Status") != "created":
            return
        labels = info.get("Config", {}).get("Labels") or {}
        if all(labels.get(k) == v for k, v in self._identity_labels(spec).items()):
            await self._delete_container(info["Id"])

    async def _discard(self, container_id: str, staging: Path) -> None:
        with contextlib.suppress(Exception):
            await self._delete_container(container_id)
        await asyncio.to_thread(shutil.rmtree, staging, True)

    async def _adopt_existing(self, spec: RunSpec) -> str:
        """A container with this name exists (we crashed between create and persisting the
        handle): reuse it when it is ours, starting it if it never started."""
        info = await self._inspect_raw(spec.name)
        if info is None:
            raise InfraError(f"container {spec.name} was reported as existing, then vanished")
        labels = info.get("Config", {}).get("Labels") or {}
        expected = self._identity_labels(spec)
        if any(labels.get(key) != value for key, value in expected.items()):
            raise InfraError(
                f"a container named {spec.name} already exists and is not this test's "
                f"(labels {labels}); remove it with `docker rm -f {spec.name}`"
            )
        container_id = info["Id"]
        (self._staging(spec.name) / CONTAINER_ID_MARKER).write_text(container_id)
        if info.get("State", {}).get("Status") == "created":
            try:
                await self._start_container(container_id, spec)
            except BaseException:
                await asyncio.shield(self._discard(container_id, self._staging(spec.name)))
                raise
        return container_id

    async def logs(self, handle: str, cursor: str | None) -> AsyncIterator[LogBatch]:
        decoder = LogDecoder(self.settings.log_max_line, cursor)
        while True:
            async for batch in self._read_logs(handle, decoder, follow=True):
                yield batch
            if not await self._is_running(handle):
                break
            # Docker ended a follow while the container runs (seen when its log file
            # rotates under a flood): follow again from the cursor.
            log.info("log follow of %s ended while it runs; following again", handle[:12])
            decoder = decoder.continuation()
        # Docker can end a follow before the container's last lines are delivered (a final
        # partial line; or rotation: a follower missed the last line in 4 of 5 floods through
        # 20 MB files), and can stall one after the container's exit: one plain read from the
        # cursor picks up the rest.
        catch_up = decoder.continuation()
        async for batch in self._read_logs(handle, catch_up, follow=False):
            yield batch

    async def last_lines(self, handle: str, count: int) -> list[LogLine]:
        """The last `count` lines of the container's log, read from the end of its files."""
        lines: list[LogLine] = []
        decoder = LogDecoder(self.settings.log_max_line, None)
        async for batch in self._read_logs(handle, decoder, follow=False, tail=count):
            lines += batch.lines
        return lines

    async def _read_logs(
        self, handle: str, decoder: LogDecoder, follow: bool, tail: int | None = None
    ) -> AsyncIterator[LogBatch]:
        params = {"stdout": "1", "stderr": "1", "timestamps": "1", "follow": "1" if follow else "0"}
        if tail is not None:
            params["tail"] = str(tail)
        if decoder.since_param:
            params["since"] = decoder.since_param
        docker = await self._client()
        try:
            async with self._engine_errors("read the container's logs"):
                async with asyncio.timeout(API_TIMEOUT_S):
                    response = await docker._do_query(
                        f"containers/{handle}/logs",
                        "GET",
                        params=params,
                        timeout=aiohttp.ClientTimeout(
                            total=None, sock_read=None, sock_connect=CHECK_TIMEOUT_S
                        ),
                    )
        except InfraError as exc:
            if _engine_status(exc) == 404:
                return  # gone: there is nothing more to read
            raise
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
                        chunk = await self._read_chunk(response, handle)
                except TimeoutError:
                    if batch or await self._is_running(handle):
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

    async def _is_running(self, handle: str) -> bool:
        info = await self._inspect_raw(handle)
        return bool(info and info.get("State", {}).get("Running"))

    async def _read_chunk(self, response: aiohttp.ClientResponse, handle: str) -> bytes:
        try:
            return await response.content.read(LOG_READ_CHUNK)
        except (aiohttp.ClientError, OSError) as exc:
            raise InfraError(
                f"lost the log stream of container {handle[:12]} ({type(exc).__name__}: {exc}); "
                "resume from the last cursor"
            ) from exc

    async def wait(self, handle: str) -> ExitInfo:
        docker = await self._client()
        try:
            async with self._engine_errors("wait for the container"):
                await docker._query_json(
                    f"containers/{handle}/wait",
                    "POST",
                    timeout=aiohttp.ClientTimeout(
                        total=None, sock_read=None, sock_connect=CHECK_TIMEOUT_S
                    ),
                )
        except InfraError as exc:
            if _engine_status(exc) != 404:
                raise
        info = await self._inspect_raw(handle)
        if info is None:
            return ExitInfo(
                exit_code=None, reason="the container was removed before its exit was read"
            )
        exit_info = self._exit_info(info["State"])
        handed_over = await asyncio.to_thread(self.pool.handed_over_at, info["Name"].lstrip("/"))
        if handed_over is not None:  # started ahead: the test began when it got its job
            exit_info = dataclasses.replace(exit_info, started_at=handed_over)
        if exit_info.exit_code == 137 and not exit_info.oom_killed and not exit_info.reason:
            if handle not in self._stopped:
                # The engine can miss an OOM kill that lands right after start (a known
                # containerd race); say what is known rather than guess the flag.
                exit_info = dataclasses.replace(
                    exit_info,
                    reason="killed by SIGKILL (exit 137) without a stop from agenttui: most "
                    "likely the kernel's OOM killer at the memory limit",
                )
        return exit_info

    @staticmethod
    def _exit_info(state: dict[str, Any]) -> ExitInfo:
        return ExitInfo(
            exit_code=state.get("ExitCode"),
            oom_killed=bool(state.get("OOMKilled")),
            reason=state.get("Error") or "",
            started_at=_epoch_or_none(state.get("StartedAt")),
            finished_at=_epoch_or_none(state.get("FinishedAt")),
        )

    async def stats(self, handle: str) -> Stats | None:
        info = await self._inspect_raw(handle)
        if info is None or not info["State"].get("Running"):
            return None
        # Reading the container's cgroup on this host is instant; the engine's stats API
        # takes about a second per reading (it waits for its next sample).
        local = _host_cgroup_stats(info["State"].get("Pid") or 0, info["Id"])
        if local is not None:
            return local
        try:
            raw = await self._api(
                "read container stats",
                f"containers/{handle}/stats",
                params={"stream": "0", "one-shot": "1"},
            )
        except InfraError as exc:
            if _engine_status(exc) in (404, 409):
                return None
            raise
        memory = raw.get("memory_stats") if isinstance(raw, dict) else None
        if not memory:  # it stopped between the inspect and the reading
            return None
        usage = memory.get("usage")
        details = memory.get("stats") or {}
        # Like `docker stats`: page cache that can be dropped is not counted as use.
        inactive = details.get("total_inactive_file", details.get("inactive_file", 0))
        peak = memory.get("max_usage")  # cgroup v1 only; v2 has no peak in this API
        cpu_ns = ((raw.get("cpu_stats") or {}).get("cpu_usage") or {}).get("total_usage")
        return Stats(
            cpu_s=cpu_ns / 1e9 if cpu_ns is not None else None,
            memory_bytes=usage - inactive if usage is not None else None,
            peak_memory_bytes=peak,
        )

    async def stop(self, handle: str, grace_s: float) -> None:
        info = await self._inspect_raw(handle)
        if info is None or not info["State"].get("Running"):
            return
        self._stopped.add(handle)
        if grace_s > 0:
            signal = (info.get("Config") or {}).get("StopSignal") or "SIGTERM"
            if not await self._kill(handle, signal):
                return
            if await self._wait_stopped(handle, grace_s):
                return
        if await self._kill(handle, "SIGKILL"):
            await self._wait_stopped(handle, POST_KILL_WAIT_S)

    async def _kill(self, handle: str, signal: str) -> bool:
        """Send a signal; False when it is not running (or gone) any more."""
        docker = await self._client()
        try:
            async with self._engine_errors("signal the container"):
                async with asyncio.timeout(API_TIMEOUT_S):
                    async with docker._query(
                        f"containers/{handle}/kill", "POST", params={"signal": signal}
                    ):
                        pass
        except InfraError as exc:
            if _engine_status(exc) in (404, 409):
                return False
            raise
        return True

    async def _wait_stopped(self, handle: str, timeout_s: float) -> bool:
        docker = await self._client()
        try:
            async with self._engine_errors("wait for the container to stop"):
                async with asyncio.timeout(timeout_s):
                    await docker._query_json(
                        f"containers/{handle}/wait", "POST", timeout=None
                    )
        except InfraError as exc:
            if isinstance(exc.__cause__, TimeoutError):
                return False
            if _engine_status(exc) == 404:
                return True
            raise
        return True

    async def _delete_container(self, handle: str) -> None:
        docker = await self._client()
        try:
            async with self._engine_errors("remove the container"):
                async with asyncio.timeout(API_TIMEOUT_S):
                    async with docker._query(
                        f"containers/{handle}", "DELETE", params={"force": "1", "v": "1"}
                    ):
                        pass
        except InfraError as exc:
            cause = exc.__cause__
            if isinstance(cause, DockerError) and (
                cause.status == 404 or "already in progress" in cause.message
            ):
                return
            raise

    async def remove(self, handle: str) -> None:
        info = await self._inspect_raw(handle)
        name = info["Name"].lstrip("/") if info else None
        net_name = name or await asyncio.to_thread(self.net.name_of_removed, handle)
        if net_name and self.net.has_network(net_name):
            # Both removals in flight at once: the engine finishes them even if we stop waiting.
            await asyncio.gather(self._delete_container(handle), self.net.discard(net_name))
        else:
            await self._delete_container(handle)
        self._stopped.discard(handle)
        await asyncio.to_thread(self._remove_staging, handle, name)

    def _remove_staging(self, handle: str, name: str | None) -> None:
        if name:
            shutil.rmtree(self._staging(name), ignore_errors=True)
            return
        # The container is gone: find its staging dir by the id recorded at start.
        root = self.settings.staging_dir
        for marker in root.glob(f"*/{CONTAINER_ID_MARKER}") if root.is_dir() else ():
            with contextlib.suppress(OSError):
                if marker.read_text().strip() == handle:
                    shutil.rmtree(marker.parent, ignore_errors=True)

    async def inspect(self, handle: str) -> HandleState | None:
        info = await self._inspect_raw(handle)
        if info is None:
            return None
        state = info["State"]
        running = bool(state.get("Running") or state.get("Restarting"))
        stopped = state.get("Status") in ("exited", "dead", "removing")
        if running:
            await self.net.reattach(info)  # adoption: serve its tunnels from this process
        return HandleState(running=running, exit=self._exit_info(state) if stopped else None)


_CGROUP_ROOT = Path("/sys/fs/cgroup")


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _read_keyed(path: Path, key: str) -> int | None:
    """A value from a "key value" file such as memory.stat or cpu.stat."""
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except (OSError, ValueError):
        pass
    return None


def _host_cgroup_stats(pid: int, container_id: str) -> Stats | None:
    """Resource use read from the container's cgroup files, when this host can see them
    (local engine, same pid namespace); None otherwise."""
    if pid <= 0:
        return None
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return None
    groups: dict[str, str] = {}
    for line in lines:
        _number, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            groups[controller] = path
    unified = groups.get("")
    if "memory" in groups:  # cgroup v1
        memory_path = groups["memory"]
        if container_id not in memory_path:  # pid reused by something else
            return None
        memory_dir = _CGROUP_ROOT / "memory" / memory_path.lstrip("/")
        usage = _read_int(memory_dir / "memory.usage_in_bytes")
        if usage is None:
            return None
        inactive = _read_keyed(memory_dir / "memory.stat", "total_inactive_file") or 0
        cpu_ns = None
        cpu_path = groups.get("cpuacct", "").lstrip("/")
        for mount in ("cpuacct", "cpu,cpuacct", "cpuacct,cpu"):
            cpu_ns = _read_int(_CGROUP_ROOT / mount / cpu_path / "cpuacct.usage")
            if cpu_ns is not None:
                break
        return Stats(
            cpu_s=cpu_ns / 1e9 if cpu_ns is not None else None,
            memory_bytes=usage - inactive,
            peak_memory_bytes=_read_int(memory_dir / "memory.max_usage_in_bytes"),
        )
    if unified is not None and (_CGROUP_ROOT / "cgroup.controllers").exists():  # cgroup v2
        if container_id not in unified:
            return None
        group = _CGROUP_ROOT / unified.lstrip("/")
        usage = _read_int(group / "memory.current")
        if usage is None:
            return None
        inactive = _read_keyed(group / "memory.stat", "inactive_file") or 0
        cpu_us = _read_keyed(group / "cpu.stat", "usage_usec")
        return Stats(
            cpu_s=cpu_us / 1e6 if cpu_us is not None else None,
            memory_bytes=usage - inactive,
            peak_memory_bytes=_read_int(group / "memory.peak"),  # kernel 5.19+
        )
    return None
