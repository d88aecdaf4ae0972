import pytest

from agenttui.store import Store


@pytest.fixture
async def store(tmp_path):
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'store.db'}", log_max_bytes=2000)
    yield store
    await store.close()
