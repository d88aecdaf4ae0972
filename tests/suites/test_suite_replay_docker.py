"""`suite run --record DIR / --replay DIR` (issue 19, docs/replay.md), end to end: real containers
under provider-only egress, an agent with no client library (the base image, no requirements:
nothing to build) making two model calls per case, a fake Ollama on this machine's loopback that
answers each call with random text, and the installed command.

Recorded: a cassette per case and repeat. Replayed strictly: every case's answer byte for byte, the
fake sees no connection, the report and `suite show` say the run was replayed. A case added to the
suite: a strict replay refuses it by name with nothing queued; new-calls-live runs only that case
live (the fake sees exactly its calls), writes its cassettes and leaves the others' files alone. A
changed query: exit 9, naming the JSON path. A resume given the folder replays what it reruns."""

from __future__ import annotations

import json
import secrets
import subprocess
import textwrap
from pathlib import Path

import pytest

from agenttui.core import errors

from ..providers.fakes import FakeOllama, _OllamaHandler

pytestmark = pytest.mark.docker

AGENT = '''import json, os, urllib.request


def ask(content):
    body = {"model": os.environ["MODEL_ID"], "stream": False, "messages": [{"role": "user", "content": content}]}
    request = urllib.request.Request(os.environ["OLLAMA_HOST"] + "/api/chat", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request) as answer:
        return json.load(answer)["message"]["content"]


def run(query):
    return ask("plan: " + query) + " | " + ask(query)
'''


class _RandomHandler(_OllamaHandler):
    def do_POST(self):
        if self.path != "/api/chat":
            return super().do_POST()
        body = self._body()
        text = f"{body['messages'][-1]['content']} -> {secrets.token_hex(6)}"  # never the same twice
        self._send(200, {"model": body.get("model"), "message": {"role": "assistant", "content": text},
                         "done": True, "done_reason": "stop", "prompt_eval_count": 4, "eval_count": 3})


class RandomOllama(FakeOllama):
    handler = _RandomHandler

    def chats(self) -> list[str]:
        return [r["body"]["messages"][-1]["content"] for r in self.requests if r["path"] == "/api/chat"]


def write_suite(tmp_path, name: str, cases: list[str]) -> str:
    (tmp_path / "agent.py").write_text(AGENT)
    body = textwrap.dedent('''
        name = "taped"
        agent = "agent.py"
        egress = "provider-only"
        timeout = 120
        repeat = 2
    ''') + "".join(f'''
[[case]]
id = "{case}"
query = "question {case}"
[[case.expect]]
type = "contains"
value = "question {case} ->"
''' for case in cases)
    path = tmp_path / name
    path.write_text(body)
    return str(path)


def responses(report: dict) -> dict[tuple[str, int], str]:
    return {(case["case_id"], r["repeat"]): r["response"] for case in report["cases"] for r in case["repeats"]}


def traffic(report: dict) -> set[str]:
    return {r["model_traffic"] for case in report["cases"] for r in case["repeats"]}


