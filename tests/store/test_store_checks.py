"""A damaged, truncated or read-only store is named with its problem when it opens (issue 14,
point 10): by Store.open, and by the client whose personal server refused it, at once and with
the bad-setting exit code, not a traceback or a server that "did not answer" after 20 s."""

import asyncio
import os
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from agenttui.core.domain import TestRequest
from agenttui.engine.store import Owner, Store, StoreUnusable

REQUEST = TestRequest.parse(agent_code="def run(q): return q", query="q" * 2000)


async def _filled(path: Path) -> None:
    store = await Store.open(f"sqlite+aiosqlite:///{path}")
    try:
        for _ in range(200):
            test = await store.submit(REQUEST, Owner(1, "alice"))
            await store.append_logs(test.id, [(1.0, "stdout", "x" * 500)] * 5)
    finally:
        await store.close()


def _open_fails(path: Path) -> str:
    with pytest.raises(StoreUnusable) as caught:
        asyncio.run(Store.open(f"sqlite+aiosqlite:///{path}"))
    return str(caught.value)


@pytest.fixture
def store_file(tmp_path):
    path = tmp_path / "store.db"
    asyncio.run(_filled(path))
    assert not Path(f"{path}-wal").exists()  # closed cleanly
    return path


def test_a_truncated_store_is_named_at_open(store_file):
    os.truncate(store_file, store_file.stat().st_size // 2)
    said = _open_fails(store_file)
    assert f"the store {store_file} is damaged (truncated: the file has" in said and "restore it from a backup" in said


def test_a_store_that_is_not_a_database_is_named_at_open(store_file):
    store_file.write_bytes(b"this is not a database\n" * 100)
    assert f"the store {store_file} is damaged (not an SQLite database" in _open_fails(store_file)


def test_a_damaged_page_is_found_when_the_last_close_was_not_clean(store_file):
    with open(store_file, "r+b") as file:  # the middle of the file: some table's pages
        file.seek(store_file.stat().st_size // 2)
        file.write(os.urandom(8192))
    Path(f"{store_file}-wal").write_bytes(os.urandom(64))  # what a crash leaves (a -wal SQLite discards)
    said = _open_fails(store_file)
    assert f"the store {store_file} is damaged (" in said


def test_a_read_only_store_is_named_at_open(store_file):
    if os.geteuid() != 0:
        pytest.skip("mounting a read-only tmpfs needs root")
    mount = Path(tempfile.mkdtemp(prefix="atro-", dir="/tmp"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)], check=True)
    try:
        copy = mount / "store.db"
        copy.write_bytes(store_file.read_bytes())
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        said = _open_fails(copy)
        assert f"the store {copy} cannot be written (" in said and "check their owner and mode" in said
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
        mount.rmdir()


def test_the_client_says_why_its_personal_server_refused_a_damaged_store(store_file, agenttui_cmd):
    os.truncate(store_file, store_file.stat().st_size // 2)
    env = {**os.environ, "AGENTTUI_DB_URL": f"sqlite+aiosqlite:///{store_file}"}
    started = time.monotonic()
    done = subprocess.run([*agenttui_cmd, "queue"], env=env, capture_output=True, text=True, timeout=60)
    assert time.monotonic() - started < 15
    assert done.returncode == 2, done.stderr
    assert f"agenttui: the store {store_file} is damaged (truncated" in done.stderr
    assert "Traceback" not in done.stderr
