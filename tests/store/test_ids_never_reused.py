"""Test ids are never handed out twice (issue 14, point 7). A test's id names its containers,
so a reused id could meet an earlier test's container.

- Migration 0003 over a store the previous version (0002) wrote: the newest test deleted, the
  next one still gets a new id (SQLite's AUTOINCREMENT; PostgreSQL's sequence), indexes kept.
- A store that lost its -wal file after a crash (a real server's, copied without it while the
  server held a running test): the lost test's id is not given again, and a test that does get
  a lost test's id (its id note lost too) runs in its own container, never the lost test's."""

import asyncio
import os
import shutil
import signal
import sqlite3
import subprocess
import tempfile
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from agenttui.core.domain import TestRequest
from agenttui.engine.store import Owner, Store

from ..helpers import wait_for
from .test_migrations import _fill_with_async
from .test_servers_on_postgres import curl

REQUEST = TestRequest.parse(agent_code="def run(q): return q", query="new")


def test_after_the_upgrade_a_deleted_newest_id_is_not_given_again(store_url):
    asyncio.run(_fill_with_async(store_url, "0002"))  # as the previous version left it

    async def check():
        store = await Store.open(store_url)
        try:
            third = await store.submit(REQUEST, Owner(1, "c"))
            assert third.id == 3
            async with store.engine.begin() as conn:
                await conn.execute(text("DELETE FROM tests WHERE id = 3"))
                indexes = await conn.run_sync(lambda c: {i["name"] for i in inspect(c).get_indexes("tests")})
            assert {"ix_tests_queue", "ix_tests_owner_queue", "ix_tests_status_owner"} <= indexes
            assert (await store.submit(REQUEST, Owner(1, "c"))).id == 4
            assert (await store.get(1)).response == "old answer"
        finally:
            await store.close()

    asyncio.run(check())


OLD_AGENT = (
    "import time\n"
    "def run(query):\n"
    "    print('line of the lost test', flush=True)\n"
    "    time.sleep(120)\n"
    "    return 'the lost test answered'\n"
)
NEW_AGENT = "def run(query):\n    print('line of the new test', flush=True)\n    return 'new: ' + query\n"


@pytest.mark.docker
def test_a_store_that_lost_its_wal_reuses_no_id_and_adopts_no_lost_container(agenttui_cmd):
    base = Path(tempfile.mkdtemp(prefix="atwal-", dir="/tmp"))
    db, sock = base / "store.db", base / "s.sock"
    env = {**os.environ, "AGENTTUI_DB_URL": f"sqlite+aiosqlite:///{db}", "AGENTTUI_SOCKET_PATH": str(sock)}
    server: list[subprocess.Popen] = []

    def start() -> None:
        sock.unlink(missing_ok=True)
        server.append(subprocess.Popen([*agenttui_cmd, "server"], env=env,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_for(sock.exists, 30)

    def crash_and_lose_the_wal(copy: Path) -> None:
        server[-1].send_signal(signal.SIGKILL)
        server[-1].wait()
        for leftover in (base / "store.db-wal", base / "store.db-shm"):
            leftover.unlink(missing_ok=True)
        shutil.copyfile(copy, db)

    def finished(test_id: int) -> dict:
        return wait_for(lambda: (t := curl(sock, "GET", f"/tests/{test_id}"))["status"] == "COMPLETED" and t, 60)

    def run_new_test(expected_id_check) -> dict:
        new = curl(sock, "POST", "/tests", {"request": {"agent_code": NEW_AGENT, "query": "q"}})
        assert expected_id_check(new["id"]), new["id"]
        done = finished(new["id"])
        lines = [r["text"] for r in curl(sock, "GET", f"/tests/{new['id']}/logs")]
        assert "line of the new test" in lines and "line of the lost test" not in lines
        assert done["response"] == "new: q" and not any("reattached" in t for t in lines)
        return done

    try:
        start()
        first = curl(sock, "POST", "/tests", {"request": {"agent_code": NEW_AGENT, "query": "first"}})
        finished(first["id"])
        with sqlite3.connect(db) as conn:  # what the database file holds from now on
            assert conn.execute("PRAGMA wal_checkpoint(FULL)").fetchone()[0] == 0
            store_id = conn.execute("SELECT value FROM store_meta WHERE key = 'store_id'").fetchone()[0]
        lost = curl(sock, "POST", "/tests", {"request": {"agent_code": OLD_AGENT, "query": "lost"}})
        wait_for(lambda: "line of the lost test" in [r["text"] for r in curl(sock, "GET", f"/tests/{lost['id']}/logs")], 60)
        lost_container = subprocess.run(
            ["docker", "ps", "-q", "--no-trunc", "--filter", f"label=agenttui.store={store_id}",
             "--filter", f"label=agenttui.test_id={lost['id']}"], capture_output=True, text=True, check=True,
        ).stdout.split()
        assert len(lost_container) == 1
        copy = base / "without-wal.db"
        shutil.copyfile(db, copy)  # the -wal file, holding the lost test, is not copied
        with sqlite3.connect(copy) as conn:
            assert conn.execute("SELECT max(id) FROM tests").fetchone()[0] == first["id"]
        crash_and_lose_the_wal(copy)
        start()
        run_new_test(lambda new_id: new_id > lost["id"])

        # The id note beside the database lost as well: the id comes again, its container does not.
        crash_and_lose_the_wal(copy)
        (base / "store.db-writers.lock").unlink()
        start()
        run_new_test(lambda new_id: new_id == lost["id"])
        state = subprocess.run(["docker", "inspect", "--format", "{{.State.Running}}", *lost_container],
                               capture_output=True, text=True, check=True).stdout.split()
        assert state == ["true"]  # the lost test's container, untouched
    finally:
        for proc in server:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=30)
        ids = subprocess.run(["docker", "ps", "-aq", "--filter", f"label=agenttui.store={_store_id(db)}"],
                             capture_output=True, text=True).stdout.split()
        if ids:
            subprocess.run(["docker", "rm", "-f", *ids], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def _store_id(db: Path) -> str:
    try:
        with sqlite3.connect(db) as conn:
            return conn.execute("SELECT value FROM store_meta WHERE key = 'store_id'").fetchone()[0]
    except Exception:
        return "none"
