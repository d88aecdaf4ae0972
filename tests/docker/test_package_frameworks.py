"""Packages of agents written with real frameworks from PyPI deploy unmodified (issue 16, points 1, 3
and 4): a test runs the agent under provider-only egress against a fake model server on this
machine; its package, built with `docker build` and run as its README says, reaches the same fake
from its own container (host.docker.internal) and prints the tested response; its
requirements.txt pins every version the test's image had, recorded at the image's build. A test
that named its agent with --entrypoint makes a package that calls that same object."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from agenttui.client.local import LocalClient
from agenttui.core.config import load_settings
from agenttui.core.domain import ProviderConfig, Status, TestRequest

from ..providers.fakes import FakeOllama, FakeOpenAI, _OllamaHandler, answer

pytestmark = pytest.mark.docker

# Known-good releases; the images are built once (agenttui reuses them by requirements).
OPENAI = "openai==1.109.1"
LITELLM = "litellm==1.110.2"
PYDANTIC_AI = "pydantic-ai-slim[openai]==2.68.0"
LANGCHAIN = "langchain==1.5.2\nlangchain-ollama==1.1.0"
STRANDS = "strands-agents[ollama]==1.62.0"

OPENAI_AGENT = '''"""Echo agent written as the openai SDK's README writes it."""
import os

from openai import OpenAI

client = OpenAI()


def run(query):
    completion = client.chat.completions.create(
        model=os.environ["MODEL_ID"], messages=[{"role": "user", "content": query}])
    return completion.choices[0].message.content
'''

LITELLM_OLLAMA_AGENT = '''"""Echo agent written as litellm's docs write it, on Ollama."""
import os

from litellm import completion


def run(query):
    response = completion(model="ollama_chat/" + os.environ["MODEL_ID"],
                          messages=[{"role": "user", "content": query}])
    return response.choices[0].message.content
'''

# Two module-level agents, as pydantic-ai's docs write them: the test picks `reviewer` with
# --entrypoint (the harness would call `agent`), and so must the package, unmodified.
PYDANTIC_AI_AGENTS = '''"""Two agents written as pydantic-ai's docs write them, on an OpenAI-compatible server."""
import os

from pydantic_ai import Agent
from pydantic_ai.models.openai import OpenAIChatModel

agent = Agent(OpenAIChatModel(os.environ["MODEL_ID"]))
reviewer = Agent(OpenAIChatModel(os.environ["MODEL_ID"] + "-reviewer"))
'''

LANGCHAIN_AGENT = '''"""Echo agent written as LangChain's docs write it, on Ollama."""
import os

from langchain.agents import create_agent
from langchain_ollama import ChatOllama

agent = create_agent(ChatOllama(model=os.environ["MODEL_ID"]), tools=[])


def run(query):
    result = agent.invoke({"messages": [{"role": "user", "content": query}]})
    return result["messages"][-1].content
'''


STRANDS_AGENT = '''"""Echo agent written as Strands' docs write it, on Ollama."""
import os

from strands import Agent
from strands.models.ollama import OllamaModel

agent = Agent(model=OllamaModel(host=os.environ["OLLAMA_HOST"], model_id=os.environ["MODEL_ID"]),
              callback_handler=None)
