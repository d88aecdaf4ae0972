"""Record and replay model traffic (issue 19, docs/replay.md), end to end: real containers under
provider-only egress, the real `openai` package (the image the recorder's tests build, so it is
cached), a fake OpenAI server that answers with random text, and the installed `agenttui` command.

One agent makes two calls: a fixed question, then the query, streamed. Recorded, then replayed:
the same answer byte for byte, exit 0, and the fake sees no connection; the query changed by one
word fails a strict replay with exit 9 naming `messages[0].content` and both values; with
new-calls-live only that call goes to the fake and is added to the cassette. No canary secret
(API key, AWS keys in headers and in a message) is in the cassette."""

from __future__ import annotations

import json
import shutil

import pytest

from agenttui.core import errors

from ..providers.fakes import FakeOpenAI
from .test_recorder_docker import REQUIREMENTS, run_cli

pytestmark = pytest.mark.docker

CANARY = "canary-key-3b8e1f0a6c2d"
AWS_KEY_ID = "AKIAIOSFODNN7CANARY1"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYCANARY2KEY"
QUERY = "name a quiet bird"
CHANGED = "name a loud bird"

AGENT = f'''import json, os
from openai import OpenAI


def run(query):
    client = OpenAI(default_headers={{"x-api-key": os.environ["OPENAI_API_KEY"],
                                     "X-Amz-Security-Token": "{AWS_SECRET}"}})
    model = os.environ["MODEL_ID"]
    first = client.chat.completions.create(model=model, messages=[
        {{"role": "system", "content": "my aws key is {AWS_KEY_ID} {AWS_SECRET}"}},
        {{"role": "user", "content": "say hello"}}])
    parts = []
    for chunk in client.chat.completions.create(model=model, messages=[{{"role": "user", "content": query}}],
                                                stream=True, stream_options={{"include_usage": True}}):
        parts.append(chunk.choices[0].delta.content or "" if chunk.choices else "")
    return json.dumps({{"first": first.choices[0].message.content, "streamed": parts}})
'''


def submit(agenttui_cmd, tmp_path, fake, query, *options):
    done = run_cli(agenttui_cmd, "submit", str(tmp_path / "agent.py"), "--query", query, "--requirements",
                   str(tmp_path / "requirements.txt"), "--egress", "provider-only", "--timeout", "300", "--json",
                   "--provider", "openai", "--model", "gpt-4o-mini", "-o", f"OPENAI_BASE_URL={fake.url}/v1",
                   "-o", f"OPENAI_API_KEY={CANARY}", *options, timeout=900)
    return done, (json.loads(done.stdout) if done.stdout.strip() else None)


def test_a_run_is_recorded_then_replayed_offline_and_a_new_call_is_a_miss_or_added(agenttui_cmd, tmp_path):
    (tmp_path / "agent.py").write_text(AGENT)
    (tmp_path / "requirements.txt").write_text(REQUIREMENTS)
    tape = tmp_path / "bird.cassette.json"
    with FakeOpenAI(api_key=CANARY, random=True) as fake:
        recorded, view = submit(agenttui_cmd, tmp_path, fake, QUERY, "--record", str(tape))
        assert recorded.returncode == 0, recorded.stderr[-3000:]
        assert view["model_traffic"] == "recorded"
        assert tape.exists(), recorded.stderr[-3000:]
        text = tape.read_text()
        for secret in (CANARY, AWS_KEY_ID, AWS_SECRET):
            assert secret not in text
        document = json.loads(text)
        calls = [e for e in document["exchanges"] if e["method"] == "POST"]
        assert [e["path"] for e in calls] == ["/v1/chat/completions"] * 2
        assert "chunks" in calls[1]["response"] and "chunks" not in calls[0]["response"]
        answer = json.loads(view["response"])
        assert len(answer["streamed"]) > 3  # the agent's streaming code read it chunk by chunk

        before = fake.connections
        replayed, again = submit(agenttui_cmd, tmp_path, fake, QUERY, "--replay", str(tape))
        assert replayed.returncode == 0, replayed.stderr[-3000:]
        assert again["response"] == view["response"]  # byte for byte, the random words too
        assert again["model_traffic"] == "replayed"
        assert fake.connections == before, "a strict replay opened nothing upstream"
        shown = run_cli(agenttui_cmd, "show", str(again["id"]))
        assert "model traffic: replayed from a cassette (strict)" in shown.stdout, shown.stdout + shown.stderr

        missed, failed = submit(agenttui_cmd, tmp_path, fake, CHANGED, "--replay", str(tape))
        assert missed.returncode == errors.REPLAY_MISS.exit == 9, missed.stderr[-3000:]
        assert failed["failure_kind"] == "replay_miss"
        assert ('at messages[0].content: recorded "name a quiet bird", now "name a loud bird"'
                in failed["error"]), failed["error"]
        assert fake.connections == before

        grown = tmp_path / "grown.cassette.json"
        shutil.copy(tape, grown)
        live, mixed = submit(agenttui_cmd, tmp_path, fake, CHANGED, "--replay", str(grown),
                             "--replay-mode", "new-calls-live")
        assert live.returncode == 0, live.stderr[-3000:]
        assert [r["body"]["messages"][0]["content"] for r in fake.requests[-1:]] == [CHANGED]
        assert sum(1 for r in fake.requests if r["path"].endswith("/chat/completions")) == 3  # 2 recorded + 1 new
        assert json.loads(mixed["response"])["first"] == answer["first"]  # the recorded call was replayed
    bigger = json.loads(grown.read_text())["exchanges"]
    assert bigger[: len(document["exchanges"])] == document["exchanges"]
    added = bigger[len(document["exchanges"]):]
    assert [e["request"]["body"]["messages"][0]["content"] for e in added] == [CHANGED]
    assert "chunks" in added[0]["response"]
    assert CANARY not in grown.read_text()

    shown = run_cli(agenttui_cmd, "cassette", "show", str(grown))
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0] == f"{grown}: {len(bigger)} exchange(s)"
    assert any("gpt-4o-mini" in line and "name a loud bird" in line and "streamed" in line for line in lines)
    broken = tmp_path / "broken.json"
    broken.write_text("{}")
    refused = run_cli(agenttui_cmd, "cassette", "show", str(broken))
    assert refused.returncode == 2 and "is not an agenttui cassette" in refused.stderr and "Traceback" not in refused.stderr
