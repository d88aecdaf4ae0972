"""Providers through the sandbox network, with real containers and fake model servers on this
machine's loopback (issue 8). Network probes only aim at this machine: its loopback, the
docker0 gateway, and a container on a Docker network this test creates."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import threading
import uuid

import pytest

from agenttui.client.local import LocalClient
from agenttui.core.config import load_settings
from agenttui.core.domain import Status, TestRequest

from .fakes import FakeOllama, answer

pytestmark = pytest.mark.docker

OLLAMA_AGENT = '''
import json, os, urllib.request

def call(path, payload):
    request = urllib.request.Request(os.environ["OLLAMA_HOST"] + path, json.dumps(payload).encode(),
                                     {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=20) as response:
        return response.read().decode()

def run(query):
    model = os.environ["MODEL_ID"]
    chat = json.loads(call("/api/chat", {"model": model, "stream": False,
                                         "messages": [{"role": "user", "content": query}]}))
    streamed = "".join(json.loads(line)["response"] for line in
                       call("/api/generate", {"model": model, "prompt": query}).splitlines())
    assert streamed == chat["message"]["content"], (streamed, chat)
    print("OLLAMA_HOST is", os.environ["OLLAMA_HOST"])
    return chat["message"]["content"]
'''


async def run_test(settings, **fields) -> tuple[dict, list[str]]:
    request = TestRequest.parse(agent_code=fields.pop("agent_code", OLLAMA_AGENT), query=fields.pop("query", "hello"),
                                timeout_s=60, **fields)
    async with LocalClient(settings) as client:
        view = await client.submit(request)
        final = await asyncio.wait_for(client.wait(view.id), 150)
        logs = [record.text for record in await client.logs(view.id)]
    return final.to_json(), logs


def leftover_sidecars() -> list[str]:
    """This test's net sidecars (by its store's label: other sessions share the engine)."""
    from ..docker.conftest import store_id

    out = subprocess.run(["docker", "ps", "-aq", "--filter", "label=agenttui.role=net",
                          "--filter", f"label=agenttui.store={store_id()}"],
                         capture_output=True, text=True, check=True).stdout
    return out.split()


async def test_agent_reaches_host_ollama_and_is_told_when_it_is_down():
    with FakeOllama() as ollama:
        settings = load_settings(ollama_url=ollama.url, max_attempts=2)
        view, logs = await run_test(settings, egress="provider-only", query="ping")
        assert view["status"] == Status.COMPLETED.value, (view, logs[-15:])
        assert view["response"] == answer("llama3.2", "ping")
        # The agent used the in-sandbox address; the host's fake saw both API calls.
        assert "OLLAMA_HOST is http://host.docker.internal:11434".replace("11434", str(ollama.port)) in logs
        assert [r["path"] for r in ollama.requests if r["path"] != "/api/tags"] == ["/api/chat", "/api/generate"]
        assert any("preflight: " in line and "answers from the sandbox" in line for line in logs)
    # The same agent with the fake stopped: it runs anyway (an agent may not call its model), its
    # log opens with the warning, and its failure's reason says the endpoint was down.
    view, logs = await run_test(settings, egress="provider-only", query="ping")
    assert view["status"] == Status.FAILED.value and view["failure_kind"] == "agent", view
    assert f"the model endpoint {ollama.url} did not answer when the test started" in view["error"], view
    warning = next(line for line in logs if "warning: Ollama not reachable" in line)
    assert ollama.url in warning and "is it running" in warning and "AGENTTUI_OLLAMA_URL" in warning
    assert logs.index(warning) < next(i for i, line in enumerate(logs) if line.startswith("Traceback"))
    assert not any("attempt 1/2" in line for line in logs)
    from ..docker.conftest import wait_for

    wait_for(lambda: leftover_sidecars() == [], 20)  # sidecars are removed with their tests


def free_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_strict_preflight_fails_at_once_without_retries():
    unused_port = free_port()
    settings = load_settings(ollama_url=f"http://127.0.0.1:{unused_port}", max_attempts=3, retry_backoff_s=5)
    view, logs = await run_test(settings, egress="provider-only", query="ping", strict_preflight=True)
    assert view["status"] == Status.FAILED.value and view["failure_kind"] == "infra", view
    assert f"Ollama not reachable at http://127.0.0.1:{unused_port}" in view["error"], view
    assert "not retried" in view["error"] and view["attempt"] == 1, view
    assert not any("retrying in" in line for line in logs)  # no backoff: the answer comes at once
    assert not any(line.startswith("OLLAMA_HOST is") for line in logs)  # the agent never ran


# ---------------------------------------------------------------------------- egress matrix
PROBE_AGENT = '''
import json, os, socket

def reach(host, port):
    try:
        socket.create_connection((host, port), timeout=1.5).close()
        return "open"
    except OSError as exc:
        return type(exc).__name__

def run(query):
    targets = json.loads(query)
    result = {name: reach(host, port) for name, (host, port) in targets.items()}
    host, port = os.environ["OLLAMA_HOST"].split("//")[1].split(":")
    result["model endpoint"] = reach(host, int(port))
    result["docker socket"] = any(os.path.exists(p) for p in ("/var/run/docker.sock", "/run/docker.sock"))
    return json.dumps(result)
'''


class TcpServer:
    """Accepts connections on (host, port) of this machine and closes them."""

    def __init__(self, host: str):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.close()

    def close(self):
        self.sock.close()


def docker(*args: str) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture
def local_targets():
    """A server on another port of the docker0 gateway, one on the host's loopback only, and a
    service container on a Docker network of its own (also published on the gateway)."""
    import ipaddress

    config = json.loads(docker("network", "inspect", "bridge", "-f", "{{json (index .IPAM.Config 0)}}"))
    gateway = config.get("Gateway") or str(next(ipaddress.ip_network(config["Subnet"]).hosts()))
    on_gateway, on_loopback = TcpServer(gateway), TcpServer("127.0.0.1")
    tag = uuid.uuid4().hex[:8]
    network, service = f"agenttui-egresstest-{tag}", f"agenttui-egresstest-{tag}-svc"
    docker("network", "create", network)
    try:
        docker("run", "-d", "--name", service, "--network", network, "-p", f"{gateway}::8000",
               "agenttui-base:bookworm", "python3", "-m", "http.server", "8000")
        service_ip = docker("inspect", service, "-f", "{{(index .NetworkSettings.Networks \"%s\").IPAddress}}" % network)
        published = int(docker("port", service, "8000/tcp").split(":")[-1])
        # Wait until the service answers from the host, so a "closed" below means blocked.
        for _ in range(100):
            try:
                socket.create_connection((gateway, published), timeout=1).close()
                break
            except OSError:
                import time
                time.sleep(0.1)
        yield {
            "gateway other port": (gateway, on_gateway.port),
            "host.docker.internal other port": ("host.docker.internal", on_gateway.port),
            "host loopback service": ("127.0.0.1", on_loopback.port),
            "host loopback via host name": ("host.docker.internal", on_loopback.port),
            "container on another network": (service_ip, 8000),
            "that container's published port": (gateway, published),
        }
    finally:
        subprocess.run(["docker", "rm", "-f", service], capture_output=True)
        subprocess.run(["docker", "network", "rm", network], capture_output=True)
        on_gateway.close()
        on_loopback.close()


async def test_provider_only_reaches_the_model_and_nothing_else_full_reaches_the_network(local_targets):
    with FakeOllama() as ollama:
        settings = load_settings(ollama_url=ollama.url, max_attempts=1)
        query = json.dumps(local_targets)
        view, logs = await run_test(settings, agent_code=PROBE_AGENT, query=query, egress="provider-only")
        assert view["status"] == Status.COMPLETED.value, (view, logs[-10:])
        only = json.loads(view["response"])
        view, logs = await run_test(settings, agent_code=PROBE_AGENT, query=query, egress="full")
        assert view["status"] == Status.COMPLETED.value, (view, logs[-10:])
        full = json.loads(view["response"])
    assert only.pop("model endpoint") == "open" and full.pop("model endpoint") == "open"
    assert only.pop("docker socket") is False and full.pop("docker socket") is False
    assert {name: state for name, state in only.items() if state == "open"} == {}, only
    # Under full the bridge reaches what the host exposes on its network addresses...
    assert full["gateway other port"] == "open" and full["that container's published port"] == "open", full
    # ...but never the host's loopback-only services (no host networking, by design).
    assert full["host loopback service"] != "open" and full["host loopback via host name"] != "open", full