'''


class _TimedOllamaHandler(_OllamaHandler):
    """A stream's last chunk carries the timings real Ollama sends (Strands reads total_duration)."""

    def _stream(self, chunks: list[bytes], content_type: str) -> None:
        last = json.loads(chunks[-1])
        last.setdefault("done_reason", "stop")
        for key in ("total_duration", "load_duration", "prompt_eval_duration", "eval_duration"):
            last.setdefault(key, 1_000_000)
        last.setdefault("prompt_eval_count", 1)
        last.setdefault("eval_count", 1)
        super()._stream([*chunks[:-1], json.dumps(last).encode() + b"\n"], content_type)


class TimedFakeOllama(FakeOllama):
    handler = _TimedOllamaHandler


def readme_command(readme: str, start: str) -> list[str]:
    """The README's shell command that begins with `start`, as its words."""
    line = next(line.strip() for line in readme.splitlines() if line.strip().startswith(start))
    return shlex.split(line)


async def run_and_package(tmp_path: Path, settings, request: TestRequest) -> tuple[dict, Path]:
    async with LocalClient(settings) as client:
        view = await client.submit(request)
        final = await asyncio.wait_for(client.wait(view.id), 600)
        logs = [record.text for record in await client.logs(view.id)]
        assert final.status is Status.COMPLETED, (final.to_json(), logs[-20:])
        result = await client.package(view.id, out_dir=tmp_path / "out")
    with zipfile.ZipFile(result.path) as archive:
        archive.extractall(tmp_path / "x")
    return {**final.summary(), **final.to_json()}, tmp_path / "x" / result.top_folder


def deploy_as_the_readme_says(folder: Path) -> subprocess.CompletedProcess:
    """cp .env.example .env; docker build ...; docker run ... (the README's own lines)."""
    readme = (folder / "README.md").read_text()
    (folder / ".env").write_text((folder / ".env.example").read_text())
    # This machine's network re-signs TLS: its CA goes where certs/README.md says.
    bundle = Path(os.environ.get("SSL_CERT_FILE") or "/etc/ssl/certs/ca-certificates.crt")
    if bundle.is_file():
        shutil.copy(bundle, folder / "certs" / "ca-bundle.pem")
    build = readme_command(readme, "docker build -t")
    image = build[build.index("-t") + 1]
    try:
        built = subprocess.run(build, cwd=folder, capture_output=True, text=True, timeout=900)
        assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-3000:]
        return subprocess.run(readme_command(readme, "docker run --rm --init --env-file .env"), cwd=folder,
                              capture_output=True, text=True, timeout=180)
    finally:
        subprocess.run(["docker", "rmi", "-f", image], capture_output=True)


def pinned(lines: list[str]) -> dict[str, str]:
    """{canonical name: version} of the `name[extras]==version` lines."""
    pins = [Requirement(line.split("#", 1)[0]) for line in lines if "==" in line and not line.startswith("#")]
    return {canonicalize_name(pin.name): str(pin.specifier).removeprefix("==") for pin in pins}


def assert_pinned_as_tested(view: dict, folder: Path, requirements: str) -> None:
    installed = view["installed"]
    assert pinned(requirements.splitlines()).items() <= installed.items(), installed
    assert len(installed) > 3, "dependencies are recorded too"
    assert "installed" not in view["metrics"]
    package_pins = pinned((folder / "requirements.txt").read_text().splitlines())
    assert package_pins == installed, "every installed version is pinned in requirements.txt"


@pytest.mark.parametrize("agent, package, entrypoint, model", [
    (OPENAI_AGENT, OPENAI, None, "gpt-fake"), (PYDANTIC_AI_AGENTS, PYDANTIC_AI, "reviewer", "gpt-fake-reviewer")],
    ids=["openai", "pydantic-ai"])
async def test_openai_compatible_package_deploys_unmodified(tmp_path, agent, package, entrypoint, model):
    # 0.0.0.0: the deployed container reaches the host through the Docker bridge's gateway.
    with FakeOpenAI(host="0.0.0.0") as fake:
        settings = load_settings(max_attempts=1)
        provider = ProviderConfig(name="openai", model_id="gpt-fake", options={
            "OPENAI_BASE_URL": f"{fake.url}/v1", "OPENAI_API_KEY": "sk-local-anything"})
        request = TestRequest.parse(agent_code=agent, query="deploy me", requirements=package + "\n",
                                    provider=provider, egress="provider-only", timeout_s=300, entrypoint=entrypoint)
        view, folder = await run_and_package(tmp_path, settings, request)
        assert view["response"] == answer(model, "deploy me")  # the object --entrypoint named answered
        assert_pinned_as_tested(view, folder, package)
        if entrypoint:
            assert f"\nAGENT_ENTRYPOINT={entrypoint}\n" in (folder / ".env.example").read_text()
        proc = deploy_as_the_readme_says(folder)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert proc.stdout == view["response"] + "\n"  # the package called the same object


@pytest.mark.parametrize("agent, package", [(LITELLM_OLLAMA_AGENT, LITELLM), (LANGCHAIN_AGENT, LANGCHAIN),
                                            (STRANDS_AGENT, STRANDS)], ids=["litellm", "langchain", "strands"])
async def test_ollama_package_deploys_unmodified(tmp_path, agent, package):
    with TimedFakeOllama(host="0.0.0.0") as fake:
        settings = load_settings(ollama_url=fake.url, max_attempts=1)  # not 11434: the package keeps the port
        request = TestRequest.parse(agent_code=agent, query="deploy me", requirements=package + "\n",
                                    provider=ProviderConfig(name="ollama", model_id="llama3.2"),
                                    egress="provider-only", timeout_s=300)
        view, folder = await run_and_package(tmp_path, settings, request)
        assert view["response"].strip() == answer("llama3.2", "deploy me")  # Strands' text ends in a newline
        assert f"OLLAMA_API_BASE=http://host.docker.internal:{fake.port}" in (folder / ".env.example").read_text()
        assert_pinned_as_tested(view, folder, package)
        proc = deploy_as_the_readme_says(folder)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert proc.stdout == view["response"] + "\n"
