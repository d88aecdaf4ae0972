"""An agent in a real provider-only sandbox sees every environment name its client libraries read,
each carrying the tunnel's URL in that library's form, and reaches the host's fake Ollama through
each of them (issue 16, point 2)."""

from __future__ import annotations

import json

import pytest

from agenttui.core.config import load_settings
from agenttui.core.domain import Status

from .fakes import FakeOllama
from .test_sandbox_network import run_test

pytestmark = pytest.mark.docker

NAMES_AGENT = '''
import json, os, urllib.error, urllib.request

NAMES = ("OLLAMA_HOST", "OLLAMA_API_BASE", "OLLAMA_BASE_URL", "LITELLM_LOCAL_MODEL_COST_MAP", "MODEL_ID")

def status(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code  # the server answered: the name reaches it

def run(query):
    env = {name: os.environ.get(name) for name in NAMES}
    reached = {"OLLAMA_HOST": status(env["OLLAMA_HOST"] + "/api/tags"),
               "OLLAMA_API_BASE": status(env["OLLAMA_API_BASE"] + "/api/tags"),
               "OLLAMA_BASE_URL": status(env["OLLAMA_BASE_URL"] + "/models")}
    return json.dumps({"env": env, "reached": reached}, sort_keys=True)
'''


async def test_agent_sees_every_ollama_name_with_the_tunnel_url():
    with FakeOllama() as ollama:
        settings = load_settings(ollama_url=ollama.url, max_attempts=1)
        view, logs = await run_test(settings, agent_code=NAMES_AGENT, egress="provider-only", query="names")
        assert view["status"] == Status.COMPLETED.value, (view, logs[-15:])
        seen = json.loads(view["response"])
        tunnel = f"http://host.docker.internal:{ollama.port}"
        assert seen["env"] == {"OLLAMA_HOST": tunnel, "OLLAMA_API_BASE": tunnel, "OLLAMA_BASE_URL": tunnel + "/v1",
                               "LITELLM_LOCAL_MODEL_COST_MAP": "True", "MODEL_ID": "llama3.2"}
        assert seen["reached"] == {"OLLAMA_HOST": 200, "OLLAMA_API_BASE": 200, "OLLAMA_BASE_URL": 404}
        assert [r["path"] for r in ollama.requests].count("/api/tags") >= 2
