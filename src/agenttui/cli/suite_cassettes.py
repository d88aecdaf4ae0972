"""`suite run|resume --record DIR / --replay DIR` (docs/replay.md, docs/suites.md): a cassette per
case and repeat in one folder, named from the case's id and the repeat (`greets.1.cassette.json`).

As for `submit`, the files are the user's: read here and sent in the run's request, written here
(from the server's `trace`, with the user's rights) once the tests have ended."""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agenttui.cli.common import UserError

SUFFIX = ".cassette.json"
# A case's cassettes all ride in the run's one request, which the server caps at 1 MB with the
# agent's code: past this the user is told to replay fewer cases at a time.
MAX_REPLAYED_BYTES = 900 * 1024
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def cassette_name(case_id: str, repeat: int) -> str:
    """`<case>.<repeat>.cassette.json`; a case id that is not a safe file name keeps its safe
    characters and gains a short digest of the id, so two ids never share a file."""
    safe = _UNSAFE.sub("_", case_id).strip("._-") or "case"
    if safe != case_id:
        safe = f"{safe[:80]}-{hashlib.sha256(case_id.encode()).hexdigest()[:8]}"
    return f"{safe}.{repeat}{SUFFIX}"


class SuiteCassettes:
    """What `--record DIR` or `--replay DIR` adds to each case × repeat's request, and the
    cassettes written back once the run's tests have ended."""

    def __init__(self, directory: Path, *, record: bool, mode: str, realtime: bool):
        self.directory, self.record, self.mode, self.realtime = directory, record, mode, realtime
        self.kinds: dict[tuple[str, int], str] = {}  # (case, repeat) → "record" | "replay"
        self.replayed_bytes = 0

    def path(self, case_id: str, repeat: int) -> Path:
        return self.directory / cassette_name(case_id, repeat)

    def fields(self, case_id: str, repeat: int) -> dict[str, Any]:
        """The request's `record` / `replay` fields for this case × repeat. A missing cassette
        records (new-calls-live) or is refused (strict, by `check_missing`)."""
        path = self.path(case_id, repeat)
        if self.record or (self.mode == "new-calls-live" and not path.exists()):
            self.kinds[(case_id, repeat)] = "record"
            return {"record": True}
        if not path.exists():
            self.kinds[(case_id, repeat)] = "missing"
            return {}
        from agenttui.cli.cassettes import read_cassette  # with sandbox.cassette: not at the parser's start

        document = read_cassette(path)
        self.replayed_bytes += len(json.dumps(document))
        self.kinds[(case_id, repeat)] = "replay"
        return {"replay": {"cassette": document, "mode": self.mode, "realtime": self.realtime}}

    def prepare(self, slots: list[tuple[str, int]]) -> Callable[[str, int], dict[str, Any]]:
        """Every slot's fields, read and checked before anything is queued (`suite run`)."""
        fields = {slot: self.fields(*slot) for slot in slots}
        self.check(slots)
        return lambda case_id, repeat: fields[(case_id, repeat)]

    def checked_fields(self, case_id: str, repeat: int) -> dict[str, Any]:
        """One slot's fields, refused at once when its strict cassette is missing (`suite resume`)."""
        fields = self.fields(case_id, repeat)
        self.check([(case_id, repeat)])
        return fields

    def check(self, slots: list[tuple[str, int]]) -> None:
        """Before anything is queued: every strict replay has its cassette, and they fit one request."""
        missing = [self.path(*slot).name for slot in slots if self.kinds.get(slot) == "missing"]
        if missing:
            shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            raise UserError(f"--replay {self.directory}: no cassette for {len(missing)} case run(s) ({shown}), "
                            "nothing was queued; record them with `suite run --record DIR`, or give "
                            "--replay-mode new-calls-live to run those live and record them")
        if self.replayed_bytes > MAX_REPLAYED_BYTES:
            raise UserError(f"--replay {self.directory}: the cassettes of these case runs hold "
                            f"{self.replayed_bytes // 1024} KB, more than the {MAX_REPLAYED_BYTES // 1024} KB a run's "
                            "request can carry; nothing was queued: replay fewer cases at a time (--case ID)")

    def writes(self) -> bool:
        """Whether this run writes cassettes (a strict replay writes none)."""
        return self.record or self.mode == "new-calls-live"

    async def write(self, client: Any, slots: list[Any], views: dict[int, Any]) -> None:
        """Each ended test's cassette, from the server's `trace`: a recording, or a replayed one
        that grew in new-calls-live mode (an unchanged one is left as it is)."""
        if not self.writes():
            return
        from agenttui.cli.cassettes import save_cassette

        written, unchanged, skipped = 0, 0, 0
        for slot in slots:
            kind = self.kinds.get((slot.case_id, slot.repeat))
            view = views.get(slot.test_id) if slot.test_id is not None else None
            if kind is None or view is None:
                continue
            if kind == "record" and (view.status.value == "CANCELLED" or view.failure_kind == "infra"):
                skipped += 1  # a run cut short by the infrastructure is no recording to commit
                continue
            trace = await client.trace(view.id)
            if trace.cassette is None:
                unchanged += 1
                continue
            save_cassette(view.id, trace, self.path(slot.case_id, slot.repeat), quiet=True)
            written += 1
        note = f"; {unchanged} unchanged" if unchanged else ""
        note += f"; {skipped} not written (the test was cancelled or failed by the infrastructure)" if skipped else ""
        print(f"agenttui: wrote {written} cassette(s) to {self.directory}{note}", file=sys.stderr)


