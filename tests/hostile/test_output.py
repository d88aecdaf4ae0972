"""Agents that attack the log path: a 1 GB flood, one 50 MB line, bytes that are not text.

All go through the real server and the real `agenttui submit`, which follows the log over
the socket while the agent writes, so the client side of the stream is attacked too.
"""

import re
import shutil
import subprocess
import threading
import time

import pytest

from .agents import JUNK_OUTPUT, LONG_LINE, LONG_LINE_MB, LONG_LINE_PREFIX, log_flood
from ..helpers import stored_log
from .conftest import wait_for, write_agent

pytestmark = pytest.mark.docker

MB = 1024 * 1024
GB = 1024 * MB
LOG_CAP = 20_000_000  # the default per-test log cap (setting log_max_bytes)
MAX_LINE = 16_384  # the default longest stored line (setting log_max_line)
# The server's peak RSS (VmHWM) may never pass this, however much an agent writes. It idles
# near 80 MB; a 1 GB flood measured here peaks around 120 MB.
SERVER_PEAK_RSS_LIMIT_MB = 200
# What one flood may add to the server's resident memory: a tenth of what it wrote.
FLOOD_RSS_GROWTH_LIMIT_MB = 100


class RssSampler:
    """Samples a process's VmRSS every 50 ms in a thread (VmHWM alone would also hold the past)."""

    def __init__(self, server):
        self.server = server
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.samples.append(self.server.rss_kb())
            time.sleep(0.05)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def stored_lines(server, test_id: int) -> list[tuple[int, str, str]]:
    return [(line.seq, line.stream, line.text) for line in stored_log(server.db_path, test_id)]


def docker_root() -> str:
    return subprocess.run(
        ["docker", "info", "--format", "{{.DockerRootDir}}"], capture_output=True, text=True, check=True
    ).stdout.strip()


def test_log_flood_of_1gb_is_capped_and_the_server_stays_small(server, tmp_path):
    agent = write_agent(tmp_path, log_flood(GB))
    rss_before_kb = server.rss_kb()
    free_before = shutil.disk_usage(docker_root()).free
    started = time.monotonic()
    with RssSampler(server) as rss:
        record = server.submit(agent, timeout=240)
    elapsed = time.monotonic() - started
    assert record["status"] == "COMPLETED" and record["_exit"] == 0, record["error"]
    flooded = re.fullmatch(r"flooded (\d+) bytes in [\d.]+ s", record["response"])
    assert flooded and GB <= int(flooded.group(1)) < GB + MB, record["response"]
    assert record["log_truncated"] is True
    lines = stored_lines(server, record["id"])
    agent_bytes = sum(len(text.encode()) + 1 for _, stream, text in lines if stream != "system")
    assert LOG_CAP - 20_000 < agent_bytes <= LOG_CAP  # filled to the cap, never past it
    notices = [text for _, _, text in lines if text.startswith("[agenttui] log truncated")]
    assert len(notices) == 1 and "20,000,000-byte cap" in notices[0]
    assert lines[-1][2] == "[agenttui] COMPLETED"  # the engine's closing line lands past the cap
    # The follower (`agenttui submit`) got the same capped log, notice included, once.
    assert record["_stderr"].count("[agenttui] log truncated") == 1
    # Bounded server memory while 1 GB went through it: a concrete ceiling, and the growth.
    peak_kb = max(rss.samples)
    print(f"\n1 GB flood: {elapsed:.1f} s end to end ({record['response']}); server RSS before "
          f"{rss_before_kb / 1024:.0f} MB, peak during {peak_kb / 1024:.0f} MB, "
          f"VmHWM {server.peak_rss_kb() / 1024:.0f} MB")
    assert server.peak_rss_kb() < SERVER_PEAK_RSS_LIMIT_MB * 1024
    assert peak_kb - rss_before_kb < FLOOD_RSS_GROWTH_LIMIT_MB * 1024
    # Nor the host's disk: the engine's log file is size-capped too (1 GB uncapped would show).
    dropped = free_before - shutil.disk_usage(docker_root()).free
    assert dropped < 400 * MB, f"free space dropped by {dropped / MB:.0f} MB"
    wait_for(lambda: server.containers_of(record["id"]) == [], 10, 0.2)
    server.assert_healthy(tmp_path)


