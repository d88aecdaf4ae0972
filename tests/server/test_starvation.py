"""One user cannot starve a shared server (issue 14, point 5): while a user holds 1,500 half-sent
requests, another user is answered within seconds; the first user's connections past the
per-user cap are refused with 429, the half-sent ones are closed by the header timeout, the
server raised its 1024-descriptor soft limit, and its log stays small."""

from __future__ import annotations

import json
import logging
import os
import resource
import subprocess
import tempfile
import time
from pathlib import Path

from agenttui.core.config import server_log_file
from agenttui.server.guard import MAX_CONNECTIONS_PER_USER, RepeatedErrors
from agenttui.server.main import HEADER_TIMEOUT_S

from .conftest import wait_for
from .unix_users import AGENTTUI, UnixUsers, unix_users  # noqa: F401  (the fixture)

CONNECTIONS = 1500
# Run as the attacking user (stdlib only): open CONNECTIONS connections, each sending a request
# whose end never comes; report how many the server refused and kept, then how long it kept them.
ATTACKER = r"""
import json, resource, selectors, socket, sys, time
path, count, hold = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
resource.setrlimit(resource.RLIMIT_NOFILE, (resource.getrlimit(resource.RLIMIT_NOFILE)[1],) * 2)
held, refused, failed = [], 0, 0
for _ in range(count):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(2)
    try:
        s.connect(path)
        s.sendall(b"GET /v1/queue HTTP/1.1\r\nHost: x\r\n")
    except OSError:
        failed += 1
        s.close()
        continue
    held.append(s)
selector = selectors.DefaultSelector()
for s in held:
    selector.register(s, selectors.EVENT_READ)
start = time.monotonic()
open_ = set(held)
def drain(timeout):
    global refused
    for key, _ in selector.select(timeout):
        s = key.fileobj
        data = s.recv(4096)
        refused += data.startswith(b"HTTP/1.1 429") and b"too_many_connections" in data
        selector.unregister(s)
        open_.discard(s)
        s.close()
while time.monotonic() - start < 3:
    drain(0.2)
print(json.dumps({"held": len(open_), "refused": refused, "failed": failed}), flush=True)
start = time.monotonic()
while open_ and time.monotonic() - start < hold:
    drain(0.2)
print(json.dumps({"still_open": len(open_), "closed_after_s": time.monotonic() - start}), flush=True)
"""


def _start_server(socket_path: Path) -> subprocess.Popen:
    """A shared server as a service starts it: the soft limit of open files at 1024."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    env = {**os.environ, "AGENTTUI_SOCKET_PATH": str(socket_path), "AGENTTUI_SOCKET_MODE": "666",
           "AGENTTUI_BACKEND": "noop"}
    server = subprocess.Popen([*AGENTTUI, "server", "--foreground"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL,
                              preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard)))
    wait_for(socket_path.exists, 20)
    return server


def _open_files_limit(pid: int) -> tuple[int, int]:
    line = next(x for x in Path(f"/proc/{pid}/limits").read_text().splitlines() if x.startswith("Max open files"))
    soft, hard = line.split()[3:5]
    return int(soft), int(hard)


def _health_as(users: UnixUsers, user, socket_path: Path) -> tuple[int, dict, float]:
    started = time.monotonic()
    out = users.run(user, ["curl", "-s", "--max-time", "5", "-w", "\n%{http_code}", "--unix-socket",
                           str(socket_path), "http://agenttui/v1/health"], env=dict(os.environ), timeout=30)
    body, _, status = out.stdout.rpartition("\n")
    return int(status or 0), (json.loads(body) if body else {}), time.monotonic() - started


def test_one_user_holding_1500_half_sent_requests_starves_no_one(unix_users):  # noqa: F811
    attacker, victim = unix_users.user("a"), unix_users.user("b")
    folder = Path(tempfile.mkdtemp(prefix="ats-", dir="/tmp"))
    folder.chmod(0o755)
    socket_path = folder / "agenttui.sock"
    server = _start_server(socket_path)
    try:
        assert _open_files_limit(server.pid)[0] == _open_files_limit(server.pid)[1]  # raised at start
        log_size = server_log_file().stat().st_size
        attack = subprocess.Popen(
            UnixUsers.as_user(attacker, ["/usr/bin/python3", "-I", "-c", ATTACKER, str(socket_path), str(CONNECTIONS),
                                         str(HEADER_TIMEOUT_S + 5)]),
            stdout=subprocess.PIPE, text=True)
        unix_users.processes.append(attack)
        first = json.loads(attack.stdout.readline())
        # The attacker's connections past the cap were refused with a 429 saying why; the rest are held.
        assert first["held"] == MAX_CONNECTIONS_PER_USER, first
        assert first["refused"] + first["failed"] == CONNECTIONS - MAX_CONNECTIONS_PER_USER, first
        # Meanwhile another user is served, quickly and as themself.
        for _ in range(3):
            status, health, took = _health_as(unix_users, victim, socket_path)
            assert status == 200 and health["you"]["uid"] == victim.pw_uid, (status, health)
            assert took < 3, took
        # The half-sent requests are dropped by the header timeout, not kept for ever.
        second = json.loads(attack.stdout.readline())
        assert second["still_open"] == 0 and second["closed_after_s"] < HEADER_TIMEOUT_S + 2, second
        assert attack.wait(timeout=10) == 0
        # The refusals were logged once, not once each.
        assert server_log_file().stat().st_size - log_size < 100_000
        assert _health_as(unix_users, attacker, socket_path)[0] == 200  # the attacker is served again
    finally:
        server.terminate()
        server.wait(timeout=15)
        subprocess.run(["rm", "-rf", str(folder)])


def test_a_flood_of_one_error_is_logged_once_then_counted(tmp_path):
    log_file = tmp_path / "server.log"
    handlers = [logging.FileHandler(log_file), logging.FileHandler(tmp_path / "second.log")]
    repeated = RepeatedErrors(window_s=0.5)
    logger = logging.getLogger("agenttui.test.flood")
    logger.propagate = False
    for handler in handlers:
        handler.addFilter(repeated)  # shared, as the server shares it: one decision a record
        logger.addHandler(handler)
    try:
        for round_ in range(2):
            for _ in range(10_000):
                try:
                    raise OSError(24, "Too many open files")
                except OSError:
                    logger.exception("unexpected error serving %s", "GET /v1/queue")
            logger.error("another error")
            time.sleep(0.6 if round_ == 0 else 0)
        logger.warning("one more, after the window")  # a new message: logged at once
    finally:
        for handler in handlers:
            logger.removeHandler(handler)
            handler.close()
    text = log_file.read_text()
    assert text.count("Traceback") == 2 and text.count("another error") == 2, text[:2000]
    assert "[and 9999 more like it in the last" in text
    assert len(text) < 5_000 and (tmp_path / "second.log").read_text() == text
