"""new-calls-live streams a new call's answer to the agent as it arrives (issue 19, docs/replay.md):
real containers, the real `openai` package (the recorder tests' cached image), a fake OpenAI that
holds a stream's last chunk until the agent, having read the first ones, asks it to let go. The
agent's first call is replayed from the cassette, its streamed call (a new question) goes live:
the release came while the stream was open, and the new call is added to the cassette whole."""

from __future__ import annotations

import json

import pytest

from ..providers.fakes import FakeOpenAI
from .test_recorder_docker import REQUIREMENTS, run_cli

pytestmark = pytest.mark.docker

CANARY = "canary-key-51c0d2e8a7b3"

AGENT = '''import json, os, urllib.request
from openai import OpenAI


def run(query):
    client = OpenAI()
    model = os.environ["MODEL_ID"]
    first = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "say hello"}])
    parts = []
    for chunk in client.chat.completions.create(model=model, messages=[{"role": "user", "content": query}],
                                                stream=True):
        if not parts:  # the first chunk is here: let the fake send its last one (a body of its own: never replayed)
            urllib.request.urlopen(urllib.request.Request(os.environ["OPENAI_BASE_URL"] + "/release",
                                                          data=query.encode()))
            parts.append("")
        if chunk.choices and chunk.choices[0].delta.content:
            parts.append(chunk.choices[0].delta.content)
    return json.dumps({"first": first.choices[0].message.content, "streamed": "".join(parts)})
'''


def submit(agenttui_cmd, tmp_path, fake, query, *options):
    done = run_cli(agenttui_cmd, "submit", str(tmp_path / "agent.py"), "--query", query, "--requirements",
                   str(tmp_path / "requirements.txt"), "--egress", "provider-only", "--timeout", "300", "--json",
                   "--provider", "openai", "--model", "gpt-4o-mini", "-o", f"OPENAI_BASE_URL={fake.url}/v1",
                   "-o", f"OPENAI_API_KEY={CANARY}", *options, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return json.loads(done.stdout)


def test_a_new_calls_stream_reaches_the_agent_while_the_endpoint_still_holds_it(agenttui_cmd, tmp_path):
    (tmp_path / "agent.py").write_text(AGENT)
    (tmp_path / "requirements.txt").write_text(REQUIREMENTS)
    tape = tmp_path / "held.cassette.json"
    with FakeOpenAI(api_key=CANARY, hold_last=True) as fake:
        recorded = submit(agenttui_cmd, tmp_path, fake, "name a quiet bird", "--record", str(tape))
        assert fake.released_in_time == [True]
        before = json.loads(tape.read_text())["exchanges"]
        fake.release.clear()  # the next stream is held again

        grown = submit(agenttui_cmd, tmp_path, fake, "name a loud bird", "--replay", str(tape),
                       "--replay-mode", "new-calls-live")
        assert fake.released_in_time == [True, True], "the new call's first chunks reached the agent at once"
    assert json.loads(grown["response"])["first"] == json.loads(recorded["response"])["first"]
    assert json.loads(grown["response"])["streamed"].strip() == "gpt-4o-mini says: drib duol a eman"
    added = json.loads(tape.read_text())["exchanges"][len(before):]
    streamed = [e for e in added if e["path"] == "/v1/chat/completions"]
    assert [e["request"]["body"]["messages"][0]["content"] for e in streamed] == ["name a loud bird"]
    assert "".join(streamed[0]["response"]["chunks"]).endswith("data: [DONE]\n\n")
    assert CANARY not in tape.read_text()
