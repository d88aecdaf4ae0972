"""Model calls of an agent with no tracing code, recorded on the egress path (issue 18, phase 1).

Real containers under provider-only egress, the real `ollama` and `openai` packages from PyPI
(installed through --requirements), the fake servers of tests/providers/fakes.py, and the
installed `agenttui` command: the agent makes two calls (the first offers a tool, the second is
streamed) and gets exactly the fake's answers; `trace --json` has exactly those two calls with the
fake's token counts, model names, tool calls and the price table's cost; `show --json` sums them;
a stream's first chunks reach the agent while the fake still holds its last one; the API key,
sent in a header and pasted into a message, is stored nowhere."""

from __future__ import annotations

import json
import subprocess

import pytest

from agenttui.core.prices import load_price_table

from ..providers.fakes import FakeOllama, FakeOpenAI, answer, answer_tokens, prompt_tokens

pytestmark = pytest.mark.docker

REQUIREMENTS = "ollama==0.6.3\nopenai==1.109.1\n"  # one image for both tests, built once
QUERY = "what is a recorder"
CANARY = "canary-key-7f3a9c2e5b1d"
TOOLS = '''[{"type": "function", "function": {"name": "lookup", "description": "look a word up",
          "parameters": {"type": "object", "properties": {"query": {"type": "string"}}}}}]'''

OLLAMA_AGENT = f'''import json, os, urllib.request
import ollama


def run(query):
    client = ollama.Client()  # OLLAMA_HOST
    model = os.environ["MODEL_ID"]
    first = client.chat(model=model, messages=[{{"role": "user", "content": query}}], tools={TOOLS})
    tools = [[c.function.name, dict(c.function.arguments)] for c in first.message.tool_calls or []]
    parts = []
    for chunk in client.chat(model=model, messages=[{{"role": "user", "content": query}}], stream=True):
        if not parts:  # the first chunk is here: let the fake send its last one
            urllib.request.urlopen(urllib.request.Request(os.environ["OLLAMA_HOST"] + "/release", data=b""))
        parts.append(chunk.message.content)
    return json.dumps({{"tools": tools, "first": first.message.content, "streamed": "".join(parts)}})
'''

OPENAI_AGENT = f'''import json, os, urllib.request
from openai import OpenAI


def run(query):
    client = OpenAI()  # OPENAI_BASE_URL, OPENAI_API_KEY
    model = os.environ["MODEL_ID"]
    leak = {{"role": "system", "content": "debug: my key is " + os.environ["OPENAI_API_KEY"]}}
    first = client.chat.completions.create(
        model=model, messages=[leak, {{"role": "user", "content": query}}], tools={TOOLS})
    call = first.choices[0].message.tool_calls[0]
    parts = []
    stream = client.chat.completions.create(model=model, messages=[{{"role": "user", "content": query}}],
                                            stream=True, stream_options={{"include_usage": True}})
    for chunk in stream:
        if not parts:
            urllib.request.urlopen(urllib.request.Request(os.environ["OPENAI_BASE_URL"] + "/release", data=b""))
            parts.append("")
        if chunk.choices and chunk.choices[0].delta.content:
            parts.append(chunk.choices[0].delta.content)
    return json.dumps({{"tools": [[call.function.name, json.loads(call.function.arguments)]],
                       "first": first.choices[0].message.content, "streamed": "".join(parts)}})
'''


def run_cli(agenttui_cmd, *args, env=None, timeout=60):
    done = subprocess.run([*agenttui_cmd, *args], capture_output=True, text=True, timeout=timeout, env=env)
    return done


def submit_and_read(agenttui_cmd, tmp_path, agent: str, *options: str, env=None):
    (tmp_path / "agent.py").write_text(agent)
    (tmp_path / "requirements.txt").write_text(REQUIREMENTS)
    submitted = run_cli(agenttui_cmd, "submit", str(tmp_path / "agent.py"), "--query", QUERY, "--requirements",
                        str(tmp_path / "requirements.txt"), "--egress", "provider-only", "--timeout", "300",
                        "--json", *options, env=env, timeout=900)
    assert submitted.returncode == 0, submitted.stdout[-2000:] + submitted.stderr[-4000:]
    view = json.loads(submitted.stdout)
    shown = run_cli(agenttui_cmd, "show", str(view["id"]), "--json", env=env)
    traced = run_cli(agenttui_cmd, "trace", str(view["id"]), "--json", env=env)
    human = run_cli(agenttui_cmd, "trace", str(view["id"]), env=env)
    plain_show = run_cli(agenttui_cmd, "show", str(view["id"]), env=env)
    assert shown.returncode == traced.returncode == human.returncode == plain_show.returncode == 0, (
        shown.stderr + traced.stderr + human.stderr + plain_show.stderr)
    assert "model calls: 2 call(s), tokens " in plain_show.stdout and f"(agenttui trace {view['id']})" in plain_show.stdout
    history = run_cli(agenttui_cmd, "history", "--json", env=env)
    assert history.returncode == 0, history.stderr
    listed = next(entry for entry in json.loads(history.stdout) if entry["id"] == view["id"])
    assert listed["model_calls"] == json.loads(shown.stdout)["model_calls"]
    return view, json.loads(shown.stdout), traced.stdout, human.stdout + plain_show.stdout