def test_a_single_50mb_line_is_stored_cut_with_its_true_size(server, tmp_path):
    agent = write_agent(tmp_path, LONG_LINE)
    with RssSampler(server) as rss:
        record = server.submit(agent)
    assert record["status"] == "COMPLETED" and record["response"] == "survived", record["error"]
    long = [text for _, _, text in stored_lines(server, record["id"]) if text.startswith(LONG_LINE_PREFIX)]
    assert len(long) == 1
    [line] = long
    total = len(LONG_LINE_PREFIX) + LONG_LINE_MB * MB
    # The first log_max_line chars are kept, then a notice with how much was left out.
    kept = LONG_LINE_PREFIX + "y" * (MAX_LINE - len(LONG_LINE_PREFIX))
    notice = re.fullmatch(re.escape(kept) + r" …\[line truncated: (\d+) bytes\]", line)
    assert notice, line[-80:]
    # Exact (total - MAX_LINE) when the engine's log file did not rotate under the line; a
    # 50 MB line spans three 20 MB json-file files, and Docker 20.10's follow repeats or
    # drops pieces across a rotation (measured: +10 MiB, -14 MiB), so only the magnitude holds.
    assert total // 2 <= int(notice.group(1)) <= total * 3 // 2, notice.group(1)
    shown = server.logs_text(record["id"]).splitlines()
    assert max(len(text) for text in shown) < MAX_LINE + 100
    assert max(rss.samples) < SERVER_PEAK_RSS_LIMIT_MB * 1024
    server.assert_healthy(tmp_path)


CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")  # what a terminal could act on (tab allowed)


def test_invalid_utf8_and_control_sequences_are_stored_safely_and_shown_escaped(server, tmp_path):
    from agenttui.tui.formatting import log_lines

    agent = write_agent(tmp_path, JUNK_OUTPUT)
    plain = server.cli("submit", str(agent), "--query", "x")  # plain text output, as a user sees it
    assert plain.returncode == 0, plain.stderr
    test_id = int(re.search(r"test (\d+) queued", plain.stderr).group(1))
    # Stored safely: valid UTF-8 text, invalid bytes as U+FFFD, no NUL.
    records = stored_log(server.db_path, test_id)
    texts = [line.text.encode("utf-8").decode("utf-8") for line in records]  # strict: raises on lone surrogates
    assert not any("\x00" in text for text in texts)
    assert "bad utf8: \ufffd\ufffd \ufffd( \ufffd\ufffd\ufffd \ufffd(\ufffd( end" in texts
    assert "nul:\ufffd: bell:\x07: bs:\x08: del:\x7f:" in texts  # kept as it was, safely stored
    # Shown escaped, never executed: the streamed log, `agenttui logs`, `agenttui show`.
    for output in (plain.stdout, server.logs_text(test_id), server.cli("show", str(test_id)).stdout):
        for line in output.splitlines():
            assert not CONTROL.search(line), repr(line)
    logs = server.logs_text(test_id)
    for escaped in ("clear:\\x1b[2J\\x1b[H home", "title:\\x1b]0;pwned\\x07 clipboard:\\x1b]52;c;cHduZWQ=\\x07",
                    "c1 csi:\\x9b31m red", "cr overwrite: secret\\x0dXXXXXX", "[stderr] stderr \\x1b[31mred\\x1b[0m",
                    "alt screen:\\x1b[?1049h hide cursor:\\x1b[?25l", "nul:\ufffd: bell:\\x07: bs:\\x08: del:\\x7f:"):
        assert escaped in logs, escaped
    assert "response \\x1b[2J\\x1b]0;t\\x07 \\x9b done" in server.cli("show", str(test_id)).stdout
    # The TUI's log panes format stored records with the same escaping.
    assert not [line for line in log_lines(records) if CONTROL.search(line)]
    server.assert_healthy(tmp_path)