class _CassetteClient:
    """The client, each slot's cassette fields added to the run's request (`tests[i]` runs
    `slots[i]`) as it is sent: the runner builds the request, the files are read here."""

    def __init__(self, client: Any, slot_fields: Callable[[str, int], dict[str, Any]]):
        self._client, self._slot_fields = client, slot_fields

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def _with_fields(self, body: Any) -> Any:
        for slot, test in zip(body.slots, body.tests, strict=True):
            test.update(self._slot_fields(slot.case_id, slot.repeat))
        return body

    async def create_suite_run(self, body: Any) -> Any:
        return await self._client.create_suite_run(self._with_fields(body))

    async def resume_suite_run(self, run_id: int, body: Any) -> Any:
        return await self._client.resume_suite_run(run_id, self._with_fields(body))


def with_cassettes(client: Any, slot_fields: Callable[[str, int], dict[str, Any]] | None) -> Any:
    """`client` whose suite-run requests carry each slot's `record` / `replay` fields (itself without)."""
    return client if slot_fields is None else _CassetteClient(client, slot_fields)


def suite_cassettes(args: argparse.Namespace, egress_by_case: dict[str, str | None]) -> SuiteCassettes | None:
    """The run's --record / --replay DIR, checked; None without either."""
    record, replay = getattr(args, "record", None), getattr(args, "replay", None)
    mode, realtime = getattr(args, "replay_mode", None), getattr(args, "replay_realtime", False)
    if record is None and replay is None:
        if mode or realtime:
            raise UserError("--replay-mode and --replay-realtime go with --replay DIR")
        return None
    if record is not None and replay is not None:
        raise UserError("give --record DIR or --replay DIR, not both (--replay-mode new-calls-live records "
                        "the cases that have no cassette yet)")
    for case_id, egress in egress_by_case.items():
        if egress is not None and str(egress).strip().lower() != "provider-only":
            raise UserError(f"case {json.dumps(case_id)} egress {egress}: --record and --replay need egress "
                            "provider-only (the model calls must pass agenttui's forwarder); set it in the suite file")
    directory = record if record is not None else replay
    if directory.exists() and not directory.is_dir():
        raise UserError(f"{'--record' if record is not None else '--replay'} {directory} is a file; "
                        "suites take a folder (a cassette per case and repeat)")
    if record is not None or mode == "new-calls-live":
        if getattr(args, "no_wait", False):
            raise UserError("--record and --replay-mode new-calls-live write the cassettes once the tests end: "
                            "drop --no-wait")
        if not directory.exists():
            if not directory.parent.is_dir():
                raise UserError(f"--record {directory}: the folder {directory.parent} does not exist")
            directory.mkdir()
    elif not directory.is_dir():
        raise UserError(f"--replay {directory}: no such folder; record one with `suite run --record DIR`")
    return SuiteCassettes(directory, record=record is not None, mode=mode or "strict", realtime=bool(realtime))


def add_cassette_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--record", type=Path, metavar="DIR",
                        help="write each case run's model exchanges to DIR/<case>.<repeat>.cassette.json")
    parser.add_argument("--replay", type=Path, metavar="DIR",
                        help="answer each case run's model calls from its cassette in DIR; nothing upstream is opened")
    parser.add_argument("--replay-mode", choices=["strict", "new-calls-live"],
                        help="strict (default): a missing cassette or a call it lacks fails; new-calls-live: "
                             "those go to the endpoint and are recorded")
    parser.add_argument("--replay-realtime", action="store_true",
                        help="replay a stream's chunks at their recorded pace")
