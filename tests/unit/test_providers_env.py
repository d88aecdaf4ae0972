"""Each provider sets every environment name its client libraries read (issue 16, point 2), in
the form each library expects, and docs/providers.md lists which library reads which."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from agenttui.core.domain import Egress, ProviderConfig
from agenttui.core.providers import PROVIDERS, container_env, endpoints
from agenttui.sandbox.egress import plan_network

DOCS = Path(__file__).resolve().parents[2] / "docs" / "providers.md"


def sandbox_env(name: str, options: dict[str, str], ollama_url: str = "http://127.0.0.1:11434") -> dict[str, str]:
    """The environment a provider-only sandbox gets, as run_spec builds it."""
    config = ProviderConfig(name=name, model_id="m", options=options)
    _, urls = plan_network(Egress.PROVIDER_ONLY, endpoints(config, ollama_url=ollama_url))
    return container_env(config, urls=urls)


def test_ollama_every_client_gets_the_tunnel_url_in_its_own_form():
    env = sandbox_env("ollama", {}, ollama_url="http://127.0.0.1:43123")
    assert env["OLLAMA_HOST"] == "http://host.docker.internal:43123"  # ollama, langchain-ollama, Strands
    assert env["OLLAMA_API_BASE"] == "http://host.docker.internal:43123"  # litellm
    assert env["OLLAMA_BASE_URL"] == "http://host.docker.internal:43123/v1"  # pydantic-ai: OpenAI-style
    assert env["LITELLM_LOCAL_MODEL_COST_MAP"] == "True"  # litellm must not download under provider-only


def test_ollama_host_option_is_followed_and_explicit_names_win():
    env = sandbox_env("ollama", {"OLLAMA_HOST": "http://gpu-box:8080/"})
    assert env["OLLAMA_API_BASE"] == "http://gpu-box:8080/" and env["OLLAMA_BASE_URL"] == "http://gpu-box:8080/v1"
    env = sandbox_env("ollama", {"OLLAMA_BASE_URL": "http://other:1/v1", "LITELLM_LOCAL_MODEL_COST_MAP": "False"})
    assert env["OLLAMA_BASE_URL"] == "http://other:1/v1" and env["LITELLM_LOCAL_MODEL_COST_MAP"] == "False"


def test_openai_compatible_base_url_under_both_names():
    env = sandbox_env("openai", {"OPENAI_BASE_URL": "http://127.0.0.1:9000/v1", "OPENAI_API_KEY": "k-1234567"})
    assert env["OPENAI_BASE_URL"] == env["OPENAI_API_BASE"] == "http://host.docker.internal:9000/v1"
    assert env["OPENAI_API_KEY"] == "k-1234567"


def test_bedrock_region_and_endpoint_under_every_aws_name():
    env = sandbox_env("bedrock", {"AWS_REGION": "eu-west-1", "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": "http://127.0.0.1:5000"})
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == env["AWS_REGION_NAME"] == "eu-west-1"
    assert env["AWS_ENDPOINT_URL_BEDROCK_RUNTIME"] == env["AWS_BEDROCK_RUNTIME_ENDPOINT"] == (
        "http://host.docker.internal:5000")
    generic = sandbox_env("bedrock", {"AWS_REGION": "us-west-2", "AWS_ENDPOINT_URL": "http://127.0.0.1:5001"})
    assert generic["AWS_BEDROCK_RUNTIME_ENDPOINT"] == "http://host.docker.internal:5001"
    plain = sandbox_env("bedrock", {"AWS_REGION": "us-west-2"})
    assert "AWS_BEDROCK_RUNTIME_ENDPOINT" not in plain and "AWS_ENDPOINT_URL_BEDROCK_RUNTIME" not in plain


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_docs_table_names_every_variable_and_its_readers(provider):
    text = DOCS.read_text(encoding="utf-8")
    for var in PROVIDERS[provider].env:
        assert var.readers, f"{var.name} says which libraries read it"
        row = re.search(rf"^\| `{var.name}` \|(.*)$", text, re.MULTILINE)
        assert row, f"docs/providers.md has a row for {var.name}"
        first_reader = var.readers.split(",")[0].split(" (")[0].strip()
        assert first_reader in row.group(1).replace("`", ""), (var.name, first_reader, row.group(1))
