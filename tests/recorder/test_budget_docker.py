"""Budgets on the egress path (issue 18, point 4): --max-model-calls and --max-tokens refuse the
next model call with a 429 in the provider's error shape, and the test ends with the budget
outcome (exit 7) and a reason naming the budget and the figure reached.

Real containers under provider-only egress, the real `openai` and `ollama` packages (the same
requirements as test_recorder_docker.py, so the image is cached), the fakes of
tests/providers/fakes.py and the installed `agenttui` command."""

from __future__ import annotations

import json
import subprocess

import pytest

from agenttui.core import errors

from ..providers.fakes import FakeOllama, FakeOpenAI, answer, answer_tokens, prompt_tokens
from .test_recorder_docker import QUERY, REQUIREMENTS

# Two calls; the second one's error is what the agent reports (the client library's own exception).
OPENAI_TWO_CALLS = '''import os
from openai import OpenAI


def run(query):
    client = OpenAI()
    model = os.environ["MODEL_ID"]
    first = client.chat.completions.create(model=model, messages=[{"role": "user", "content": query}])
    try:
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": query}])
    except Exception as exc:
        raise RuntimeError(f"{type(exc).__name__}: {getattr(exc, 'status_code', None)}: {exc}") from None
    return first.choices[0].message.content
'''

OLLAMA_TWO_CALLS = '''import os
import ollama


def run(query):
    client = ollama.Client()
    model = os.environ["MODEL_ID"]
    first = client.chat(model=model, messages=[{"role": "user", "content": query}])
    try:
        client.chat(model=model, messages=[{"role": "user", "content": query}], stream=True).__next__()
    except ollama.ResponseError as exc:
        raise RuntimeError(f"ResponseError: {exc.status_code}: {exc.error}") from None
    return first.message.content
'''


def submit(agenttui_cmd, tmp_path, agent: str, *options: str) -> tuple[subprocess.CompletedProcess, dict]:
    (tmp_path / "agent.py").write_text(agent)
    (tmp_path / "requirements.txt").write_text(REQUIREMENTS)
    done = subprocess.run(
        [*agenttui_cmd, "submit", str(tmp_path / "agent.py"), "--query", QUERY, "--requirements",
         str(tmp_path / "requirements.txt"), "--egress", "provider-only", "--timeout", "300", "--json", *options],
        capture_output=True, text=True, timeout=900)
    assert done.returncode == errors.BUDGET_EXHAUSTED.exit == 7, done.stdout[-2000:] + done.stderr[-4000:]
    return done, json.loads(done.stdout)


def trace_and_log(agenttui_cmd, test_id: int) -> tuple[list[dict], str]:
    traced = subprocess.run([*agenttui_cmd, "trace", str(test_id), "--json"], capture_output=True, text=True, timeout=60)
    logs = subprocess.run([*agenttui_cmd, "logs", str(test_id)], capture_output=True, text=True, timeout=60)
    assert traced.returncode == logs.returncode == 0, traced.stderr + logs.stderr
    return json.loads(traced.stdout)["calls"], logs.stdout


@pytest.mark.docker
def test_max_model_calls_refuses_the_second_call_and_ends_the_test_with_the_budget_outcome(agenttui_cmd, tmp_path):
    with FakeOpenAI(api_key="the-key") as fake:
        done, view = submit(agenttui_cmd, tmp_path, OPENAI_TWO_CALLS, "--provider", "openai", "--model", "gpt-4o-mini",
                            "-o", f"OPENAI_BASE_URL={fake.url}/v1", "-o", "OPENAI_API_KEY=the-key",
                            "--max-model-calls", "1")
        asked = [r for r in fake.requests if r["path"].endswith("/chat/completions")]
    assert len(asked) == 1, "the refused call never reached the endpoint (nor was it retried)"
    reason = "budget used up: max-model-calls 1 reached (2nd call refused)"
    assert (view["status"], view["failure_kind"], view["error"]) == ("FAILED", "budget", reason)
    assert reason in done.stderr
    calls, log = trace_and_log(agenttui_cmd, view["id"])
    assert [(c["status"], c["error"]) for c in calls] == [(200, None), (429, "refused by agenttui: " + reason)]
    # The openai library raised it at once and plainly: a RateLimitError carrying our message.
    assert "RateLimitError: 429: Error code: 429" in log and f"agenttui {reason}" in log


@pytest.mark.docker
def test_max_tokens_refuses_the_call_after_the_tokens_reported_reach_it(agenttui_cmd, tmp_path, monkeypatch):
    with FakeOllama() as fake:
        monkeypatch.setenv("AGENTTUI_OLLAMA_URL", fake.url)
        done, view = submit(agenttui_cmd, tmp_path, OLLAMA_TWO_CALLS, "--provider", "ollama", "--model", "llama3.2",
                            "--max-tokens", "10")
        asked = [r for r in fake.requests if r["path"] == "/api/chat"]
    out = answer_tokens(answer("llama3.2", QUERY))
    used = prompt_tokens(QUERY) + out  # the fake's counts of the first answer (> 10)
    reason = f"budget used up: max-tokens 10 reached ({used} tokens used; 2nd call refused)"
    assert len(asked) == 1
    assert (view["failure_kind"], view["error"]) == ("budget", reason)
    calls, log = trace_and_log(agenttui_cmd, view["id"])
    assert [(c["status"], c["tokens_in"], c["tokens_out"]) for c in calls] == [
        (200, prompt_tokens(QUERY), out), (429, 0, 0)]
    assert f"ResponseError: 429: agenttui {reason}" in log  # the ollama library's own error, our words


@pytest.mark.parametrize(("flag", "value", "said"), [
    ("--max-cost", "abc", "--max-cost abc: must be a number of US dollars, e.g. 0.50; it is 'abc'"),
    ("--max-tokens", "-3", "--max-tokens -3: must be between 0 and 1,000,000,000,000; it is -3"),
    ("--max-model-calls", "1.5", "--max-model-calls 1.5: must be a whole number, e.g. 10; it is '1.5'"),
])
def test_a_bad_budget_is_refused_with_the_fix_and_exit_2(agenttui_cmd, tmp_path, flag, value, said):
    (tmp_path / "agent.py").write_text("def run(query):\n    return query\n")
    done = subprocess.run([*agenttui_cmd, "submit", str(tmp_path / "agent.py"), "--query", "q", flag, value],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == errors.INVALID_REQUEST.exit == 2
    assert done.stderr.strip() == f"agenttui: {said}; nothing was queued"


def test_a_bad_budget_on_retry_is_refused_the_same_way(agenttui_cmd):
    done = subprocess.run([*agenttui_cmd, "retry", "1", "--max-tokens", "many"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip() == ("agenttui: --max-tokens many: must be a whole number, e.g. 20000; it is 'many'; "
                                   "nothing was queued")