def test_an_ollama_agent_calls_are_recorded_exactly(agenttui_cmd, tmp_path, monkeypatch):
    with FakeOllama(hold_last=True) as fake:
        monkeypatch.setenv("AGENTTUI_OLLAMA_URL", fake.url)
        view, shown, trace_json, human = submit_and_read(
            agenttui_cmd, tmp_path, OLLAMA_AGENT, "--provider", "ollama", "--model", "llama3.2")
        assert fake.released_in_time == [True], "the agent read the first chunks while the stream was open"
    text = answer("llama3.2", QUERY)
    assert json.loads(view["response"]) == {"tools": [["lookup", {"query": QUERY}]], "first": "", "streamed": text}
    trace = json.loads(trace_json)
    calls = trace["calls"]
    assert [(c["kind"], c["provider"], c["model"], c["path"], c["status"], c["streamed"]) for c in calls] == [
        ("call", "ollama", "llama3.2", "/api/chat", 200, False),
        ("call", "ollama", "llama3.2", "/api/chat", 200, True),
    ]
    assert [(c["tokens_in"], c["tokens_out"], c["cost_usd"]) for c in calls] == [
        (prompt_tokens(QUERY), 7, 0.0), (prompt_tokens(QUERY), answer_tokens(text), 0.0)]
    assert calls[0]["tool_calls"] == [{"id": None, "name": "lookup", "arguments": json.dumps({"query": QUERY},
                                                                                            separators=(",", ":"))}]
    assert calls[1]["response"] == text and json.loads(calls[1]["request"]) == [{"role": "user", "content": QUERY}]
    assert all(c["first_byte_s"] is not None and c["duration_s"] >= c["first_byte_s"] for c in calls)
    totals = shown["model_calls"]
    assert (totals["calls"], totals["tokens_in"], totals["tokens_out"], totals["cost_usd"]) == (
        2, 2 * prompt_tokens(QUERY), 7 + answer_tokens(text), 0.0)
    assert trace["totals"] == totals
    assert "#1" in human and "tool call: lookup" in human and "llama3.2" in human


def test_an_openai_agent_calls_are_recorded_exactly_and_its_key_is_stored_nowhere(agenttui_cmd, tmp_path):
    with FakeOpenAI(api_key=CANARY, hold_last=True) as fake:
        view, shown, trace_json, human = submit_and_read(
            agenttui_cmd, tmp_path, OPENAI_AGENT, "--provider", "openai", "--model", "gpt-4o-mini",
            "-o", f"OPENAI_BASE_URL={fake.url}/v1", "-o", f"OPENAI_API_KEY={CANARY}")
        assert fake.released_in_time == [True]
        assert fake.requests[-1]["headers"]["Authorization"] == f"Bearer {CANARY}"  # it was on the wire
    text = answer("gpt-4o-mini", QUERY)
    streamed = " ".join(text.split(" ")) + " "  # the fake sends each word with a space after it
    assert json.loads(view["response"]) == {"tools": [["lookup", {"query": QUERY}]], "first": None,
                                            "streamed": streamed}
    trace = json.loads(trace_json)
    calls = trace["calls"]
    assert [(c["kind"], c["provider"], c["model"], c["path"], c["status"], c["streamed"]) for c in calls] == [
        ("call", "openai", "gpt-4o-mini", "/v1/chat/completions", 200, False),
        ("call", "openai", "gpt-4o-mini", "/v1/chat/completions", 200, True),
    ]
    prices = load_price_table({})
    expected = [(prompt_tokens(QUERY), 7), (prompt_tokens(QUERY), answer_tokens(text))]
    assert [(c["tokens_in"], c["tokens_out"]) for c in calls] == expected
    assert [c["cost_usd"] for c in calls] == [prices.cost("openai", "gpt-4o-mini", *t) for t in expected]
    assert calls[0]["tool_calls"] == [{"id": "call_1", "name": "lookup", "arguments": json.dumps({"query": QUERY})}]
    assert calls[1]["response"] == streamed
    assert "[redacted]" in calls[0]["request"]
    assert CANARY not in trace_json and CANARY not in json.dumps(shown) and CANARY not in human
    stored = [path for path in (tmp_path / "home").rglob("*.db*") if path.is_file()]
    assert stored and not any(CANARY.encode() in path.read_bytes() for path in stored)  # nor in the store's files
    assert shown["model_calls"]["cost_usd"] == round(sum(c["cost_usd"] for c in calls), 6)


def test_a_failed_model_call_is_named_in_the_failure_reason(agenttui_cmd, tmp_path):
    from agenttui.core import errors

    agent = tmp_path / "agent.py"
    agent.write_text("import os\nfrom openai import OpenAI\n\n\ndef run(query):\n    return OpenAI().chat.completions.create("
                     "model=os.environ['MODEL_ID'], messages=[{'role': 'user', 'content': query}]).choices[0].message.content\n")
    (tmp_path / "requirements.txt").write_text(REQUIREMENTS)
    with FakeOpenAI(api_key="the-right-key") as fake:
        done = run_cli(agenttui_cmd, "submit", str(agent), "--query", QUERY, "--requirements",
                       str(tmp_path / "requirements.txt"), "--egress", "provider-only", "--json", "--provider", "openai",
                       "--model", "gpt-4o-mini", "-o", f"OPENAI_BASE_URL={fake.url}/v1",
                       "-o", f"OPENAI_API_KEY={CANARY}", timeout=900)
    assert done.returncode == errors.AGENT_FAILED.exit, done.stderr[-3000:]
    view = json.loads(done.stdout)
    assert view["error"].endswith("; its model calls failed: openai gpt-4o-mini: HTTP 401: Incorrect API key provided")
    assert CANARY not in done.stdout
