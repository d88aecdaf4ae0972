"""CloudWatch Logs: a task's stream followed with the forward token as the resumable cursor, result parts joined."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from agenttui.backends.base import InfraError, LogBatch, LogLine
from agenttui.backends.ecs.aws import ERROR_BUDGET_S, RateLimiter, describe_error, error_code
from agenttui.backends.ecs.description import RUNNING_PHASE, TASK_PHASES
from agenttui.backends.ecs.poller import TaskWatch
from agenttui.core.config import Settings

log = logging.getLogger(__name__)

LOGS_RATE = 20.0  # GetLogEvents calls per second, shared (account quota: 25/s per region)
LOG_PAGE_LIMIT = 10_000  # events per GetLogEvents page (the API's maximum)
QUIET_FETCHES = 2  # empty fetches after STOPPED before the stream counts as drained
PART_RE = re.compile(r"^@@agenttui-part (\d+)/(\d+) ([A-Za-z0-9+/=]*)$")
MAX_HELD_CHARS = 64 * 1024 * 1024


def log_stream_name(settings: Settings, task_id: str) -> str:
    return f"{settings.ecs_log_stream_prefix}/{settings.ecs_container_name}/{task_id}"


@dataclass(frozen=True)
class LogCursor:
    """Where to resume a CloudWatch stream: a forward token (None: the head) and how many
    events after it were already consumed."""

    token: str | None = None
    skip: int = 0

    def dump(self) -> str:
        return json.dumps({"t": self.token, "s": self.skip}, separators=(",", ":"))

    @classmethod
    def load(cls, text: str | None) -> LogCursor:
        if not text:
            return cls()
        try:
            data = json.loads(text)
            return cls(data.get("t"), int(data.get("s") or 0))
        except (ValueError, TypeError, AttributeError):
            log.warning("unreadable ECS log cursor %r; reading the stream from its start", text[:80])
            return cls()
class PartJoiner:
    """Joins the runner's `@@agenttui-part i/n <base64>` lines back into the result record.

    While parts are pending, every later line is held too (order is kept) and `hold_cursor`
    is where a resumed reader must start so nothing held is lost."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self.hold_cursor: LogCursor | None = None
        self.raw: list[LogLine] = []
        self.held: list[LogLine] = []
        self.parts: list[str] = []
        self.total = 0
        self.size = 0

    @property
    def holding(self) -> bool:
        return self.hold_cursor is not None

    def feed(self, line: LogLine, position: LogCursor) -> list[LogLine]:
        match = PART_RE.match(line.text)
        if match:
            number, total, chunk = int(match.group(1)), int(match.group(2)), match.group(3)
            if not self.holding:
                if number != 1 or total < 1:
                    return [line]
                self.hold_cursor, self.total, self.parts, self.raw = position, total, [chunk], [line]
                self.size = len(chunk)
                return self._complete() if total == 1 else []
            if number == len(self.parts) + 1 and total == self.total:
                self.parts.append(chunk)
                self.raw.append(line)
                self.size += len(chunk)
                return self._complete() if number == total else []
            # Out of order: give the lines back as they were, then look at this one afresh.
            return self.release() + self.feed(line, position)
        if not self.holding:
            return [line]
        self.raw.append(line)
        self.held.append(line)
        self.size += len(line.text)
        if self.size > MAX_HELD_CHARS:
            return self.release()
        return []

    def _complete(self) -> list[LogLine]:
        first = self.raw[0]
        try:
            text = base64.b64decode("".join(self.parts), validate=True).decode("utf-8", errors="replace")
        except (ValueError, TypeError):
            return self.release()
        out = [LogLine(first.ts, "stdout", text), *self.held]
        self._reset()
        return out

    def release(self) -> list[LogLine]:
        out = list(self.raw)
        self._reset()
        return out


