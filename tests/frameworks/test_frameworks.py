"""Agents written exactly as their frameworks' docs write them (no run() wrapper) run in real
provider-only sandboxes against this repository's fake model servers and answer (issue 16,
point 1); the harness's adapters find, call and read them. Real packages from PyPI, pinned: the
Strands, LangChain, pydantic-ai and litellm tests use the same requirements as the package tests
(tests/docker/test_package_frameworks.py), so agenttui builds each image once and both reuse it;
the OpenAI Agents SDK, smolagents and LlamaIndex share one image of their own; CrewAI has its own
(its dependencies make it ~1.2 GB; pip installs them in about a minute, once), used by its agent
on an OpenAI-compatible endpoint and by its agent on Ollama."""

from __future__ import annotations

import asyncio
import json

import pytest

from agenttui.client.local import LocalClient
from agenttui.core.config import load_settings
from agenttui.core.domain import ProviderConfig, Status, TestRequest

from ..docker.test_package_frameworks import LANGCHAIN, LITELLM, PYDANTIC_AI, STRANDS, TimedFakeOllama
from ..providers.fakes import FakeOpenAI, _OllamaHandler, _OpenAIHandler, answer

pytestmark = pytest.mark.docker

# One image for the frameworks the package tests do not install (known-good releases).
SHARED = ("openai-agents==0.24.0\nsmolagents[openai]==1.26.0\nllama-index-core==0.14.25\n"
          "llama-index-llms-ollama==0.11.0\n")

STRANDS_AGENT = '''
import os

from strands import Agent
from strands.models.ollama import OllamaModel

agent = Agent(model=OllamaModel(host=os.environ["OLLAMA_HOST"], model_id=os.environ["MODEL_ID"]),
              callback_handler=None)
'''

LANGCHAIN_AGENT = '''
import os

from langchain.agents import create_agent
from langchain_ollama import ChatOllama

graph = create_agent(ChatOllama(model=os.environ["MODEL_ID"]), tools=[])
'''

PYDANTIC_AI_AGENT = '''
import os

from pydantic_ai import Agent
from pydantic_ai.models.openai import OpenAIChatModel

helper = Agent(OpenAIChatModel(os.environ["MODEL_ID"]))
'''

OPENAI_AGENTS_AGENT = '''
import os

from agents import Agent, OpenAIChatCompletionsModel, set_tracing_disabled
from openai import AsyncOpenAI

set_tracing_disabled(True)  # traces go to OpenAI's platform, which this model server is not
assistant = Agent(name="Assistant", instructions="You are a helpful assistant",
                  model=OpenAIChatCompletionsModel(model=os.environ["MODEL_ID"], openai_client=AsyncOpenAI()))
'''

SMOLAGENTS_AGENT = '''
import os

from smolagents import OpenAIServerModel, ToolCallingAgent

agent = ToolCallingAgent(tools=[], model=OpenAIServerModel(model_id=os.environ["MODEL_ID"]))
'''

LLAMA_INDEX_AGENT = '''
import os

from llama_index.core.agent.workflow import FunctionAgent
from llama_index.llms.ollama import Ollama

llm = Ollama(model=os.environ["MODEL_ID"], base_url=os.environ["OLLAMA_HOST"], context_window=8000)
workflow = FunctionAgent(tools=[], llm=llm)
'''

LITELLM_AGENT = '''
import os

from litellm import completion


def run(query):
    response = completion(model="ollama_chat/" + os.environ["MODEL_ID"],
                          messages=[{"role": "user", "content": query}])
    return response.choices[0].message.content
'''


CREWAI = "crewai==1.15.30"

CREWAI_AGENT = '''
import os

from crewai import LLM, Agent, Crew, Task

llm = LLM(model="openai/" + os.environ["MODEL_ID"])
researcher = Agent(role="Researcher", goal="Answer questions", backstory="Thorough and brief", llm=llm)
answer = Task(description="{query}", expected_output="A short answer", agent=researcher)
crew = Crew(agents=[researcher], tasks=[answer])
'''


