"""The store's disk fills up while a test runs (issue 14, point 8), for real: the store lives on
a small tmpfs the test mounts and fills.

While full, the engine's writes wait with growing pauses (one warning in server.log, no line
per poll) and `agenttui queue` says why nothing moves; once space is freed the test goes on
in the same attempt and completes with every line once, each marked with its attempt, and no
leftover error."""

import os
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from ..helpers import stored_log, wait_for
from .test_servers_on_postgres import curl

pytestmark = pytest.mark.docker

TICKS = 30
AGENT = (
    "import time\n"
    "def run(query):\n"
    f"    for i in range({TICKS}):\n"
    "        print(f'tick {i}', flush=True)\n"
    "        time.sleep(0.2)\n"
    "    return 'done'\n"
)


@pytest.fixture
def small_disk():
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = Path(tempfile.mkdtemp(prefix="atfull-", dir="/tmp"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)
    mount.rmdir()


def _fill(folder: Path) -> Path:
    filler = folder / "filler"
    with open(filler, "wb") as out:
        try:
            while True:
                out.write(b"\0" * 65536)
                out.flush()
        except OSError:
            pass
    return filler


def test_a_full_store_disk_pauses_the_engine_says_so_and_the_test_completes(small_disk, agenttui_cmd):
    sock = small_disk.parent / f"{small_disk.name}.sock"
    db = small_disk / "store.db"
    env = {**os.environ, "AGENTTUI_DB_URL": f"sqlite+aiosqlite:///{db}", "AGENTTUI_SOCKET_PATH": str(sock)}
    server = subprocess.Popen([*agenttui_cmd, "server"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server_log = Path(os.environ["XDG_STATE_HOME"]) / "agenttui" / "server.log"
    filler = None
    try:
        wait_for(sock.exists, 30)
        test = curl(sock, "POST", "/tests", {"request": {"agent_code": AGENT, "query": "q"}})
        wait_for(lambda: any(r["text"] == "tick 1" for r in curl(sock, "GET", f"/tests/{test['id']}/logs")), 60)
        filler = _fill(small_disk)
        queue = wait_for(lambda: "disk is full" in (out := _queue(agenttui_cmd, env)) and out, 20)
        assert f"stalled: the store's disk is full ({db})" in queue
        log_before = server_log.stat().st_size
        time.sleep(3)  # the agent goes on printing; nothing can be stored
        assert server_log.stat().st_size - log_before < 2000  # waits, not a line per poll
        filler.unlink()
        filler = None
        final = wait_for(lambda: (t := curl(sock, "GET", f"/tests/{test['id']}"))["status"] not in
                         ("QUEUED", "BUILDING", "RUNNING") and t, 60)
        assert (final["status"], final["error"], final["attempt"]) == ("COMPLETED", None, 1)
        lines = curl(sock, "GET", f"/tests/{test['id']}/logs")
        assert [r["text"] for r in lines if r["text"].startswith("tick ")] == [f"tick {i}" for i in range(TICKS)]
        assert {r["attempt"] for r in lines} == {1}
        assert {line.attempt for line in stored_log(db, test["id"])} == {1}  # each stored line names its attempt
        assert "disk is full" not in _queue(agenttui_cmd, env)
        text = server_log.read_text()
        assert text.count("the disk is full") == 1 and "Traceback" not in text
    finally:
        if filler is not None:
            filler.unlink()
        server.terminate()
        server.wait(timeout=30)
        sock.unlink(missing_ok=True)


def _queue(cmd: list[str], env: dict[str, str]) -> str:
    return subprocess.run([*cmd, "queue"], env=env, capture_output=True, text=True, timeout=30).stdout