class StreamFollower:
    """One reader of a task's stream, from a cursor to its end: after STOPPED, the stream is read
    until its token stops moving. ECS's phases come as system lines: up to RUNNING at once, the
    later ones after the lines written before them."""

    def __init__(
        self,
        logs: Any,  # the CloudWatch Logs client
        settings: Settings,
        limiter: RateLimiter,
        page_limit: int,
        task_id: str,
        watch: TaskWatch,
        cursor: str | None,
    ):
        self.logs = logs
        self.settings = settings
        self.limiter = limiter
        self.page_limit = page_limit
        self.task_id = task_id
        self.watch = watch
        self.group, self.stream = settings.ecs_log_group, log_stream_name(settings, task_id)
        self.read = LogCursor.load(cursor)
        self.joiner = PartJoiner()
        self.notes: list[LogLine] = []
        self.held: list[LogLine] = []  # phases after RUNNING: shown once the lines before them are read
        self.last_status: str | None = None
        self.shown_running = False
        self.errors_since: float | None = None

    def note_insights_off(self) -> None:
        self.notes.append(
            LogLine(
                time.time(),
                "system",
                f"[agenttui] Container Insights is off on cluster {self.settings.ecs_cluster}: no live CPU/memory "
                "readings (the harness reports its own usage at the end)",
            )
        )

    def _phase_note(self, status: str) -> LogLine:
        return LogLine(time.time(), "system", f"[agenttui] ECS task {self.task_id[:12]}: {status}")

    def _note_phase(self) -> None:
        status = self.watch.status
        if status and status != self.last_status:
            self.last_status = status
            rank = TASK_PHASES.index(status) if status in TASK_PHASES else RUNNING_PHASE
            if rank <= RUNNING_PHASE and not self.shown_running:  # a lagging poll says nothing new
                self.shown_running = rank == RUNNING_PHASE
                self.notes.append(self._phase_note(status))
            elif rank > RUNNING_PHASE:
                self.held.append(self._phase_note(status))

    async def _fetch(self) -> tuple[bool, dict[str, Any] | None]:
        """(True, page); (True, None) while the stream does not exist yet; (False, None) after an
        error, once the pause before the retry is over."""
        params: dict[str, Any] = dict(
            logGroupName=self.group, logStreamName=self.stream, startFromHead=True, limit=self.page_limit
        )
        if self.read.token:
            params["nextToken"] = self.read.token
        await self.limiter.acquire()
        try:
            page: dict[str, Any] = await self.logs.get_log_events(**params)
        except Exception as exc:
            if error_code(exc) == "ResourceNotFoundException":
                return True, None  # the stream does not exist yet: the task has not started
            now = time.monotonic()
            self.errors_since = self.errors_since or now
            if now - self.errors_since > ERROR_BUDGET_S:
                raise InfraError(
                    f"cannot read CloudWatch Logs {self.group}/{self.stream}: {describe_error(exc)}"
                ) from exc
            log.warning("GetLogEvents %s failed (%s); retrying", self.stream, describe_error(exc))
            await asyncio.sleep(min(10.0, self.settings.ecs_poll_s * 2))
            return False, None
        self.errors_since = None
        return True, page

    def _read(self, page: dict[str, Any] | None) -> tuple[list[LogLine], bool, bool]:
        """The lines of `page` past the cursor, which moves past them; (lines, moved, full page)."""
        lines: list[LogLine] = []
        if page is None:
            return lines, False, False
        raw_events = page.get("events") or []
        full_page = len(raw_events) >= self.page_limit
        events = raw_events[self.read.skip :]
        for index, event in enumerate(events):
            position = LogCursor(self.read.token, self.read.skip + index)
            text = (event.get("message") or "").rstrip("\r\n")
            line = LogLine((event.get("timestamp") or 0) / 1000.0, "stdout", text)
            lines.extend(self.joiner.feed(line, position))
        token = page.get("nextForwardToken") or self.read.token
        moved = bool(events) or token != self.read.token
        if moved:
            self.read = LogCursor(token, 0)
        return lines, moved, full_page

    async def batches(self) -> AsyncIterator[LogBatch]:
        quiet = 0
        while True:
            self._note_phase()
            terminal = self.watch.terminal  # known before this fetch: an empty fetch now means drained
            fetched, page = await self._fetch()
            if not fetched:
                continue
            lines, moved, full_page = self._read(page)
            report = self.joiner.hold_cursor if self.joiner.holding else self.read
            if lines and not self.shown_running:
                # A poll can miss a short RUNNING phase; the lines say the container ran.
                self.shown_running = True
                self.notes.append(self._phase_note("RUNNING"))
            if not moved:  # caught up with the stream: later phases come after what was read
                self.notes.extend(self.held)
                self.held = []
            if self.notes or lines:
                yield LogBatch([*self.notes, *lines], report.dump())
                self.notes = []
            if moved:
                quiet = 0
                if full_page or not lines:
                    continue  # more is waiting, or the token moved past an empty page
            elif terminal:
                quiet += 1
                if quiet >= QUIET_FETCHES:
                    break
            await asyncio.sleep(self.settings.ecs_poll_s)
        leftover = [*self.notes, *self.joiner.release(), *self.held]
        if leftover:
            yield LogBatch(leftover, self.read.dump())
