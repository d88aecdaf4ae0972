"""A package deploys unmodified for every provider (issue 16, point 3): endpoints the test reached
on the host's loopback are written as the host seen from a container (host.docker.internal, the
test's own port), with extra_hosts in compose and --add-host in the README."""

from __future__ import annotations

import yaml

from agenttui.packaging.build import render_files
from agenttui.packaging.context import package_context

from ..unit.test_packaging_build import package_record

HOST_GATEWAY = "host.docker.internal:host-gateway"


def rendered(record, **options) -> dict[str, str]:
    context = package_context(record, base_image="python:3.11-slim", base_image_id=None, now=0, **options)
    return render_files(context, record.request.agent_code)


def env_lines(files: dict[str, str]) -> dict[str, str]:
    lines = [line for line in files[".env.example"].splitlines() if line and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


def adds_host_gateway(files: dict[str, str]) -> bool:
    compose = yaml.safe_load(files["docker-compose.yml"])["services"]["agent"]
    in_compose = HOST_GATEWAY in compose.get("extra_hosts", [])
    in_readme = f"--add-host {HOST_GATEWAY}" in files["README.md"]
    assert in_compose == in_readme, "compose and the README agree"
    return in_compose


def test_openai_on_loopback_is_the_host_from_the_container():
    record = package_record("openai", options={"OPENAI_BASE_URL": "http://127.0.0.1:38123/v1"})
    files = rendered(record)
    env = env_lines(files)
    assert env["OPENAI_BASE_URL"] == env["OPENAI_API_BASE"] == "http://host.docker.internal:38123/v1"
    assert adds_host_gateway(files)
    assert "not only on `127.0.0.1`" in files["README.md"]


def test_localhost_names_too_and_remote_endpoints_stay_as_they_are():
    record = package_record("openai", options={"OPENAI_BASE_URL": "http://localhost:8000/v1"})
    assert env_lines(rendered(record))["OPENAI_BASE_URL"] == "http://host.docker.internal:8000/v1"
    remote = rendered(package_record("openai", options={"OPENAI_BASE_URL": "https://llm.example.com/v1"}))
    assert env_lines(remote)["OPENAI_BASE_URL"] == "https://llm.example.com/v1"
    assert not adds_host_gateway(remote)


def test_ollama_keeps_the_port_the_test_used():
    files = rendered(package_record("ollama"), ollama_url="http://127.0.0.1:43210")
    env = env_lines(files)
    assert env["OLLAMA_HOST"] == env["OLLAMA_API_BASE"] == "http://host.docker.internal:43210"
    assert env["OLLAMA_BASE_URL"] == "http://host.docker.internal:43210/v1"
    assert adds_host_gateway(files)
    # The default stays the default; an Ollama elsewhere needs no host gateway.
    assert env_lines(rendered(package_record("ollama")))["OLLAMA_HOST"] == "http://host.docker.internal:11434"
    remote = rendered(package_record("ollama", options={"OLLAMA_HOST": "http://gpu-box:11434"}))
    assert env_lines(remote)["OLLAMA_API_BASE"] == "http://gpu-box:11434" and not adds_host_gateway(remote)


def test_bedrock_endpoint_on_loopback_under_every_name():
    options = {"AWS_REGION": "eu-west-1", "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": "http://127.0.0.1:5000"}
    files = rendered(package_record("bedrock", options=options))
    env = env_lines(files)
    assert env["AWS_ENDPOINT_URL_BEDROCK_RUNTIME"] == env["AWS_BEDROCK_RUNTIME_ENDPOINT"] == (
        "http://host.docker.internal:5000")
    assert env["AWS_REGION_NAME"] == "eu-west-1" and adds_host_gateway(files)


def test_cdk_app_warns_of_endpoints_only_the_test_host_has():
    record = package_record("openai", options={"OPENAI_BASE_URL": "http://127.0.0.1:38123/v1"})
    stack = rendered(record)["cdk/agent_stack.py"]
    assert "OPENAI_API_BASE, OPENAI_BASE_URL point at the machine the test ran on" in stack
    ollama = rendered(package_record("ollama"), ollama_url="http://127.0.0.1:43210")
    assert "OLLAMA_HOST is a placeholder, and so are OLLAMA_API_BASE, OLLAMA_BASE_URL" in ollama["cdk/agent_stack.py"]
    assert "host.docker.internal" not in ollama["cdk/cdk.json"]
    remote = rendered(package_record("openai", options={"OPENAI_BASE_URL": "https://llm.example.com/v1"}))
    assert "point at the machine" not in remote["cdk/agent_stack.py"]
