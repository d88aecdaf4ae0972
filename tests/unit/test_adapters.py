"""The harness's framework adapters (issue 16, point 1): each framework's agent object is found by
its class's module and name, called as its docs call it, and its final text extracted. Stand-in
classes carry the frameworks' real module names, so no framework is installed here."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
import time
import types
from pathlib import Path

import pytest

from agenttui.harness import new_nonce, parse_result_line, runner_source

RUNNER_PATH = Path(__file__).resolve().parents[2] / "src" / "agenttui" / "harness" / "runner.py"


@pytest.fixture(scope="module")
def runner():
    spec = importlib.util.spec_from_file_location("agenttui_harness_under_test", RUNNER_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def stand_in(module: str, name: str, base: type = object, **methods) -> type:
    return type(name, (base,), {"__module__": module, **methods})


class Message:
    def __init__(self, content):
        self.content = content


class Result:
    def __init__(self, **values):
        self.__dict__.update(values)

    def __str__(self):
        return "str-of-result"


def agent_module(**objects) -> types.ModuleType:
    module = types.ModuleType("agent")
    module.__dict__.update(objects)
    return module


def _strands():
    return stand_in("strands.agent.agent", "Agent", __call__=lambda self, q: Result(text=q))()


def _langgraph():
    pregel = stand_in("langgraph.pregel.main", "Pregel")

    def invoke(self, state):
        assert state == {"messages": [{"role": "user", "content": "hi"}]}
        return {"messages": [Message("ignored"), Message([{"type": "text", "text": "graph says hi"}])]}

    return stand_in("langgraph.graph.state", "CompiledStateGraph", pregel, invoke=invoke)()


def _pydantic_ai():
    base = stand_in("pydantic_ai.agent.abstract", "AbstractAgent")
    return stand_in("pydantic_ai.agent", "Agent", base, run_sync=lambda self, q: Result(output="pyd " + q))()


def _smolagents():
    base = stand_in("smolagents.agents", "MultiStepAgent")
    return stand_in("smolagents.agents", "CodeAgent", base, run=lambda self, q: "smol " + q)()


def _crewai():
    def kickoff(self, inputs):
        return Result(raw="crew " + inputs["query"])

    return stand_in("crewai.crew", "Crew", kickoff=kickoff)()


def _llama_index_workflow():
    async def finished(query):
        return Result(response="llama " + query)

    def run(self, user_msg):
        return finished(user_msg)

    base = stand_in("llama_index.core.agent.workflow.base_agent", "BaseWorkflowAgent")
    return stand_in("llama_index.core.agent.workflow", "FunctionAgent", base, run=run)()


def _langchain_executor():
    return stand_in("langchain.agents.agent", "AgentExecutor", invoke=lambda self, s: {"output": "ex " + s["input"]})()


@pytest.mark.parametrize("make, expected", [
    (_strands, "str-of-result"),
    (_langgraph, "graph says hi"),
    (_pydantic_ai, "pyd hi"),
    (_smolagents, "smol hi"),
    (_crewai, "crew hi"),
    (_llama_index_workflow, "str-of-result"),
    (_langchain_executor, "ex hi"),
], ids=["strands", "langgraph", "pydantic-ai", "smolagents", "crewai", "llama-index", "agent-executor"])
def test_a_module_level_framework_object_is_called_as_its_docs_call_it(runner, make, expected):
    name, call = runner.find_entrypoint(agent_module(my_graph=make()))
    assert name == "my_graph"
    assert runner.to_response(call("hi")) == expected


def test_openai_agents_sdk_runs_through_its_runner(runner, monkeypatch):
    sdk = types.ModuleType("agents")
    agent_class = stand_in("agents.agent", "Agent")
    sdk.Runner = types.SimpleNamespace(run_sync=lambda agent, q: Result(final_output=f"{type(agent).__name__}: {q}"))
    monkeypatch.setitem(sys.modules, "agents", sdk)
    name, call = runner.find_entrypoint(agent_module(agent=agent_class()))
    assert (name, call("hi")) == ("agent", "Agent: hi")


def test_a_function_named_run_wins_over_a_framework_object(runner):
    def run(query):
        return "plain " + query

    name, call = runner.find_entrypoint(agent_module(graph=_langgraph(), run=run))
    assert (name, call("hi")) == ("run", "plain hi")


def test_the_last_framework_object_defined_is_the_agent(runner):
    module = agent_module(helper=_smolagents(), pydantic_agent=_pydantic_ai())
    assert runner.find_entrypoint(module)[0] == "pydantic_agent"


def test_the_explicit_name_picks_a_framework_object(runner):
    module = agent_module(run=lambda q: "wrong", holder=types.SimpleNamespace(crew=_crewai()))
    name, call = runner.find_entrypoint(module, "holder.crew")
    assert (name, call("hi")) == ("holder.crew", "crew hi")


def test_a_framework_class_is_not_an_agent(runner):
    with pytest.raises(runner.NoEntryPoint):
        runner.find_entrypoint(agent_module(Agent=stand_in("pydantic_ai.agent", "Agent")))


def test_the_error_lists_what_was_looked_for(runner):
    with pytest.raises(runner.NoEntryPoint) as caught:
        runner.find_entrypoint(agent_module(x=1))
    for expected in ("run(query)", "`agent`", "handler", "main", "__call__", "--entrypoint",
                     "strands.Agent", "langgraph.CompiledStateGraph", "pydantic_ai.Agent",
                     "smolagents.MultiStepAgent", "agents.Agent", "crewai.Crew", "llama_index.AgentWorkflow"):
        assert expected in str(caught.value)
    with pytest.raises(runner.NoEntryPoint) as caught:
        runner.find_entrypoint(agent_module(x=1), "missing")
    assert "--entrypoint" in str(caught.value) and "'missing'" in str(caught.value)


PYDANTIC_STYLE_AGENT = '''
import threading, time

class Agent:  # stands in for pydantic_ai.Agent, which has no __call__
    def run_sync(self, query):
        # A stray non-daemon thread, as a telemetry or price-list worker leaves.
        threading.Thread(target=time.sleep, args=(60,)).start()
        return type("Run", (), {"output": "answered " + query})()

Agent.__module__ = "pydantic_ai.agent"
agent = Agent()
'''


def test_a_module_level_agent_runs_and_the_harness_exits_at_once(tmp_path):
    """Point 5: with the default grace, the result is reported when the agent returns and the
    process ends well within a second of it, whatever threads the agent left."""
    (tmp_path / "agent.py").write_text(textwrap.dedent(PYDANTIC_STYLE_AGENT))
    (tmp_path / "agenttui_harness.py").write_text(runner_source())
    nonce = new_nonce()
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "AGENTTUI_QUERY": "hi", "AGENTTUI_RESULT_NONCE": nonce}
    proc = subprocess.run([sys.executable, str(tmp_path / "agenttui_harness.py")], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=60)
    ended = time.time()
    record = parse_result_line(proc.stdout.rstrip("\n").rsplit("\n", 1)[-1], nonce)
    assert record is not None, proc.stdout + proc.stderr
    assert (proc.returncode, record["response"], record["entrypoint"]) == (0, "answered hi", "agent"), proc.stderr
    assert "calling agent (pydantic-ai Agent, run_sync)" in proc.stderr
    assert ended - record["finished_at"] < 1.0, json.dumps(record)


def test_threads_and_atexit_hooks_that_finish_soon_still_run(tmp_path):
    """Point 5: the grace is for them; the exit skips only what outlasts it."""
    (tmp_path / "agent.py").write_text(textwrap.dedent('''
        import atexit, pathlib, threading, time
        here = pathlib.Path(__file__).parent
        def late_write():
            time.sleep(0.1)
            (here / "thread-done").write_text("yes")
        def run(query):
            threading.Thread(target=late_write).start()
            atexit.register(lambda: (here / "atexit-done").write_text("yes"))
            return "ok"
    '''))
    (tmp_path / "agenttui_harness.py").write_text(runner_source())
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "AGENTTUI_QUERY": "hi", "AGENTTUI_RESULT_NONCE": "n"}
    proc = subprocess.run([sys.executable, str(tmp_path / "agenttui_harness.py")], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "thread-done").exists() and (tmp_path / "atexit-done").exists()
