"""`agenttui logs` of a huge log streams it (issue 17): neither the server nor the client holds
the whole log, and every line arrives in order. Real server, real store, the installed command."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from agenttui.core.config import load_settings
from agenttui.core.domain import TestRequest
from agenttui.engine.store import Owner, Store

LINES = 1_000_000
MEMORY_GROWTH_LIMIT_KB = 50 * 1024
# Runs a command and prints the peak RSS (KB) of it: its only child, so no other process counts.
PEAK_RSS = (
    "import resource, subprocess, sys\n"
    "with open(sys.argv[1], 'wb') as out:\n"
    "    code = subprocess.run(sys.argv[2:], stdout=out).returncode\n"
    "print(code, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
)


@pytest.fixture
def store_env(monkeypatch):
    monkeypatch.setenv("AGENTTUI_BACKEND", "noop")
    monkeypatch.setenv("AGENTTUI_LOG_MAX_BYTES", str(200_000_000))


async def seed(lines: int) -> int:
    """A test with `lines` lines of log, written through the store."""
    settings = load_settings()
    store = await Store.open(settings.resolved_db_url, log_max_bytes=settings.log_max_bytes)
    try:
        test = await store.submit(TestRequest.parse(agent_code="def run(q):\n    return q\n", query="q"),
                                  Owner(os.getuid(), "me"))
        batch = 50_000
        for start in range(0, lines, batch):
            await store.append_logs(test.id, [(1.0 + n, "stdout", f"line {n} of the flood") for n in
                                              range(start, min(start + batch, lines))])
        return test.id
    finally:
        await store.close()


def peak_rss_kb(command: list[str], out: Path) -> int:
    done = subprocess.run([sys.executable, "-c", PEAK_RSS, str(out), *command], capture_output=True, text=True,
                          timeout=600)
    code, peak = done.stdout.split()
    assert code == "0", done.stderr
    return int(peak)


def server_memory_kb(field: str) -> int:
    from agenttui.core.paths import runtime_dir

    pid = int((runtime_dir() / "agenttui.sock.lock").read_text().strip())
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith(field + ":")))


def test_logs_of_a_million_lines_stream_in_bounded_memory(store_env, agenttui_cmd, tmp_path):
    small, huge = asyncio.run(seed(10)), asyncio.run(seed(LINES))
    client_small = peak_rss_kb([*agenttui_cmd, "logs", str(small)], tmp_path / "small.log")  # starts the server
    server_before = server_memory_kb("VmRSS")
    client_huge = peak_rss_kb([*agenttui_cmd, "logs", str(huge)], tmp_path / "huge.log")
    server_peak = server_memory_kb("VmHWM")
    with open(tmp_path / "huge.log") as log:
        lines = [line for line in log if line.startswith("line ")]
    assert len(lines) == LINES
    assert all(line == f"line {n} of the flood\n" for n, line in enumerate(lines))  # every line, in order
    assert client_huge - client_small < MEMORY_GROWTH_LIMIT_KB, (client_small, client_huge)
    assert server_peak - server_before < MEMORY_GROWTH_LIMIT_KB, (server_before, server_peak)


def test_a_followed_log_is_sent_as_the_store_keeps_it(store_env):
    """A follower costs the server no decoding or encoding of what it sends (a followed flood
    must not slow its writer): each NDJSON line of the follow stream is a stored chunk's JSON,
    byte for byte, after the chunk the follower starts inside of; then the final view."""
    from agenttui.client.blocking import BlockingClient
    from agenttui.client.settings import load_client_settings
    from agenttui.engine.store import chunks

    test_id = asyncio.run(seed(5000))
    with BlockingClient(load_client_settings()) as client:  # starts the server: the noop backend ends the test
        client.wait(test_id)
        with client._request("GET", f"/tests/{test_id}/logs", params={"follow": "1", "after": "1500"}) as response:
            assert response.status == 200
            sent = list(response.lines(1 << 24))

    async def stored() -> list[tuple[int, int, bytes]]:
        settings = load_settings()
        store = await Store.open(settings.resolved_db_url)
        try:
            async with store.engine.connect() as conn:
                rows = await conn.execute(text("SELECT first_seq, last_seq, data FROM log_chunks WHERE test_id = :t "
                                               "ORDER BY last_seq"), {"t": test_id})
                return [(first, last, bytes(data)) for first, last, data in rows]
        finally:
            await store.close()

    rows = [row for row in asyncio.run(stored()) if row[1] > 1500]
    assert len(rows) > 3 and rows[0][0] <= 1500  # the first chunk holds line 1500 and goes on after it
    assert [json.loads(line)[0]["seq"] for line in sent[:1]] == [1501]
    assert sent[1:len(rows)] == [chunks.json_of(data) for _first, _last, data in rows[1:]]
    assert json.loads(sent[len(rows)]).get("end") is True and len(sent) == len(rows) + 1