def test_a_suite_is_recorded_per_case_replayed_offline_and_only_a_new_case_goes_live(agenttui_cmd, tmp_path,
                                                                                      monkeypatch):
    monkeypatch.setenv("AGENTTUI_MAX_CONCURRENT", "4")

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*agenttui_cmd, *args], capture_output=True, text=True, timeout=900)

    tapes = tmp_path / "tapes"
    two = write_suite(tmp_path, "two.toml", ["a", "b"])
    three = write_suite(tmp_path, "three.toml", ["a", "b", "c"])
    with RandomOllama() as fake:  # one fake for every run: the server reads its endpoint once
        monkeypatch.setenv("AGENTTUI_OLLAMA_URL", fake.url)
        recorded = cli("suite", "run", two, "--record", str(tapes), "--json")
        assert recorded.returncode == 0, recorded.stdout[-2000:] + recorded.stderr[-3000:]
        first = json.loads(recorded.stdout)
        assert traffic(first) == {"recorded"} and first["totals"]["model_traffic"] == "recorded"
        assert sorted(p.name for p in tapes.iterdir()) == [
            "a.1.cassette.json", "a.2.cassette.json", "b.1.cassette.json", "b.2.cassette.json"]
        document = json.loads((tapes / "b.2.cassette.json").read_text())
        asked = [e["request"]["body"]["messages"][-1]["content"] for e in document["exchanges"]
                 if e["path"] == "/api/chat"]
        assert asked == ["plan: question b", "question b"]
        assert len(fake.chats()) == 8
        before = {p.name: p.read_bytes() for p in tapes.iterdir()}

        connections = fake.connections
        replayed = cli("suite", "run", two, "--replay", str(tapes), "--json")
        assert replayed.returncode == 0, replayed.stdout[-2000:] + replayed.stderr[-3000:]
        again = json.loads(replayed.stdout)
        assert responses(again) == responses(first)  # byte for byte, the random words too
        assert fake.connections == connections, "a strict replay opened nothing upstream"
        assert traffic(again) == {"replayed"}
        shown = cli("suite", "show", str(again["run_id"]))
        assert shown.stdout.splitlines()[0] == f"suite 'taped', run {again['run_id']}, model traffic: replayed", \
            shown.stdout
        test_id = again["cases"][0]["repeats"][0]["test_id"]
        assert json.loads(cli("show", str(test_id), "--json").stdout)["model_traffic"] == "replayed"
        history = json.loads(cli("history", "--json").stdout)
        assert {h["id"]: h["model_traffic"] for h in history}[test_id] == "replayed"

        runs = len(json.loads(cli("suite", "list", "--json").stdout))
        refused = cli("suite", "run", three, "--replay", str(tapes))
        assert refused.returncode == 2, refused.stderr
        assert ("no cassette for 2 case run(s) (c.1.cassette.json, c.2.cassette.json), nothing was queued"
                in refused.stderr), refused.stderr
        assert "--replay-mode new-calls-live" in refused.stderr and "Traceback" not in refused.stderr
        assert len(json.loads(cli("suite", "list", "--json").stdout)) == runs

        grown = cli("suite", "run", three, "--replay", str(tapes), "--replay-mode", "new-calls-live", "--json")
        assert grown.returncode == 0, grown.stdout[-2000:] + grown.stderr[-3000:]
        mixed = json.loads(grown.stdout)
        assert fake.chats()[8:] == ["plan: question c", "question c"] * 2  # only the new case went live
        assert {k: v for k, v in responses(mixed).items() if k[0] != "c"} == responses(first)
        assert mixed["totals"]["model_traffic"] == "4 replayed, 2 recorded"
        assert {p.name: p.read_bytes() for p in tapes.iterdir() if not p.name.startswith("c.")} == before
        assert sorted(p.name for p in tapes.iterdir() if p.name.startswith("c.")) == [
            "c.1.cassette.json", "c.2.cassette.json"]
        assert "wrote 2 cassette(s)" in grown.stderr and "4 unchanged" in grown.stderr, grown.stderr

        connections = fake.connections
        offline = cli("suite", "run", three, "--replay", str(tapes), "--json")
        assert offline.returncode == 0, offline.stdout[-2000:] + offline.stderr[-3000:]
        assert responses(json.loads(offline.stdout)) == responses(mixed)
        assert fake.connections == connections

        # The agent now asks something else: a strict replay fails that case run and says where.
        changed = tmp_path / "changed.toml"
        changed.write_text(Path(two).read_text().replace('query = "question b"', 'query = "question B"'))
        missed = cli("suite", "run", str(changed), "--case", "b", "--replay", str(tapes))
        assert missed.returncode == errors.REPLAY_MISS.exit == 9, missed.stdout[-2000:] + missed.stderr[-3000:]
        assert 'at messages[0].content: recorded "plan: question b", now "plan: question B"' in missed.stderr, \
            missed.stderr
        assert "2 case run(s) asked their model what their cassette lacks" in missed.stderr
        assert fake.connections == connections

        # A resume replays too when told the folder: the case runs it queues again stay offline.
        queued = cli("suite", "run", two, "--replay", str(tapes), "--no-wait", "--json")
        run_id = json.loads(queued.stdout)["run_id"]
        ids = [r["test_id"] for case in json.loads(cli("suite", "show", str(run_id), "--json").stdout)["cases"]
               for r in case["repeats"]]
        for test_id in ids:
            cli("cancel", str(test_id))
        resumed = cli("suite", "resume", str(run_id), "--replay", str(tapes), "--json")
        assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-3000:]
        final = json.loads(resumed.stdout)
        again_ids = {r["test_id"] for case in final["cases"] for r in case["repeats"]}
        assert again_ids - set(ids), "the cancelled case runs ran again"
        assert traffic(final) == {"replayed"} and responses(final) == responses(first)
        assert fake.connections == connections
