"""The log pump: one test's output on its way from the backend to the store.

It reads the backend's log batches, takes the harness's result record out of them, redacts
the secrets, caps what is stored at the store's byte limit and stores each batch with the
backend cursor that follows it (fenced: a lost lease stops it)."""

from __future__ import annotations

import asyncio
import json
import logging

from agenttui.backends.base import Backend, LogBatch
from agenttui.core.redact import Redactor
from agenttui.engine.orchestrator.run import STDOUT_TAIL_LINES, LeaseLost, Run
from agenttui.engine.store import Store, count_into_cap
from agenttui.engine.store.logs import Line
from agenttui.harness import RESULT_TAG, parse_result_line

log = logging.getLogger(__name__)

DRAIN_TIMEOUT_S = 10.0  # how long logs may lag behind the container's exit
RECOVERY_TAIL_LINES = 20  # read from the log file's end when the stream lost the result record
TRUNCATION_NOTICE_ROOM = 64  # room past log_max_line for a backend's "…[line truncated: N bytes]"


class LogPump:
    """The pump of one run's log, made when its supervision starts: it counts from what the
    store holds of the log then."""

    def __init__(self, store: Store, backend: Backend, run: Run, *, max_line: int):
        self.store = store
        self.backend = backend
        self.run = run
        self.max_line = max_line
        self.redact: Redactor = run.redact
        self.nonce = run.test.result_nonce or ""
        self.batches = 0  # batches read from the backend's log stream (drain progress)
        # What the store holds of this test's log, counted as the store counts it. Once the
        # lines sent pass the cap, the store keeps no more agent lines (it has written its
        # truncation notice), so later ones are neither redacted nor sent: past the cap a
        # flood costs the server only the decoding (the result record is still looked for).
        self.stored, self.full = run.test.log_bytes, run.test.log_truncated
        self.cap = store.log_max_bytes

    async def pump(self, handle: str) -> None:
        """Store the log until the backend's stream ends."""
        run = self.run
        async for batch in self.backend.logs(handle, run.test.log_cursor):
            self.batches += 1
            lines, found = self._read(batch)
            if not self.full:
                self._cap(lines)
            ok = await self.store.append_logs(
                run.test.id, lines, fence=run.fence, cursor=batch.cursor, **found  # type: ignore[arg-type]
            )
            if not ok:
                raise LeaseLost()

    async def drain(self, pumping: asyncio.Task[None]) -> None:
        """Keep draining until the stream ends so the last lines (the result record among
        them) are never lost: a flood can leave a backlog that takes longer than
        DRAIN_TIMEOUT_S to read, so give up only after that long without progress."""
        while True:
            batches = self.batches
            try:
                await asyncio.wait_for(asyncio.shield(pumping), DRAIN_TIMEOUT_S)
                return
            except asyncio.TimeoutError:
                if self.batches == batches:
                    log.warning("test %s: log stream stalled %s s after exit", self.run.test.id, DRAIN_TIMEOUT_S)
                    return

    async def recover_result(self, handle: str) -> None:
        """Docker's log stream can lose the end of a log whose file rotated under a flood, and
        the harness record with it; the end of the log's file still has it."""
        run = self.run
        try:
            lines = await self.backend.last_lines(handle, RECOVERY_TAIL_LINES)
        except Exception as exc:  # the outcome is then decided without the record
            log.warning("test %s: could not read the end of its log: %s", run.test.id, exc)
            return
        for line in reversed(lines):
            record = parse_result_line(line.text, self.nonce) if line.stream == "stdout" else None
            if record is not None:
                log.info("test %s: its result record was read from the end of its log file", run.test.id)
                run.result = record
                result_json = self.redact(json.dumps(record))
                if not await self.store.update_fenced(run.test.id, run.fence, result_json=result_json):  # type: ignore[arg-type]
                    raise LeaseLost()
                return

    def _read(self, batch: LogBatch) -> tuple[list[Line], dict[str, str]]:
        """The batch's lines to store, redacted, and the columns to store with them (the
        result record, when the batch has it: an adopter whose container is gone still knows
        the outcome). Past the cap only the record is looked for."""
        run, full = self.run, self.full
        lines: list[Line] = []
        texts: list[str] = []  # the texts of lines, to be redacted together
        found: dict[str, str] = {}
        for line in batch.lines:
            text = line.text
            if line.stream == "stdout":
                if RESULT_TAG in text:  # cheap test first: parsing costs a strip per line
                    record = parse_result_line(text, self.nonce)
                    if record is not None:
                        if texts and texts[-1] == "" and lines[-1][1] == "stdout":
                            # The harness's newline before its record (it ends a partial
                            # line the agent left): after a whole line it is an empty one.
                            lines.pop()
                            texts.pop()
                        texts = self._redact_into(lines, texts)  # in stream order
                        run.result = record
                        found["result_json"] = self.redact(json.dumps(record))
                        continue
                run.stdout_tail.append(text)
            if full:
                continue
            lines.append(line)
            texts.append(text.replace("\x00", "\ufffd"))
        del run.stdout_tail[:-STDOUT_TAIL_LINES]
        if texts:
            self._redact_into(lines, texts)
        return lines, found

    def _cap(self, lines: list[Line]) -> None:
        """Count the lines as the store counts them; cut them after the first that passes the cap."""
        self.stored, past = count_into_cap(lines, self.stored, self.cap)
        if past is not None:
            self.full = True  # the store writes its truncation notice here; no more is sent
            del lines[past + 1 :]

    def _redact_into(self, lines: list[Line], texts: list[str]) -> list[str]:
        """Put the redacted `texts` into the last len(texts) `lines` (before any cut: no half
        secret is left); returns a fresh list for the texts that follow."""
        first = len(lines) - len(texts)
        for index, text in enumerate(self.redact.lines(texts), first):
            ts, stream, raw = lines[index]
            # A backend that capped the line itself appended a notice with the line's true
            # size: keep it (cutting again would report the cut length instead).
            if len(text) > self.max_line + TRUNCATION_NOTICE_ROOM:
                text = text[: self.max_line] + f" …[line truncated: {len(raw)} chars]"
            if text is not raw:
                lines[index] = (ts, stream, text)
        return []
