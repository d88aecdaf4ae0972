"""Where secret values live between submit and container start (agenttui.core.secrets): sealed
beside the test with a key outside the store, names only in the request, gone at the end."""

from __future__ import annotations

import pytest

from agenttui.engine.service import Service
from agenttui.core.config import load_settings
from agenttui.core.domain import InvalidRequest, Status, TestRequest
from agenttui.core.secrets import SecretBox, SecretsUnavailable
from agenttui.engine.store import Fence, Owner, Store

KEY = "sk-sealed-" + "Qx9" * 10


async def test_secret_values_are_sealed_outside_the_request_and_deleted_at_the_end(tmp_path):
    settings = load_settings(db_url=f"sqlite+aiosqlite:///{tmp_path / 's.db'}", backend="noop")
    store = await Store.open(settings.resolved_db_url)
    try:
        service = Service(store, settings)
        owner = Owner(1000, "alice")
        request = TestRequest.parse(agent_code="def run(q):\n    return q\n", query="q", provider={
            "name": "openai", "options": {"OPENAI_BASE_URL": "http://127.0.0.1:9/v1", "OPENAI_API_KEY": KEY}})
        view = await service.submit(owner, request)
        test = await store.get(view.id)
        assert KEY not in test.request_json and test.request.provider.secrets == ("OPENAI_API_KEY",)
        assert test.request.egress is not None  # the server's default was filled in
        sealed = await store.sealed_secrets(view.id)
        assert KEY not in sealed
        key_file = settings.resolved_secrets_key_file
        assert key_file.stat().st_mode & 0o777 == 0o600
        assert SecretBox(key_file).open(sealed) == {"OPENAI_API_KEY": KEY}
        with pytest.raises(SecretsUnavailable, match="cannot be decrypted"):
            SecretBox(tmp_path / "other.key").open(sealed)
        for path in tmp_path.glob("s.db*"):
            assert KEY.encode() not in path.read_bytes(), path
        # A retry without fresh values is refused: nothing is kept past a test's end.
        claimed = (await store.claim("me", cap=5, lease_s=30))[0]
        await store.transition(view.id, Status.FAILED, fence=Fence("me", claimed.attempt), error="x")
        assert await store.sealed_secrets(view.id) is None
        with pytest.raises(InvalidRequest, match="API key is missing"):
            await service.retry(owner, view.id)
        again = await service.retry(owner, view.id, secrets={"OPENAI_API_KEY": KEY})
        assert SecretBox(key_file).open(await store.sealed_secrets(again.id)) == {"OPENAI_API_KEY": KEY}
        # A dequeued test drops its secrets at once.
        await store.request_cancel(again.id)
        assert await store.sealed_secrets(again.id) is None
    finally:
        await store.close()


async def test_full_egress_can_be_forbidden(tmp_path):
    settings = load_settings(db_url=f"sqlite+aiosqlite:///{tmp_path / 's.db'}", backend="noop", allow_full_egress=False)
    store = await Store.open(settings.resolved_db_url)
    try:
        request = TestRequest.parse(agent_code="def run(q):\n    return q\n", query="q", egress="full")
        with pytest.raises(InvalidRequest) as info:
            await Service(store, settings).submit(Owner(1000, "alice"), request)
        assert "allow_full_egress" in info.value.errors["egress"]
        assert await store.list_tests() == []
    finally:
        await store.close()