class _CrewAIHandler(_OpenAIHandler):
    """CrewAI writes the task as "Current Task: <description>" and reads the text after
    "Final Answer:": the fake answers the task in that form."""

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        texts = [part.get("text", "") if isinstance(part, dict) else str(part)
                 for message in body.get("messages") or [] for part in _parts(message.get("content"))]
        task = next(text.split("Current Task:", 1)[1].strip().splitlines()[0].strip()
                    for text in texts if "Current Task:" in text)
        content = "Thought: I now know the final answer\nFinal Answer: " + answer(body.get("model", ""), task)
        self._send(200, {"id": "c1", "object": "chat.completion", "created": 1, "model": body.get("model", ""),
                         "choices": [{"index": 0, "finish_reason": "stop",
                                      "message": {"role": "assistant", "content": content}}],
                         "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})


class CrewAIFakeOpenAI(FakeOpenAI):
    handler = _CrewAIHandler


CREWAI_OLLAMA_AGENT = '''
import os

from crewai import LLM, Agent, Crew, Task

llm = LLM(model="ollama/" + os.environ["MODEL_ID"])  # its Ollama provider reads OLLAMA_HOST
researcher = Agent(role="Researcher", goal="Answer questions", backstory="Thorough and brief", llm=llm)
answer = Task(description="{query}", expected_output="A short answer", agent=researcher)
crew = Crew(agents=[researcher], tasks=[answer])
'''


class _CrewAIOllamaHandler(_CrewAIHandler):
    """Ollama as CrewAI's own Ollama provider reaches it: the OpenAI-compatible API a real Ollama
    serves under /v1, beside its /api/tags (which the sandbox's preflight asks)."""

    def do_GET(self):
        if self.path == "/api/tags":
            return _OllamaHandler.do_GET(self)
        super().do_GET()


class CrewAIFakeOllama(FakeOpenAI):
    handler = _CrewAIOllamaHandler


class _SmolagentsHandler(_OpenAIHandler):
    """smolagents asks for a tool call and ends when final_answer is called: the fake calls it
    with its usual answer to the task (smolagents writes the task as "New task:\\n<task>")."""

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        texts = [part.get("text", "") if isinstance(part, dict) else str(part)
                 for message in body.get("messages") or [] for part in _parts(message.get("content"))]
        task = next(text.split("New task:", 1)[1].strip() for text in texts if "New task:" in text)
        call = {"id": "call_1", "type": "function", "function": {
            "name": "final_answer", "arguments": json.dumps({"answer": answer(body.get("model", ""), task)})}}
        self._send(200, {"id": "c1", "object": "chat.completion", "created": 1, "model": body.get("model", ""),
                         "choices": [{"index": 0, "finish_reason": "tool_calls",
                                      "message": {"role": "assistant", "content": None, "tool_calls": [call]}}],
                         "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})


def _parts(content) -> list:
    return content if isinstance(content, list) else [content or ""]


class SmolagentsFakeOpenAI(FakeOpenAI):
    handler = _SmolagentsHandler


async def run_test(settings, request: TestRequest) -> tuple[dict, dict]:
    """The finished test's view and the harness's result record."""
    async with LocalClient(settings) as client:
        view = await client.submit(request)
        final = await asyncio.wait_for(client.wait(view.id), 900)
        logs = [entry.text for entry in await client.logs(view.id)]
        assert final.status is Status.COMPLETED, (final.to_json(), logs[-30:])
        stored = await client.engine.store.get(view.id)
    return final.to_json(), json.loads(stored.result_json)


def ollama_request(agent: str, requirements: str, query: str) -> TestRequest:
    return TestRequest.parse(agent_code=agent, query=query, requirements=requirements + "\n",
                             provider=ProviderConfig(name="ollama", model_id="llama3.2"),
                             egress="provider-only", timeout_s=300)


@pytest.mark.parametrize("agent, requirements, entrypoint", [
    (STRANDS_AGENT, STRANDS, "agent"), (LANGCHAIN_AGENT, LANGCHAIN, "graph"), (LLAMA_INDEX_AGENT, SHARED, "workflow")],
    ids=["strands", "langchain", "llama-index"])
async def test_ollama_framework_agent_runs_as_its_docs_write_it(agent, requirements, entrypoint):
    with TimedFakeOllama() as fake:
        settings = load_settings(ollama_url=fake.url, max_attempts=1)
        view, record = await run_test(settings, ollama_request(agent, requirements, "frameworks"))
    assert view["response"].strip() == answer("llama3.2", "frameworks")  # Strands' text ends in a newline
    assert record["entrypoint"] == entrypoint


@pytest.mark.parametrize("agent, requirements, entrypoint, fake_server", [
    (PYDANTIC_AI_AGENT, PYDANTIC_AI, "helper", FakeOpenAI), (OPENAI_AGENTS_AGENT, SHARED, "assistant", FakeOpenAI),
    (SMOLAGENTS_AGENT, SHARED, "agent", SmolagentsFakeOpenAI), (CREWAI_AGENT, CREWAI, "crew", CrewAIFakeOpenAI)],
    ids=["pydantic-ai", "openai-agents", "smolagents", "crewai"])
async def test_openai_framework_agent_runs_as_its_docs_write_it(agent, requirements, entrypoint, fake_server):
    with fake_server() as fake:
        provider = ProviderConfig(name="openai", model_id="gpt-fake", options={
            "OPENAI_BASE_URL": f"{fake.url}/v1", "OPENAI_API_KEY": "sk-local-anything"})
        request = TestRequest.parse(agent_code=agent, query="frameworks", requirements=requirements + "\n",
                                    provider=provider, egress="provider-only", timeout_s=300)
        view, record = await run_test(load_settings(max_attempts=1), request)
    assert view["response"] == answer("gpt-fake", "frameworks")
    assert record["entrypoint"] == entrypoint


async def test_crewai_agent_on_ollama_runs_as_its_docs_write_it():
    """CrewAI's own Ollama provider (no LiteLLM), at the endpoint agenttui gives the sandbox."""
    with CrewAIFakeOllama() as fake:
        settings = load_settings(ollama_url=fake.url, max_attempts=1)
        view, record = await run_test(settings, ollama_request(CREWAI_OLLAMA_AGENT, CREWAI, "frameworks"))
    assert view["response"] == answer("llama3.2", "frameworks")
    assert record["entrypoint"] == "crew"


@pytest.mark.alone  # a latency bound
async def test_litellm_test_ends_within_a_second_of_the_agent_returning():
    """Point 5: litellm leaves threads and atexit hooks; the test still ends at once."""
    with TimedFakeOllama() as fake:
        settings = load_settings(ollama_url=fake.url, max_attempts=1)
        view, record = await run_test(settings, ollama_request(LITELLM_AGENT, LITELLM, "quick"))
    assert view["response"] == answer("llama3.2", "quick")
    assert view["finished_at"] - record["finished_at"] < 1.0, (view, record)
