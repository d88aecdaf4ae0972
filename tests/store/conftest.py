"""The store suite runs against both SQLite and PostgreSQL (R-28): the same tests, parametrized."""

import asyncio
import os
import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from agenttui.engine.store import Store

from ..conftest import IN_CI

PG_URL = os.environ.get("AGENTTUI_TEST_PG_URL", "")


async def _admin(sql: str) -> None:
    engine = create_async_engine(PG_URL, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(sql))
    finally:
        await engine.dispose()


@pytest.fixture
def pg_url():
    """A fresh PostgreSQL database for one test, dropped afterwards."""
    if not PG_URL:
        if IN_CI:
            pytest.fail("CI=true but AGENTTUI_TEST_PG_URL is not set (scripts/test.sh sets it)")
        pytest.skip("no PostgreSQL: run scripts/dev-postgres.sh and set AGENTTUI_TEST_PG_URL")
    name = f"agenttui_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    yield PG_URL.rsplit("/", 1)[0] + "/" + name
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
async def sqlite_store(tmp_path):
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'store.db'}", log_max_bytes=2000)
    yield store
    await store.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
async def store(store_url):
    store = await Store.open(store_url, log_max_bytes=2000)
    yield store
    await store.close()
