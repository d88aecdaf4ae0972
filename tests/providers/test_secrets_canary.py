"""R-18 canary: fake secrets given to tests whose agent prints its whole environment (and
returns it) never appear in the store file's bytes, `agenttui logs`, `--json` output, the
TUI's screen or a generated package; the masked form shows instead. Also: invalid provider
configurations are refused field by field before anything is queued."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import textwrap
import zipfile
from pathlib import Path

import pytest

from .fakes import FakeOpenAI, answer

pytestmark = pytest.mark.docker

OPENAI_KEY = "sk-canary-" + "Zq7" * 8
AWS_KEY_ID = "AKIACANARY7EXAMPLE42"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYCANARY4242"
AWS_TOKEN = "FwoGZXIvYXdzEPr//////////wEaDCANARYsessiontoken" + "x9Y" * 20
SECRETS = (OPENAI_KEY, AWS_KEY_ID, AWS_SECRET, AWS_TOKEN)

AGENT = '''
import hashlib, json, os, urllib.request

def run(query):
    for key, value in sorted(os.environ.items()):
        print(f"{key}={value}")
    digests = {k: hashlib.sha256(v.encode()).hexdigest() for k, v in os.environ.items()}
    reply = ""
    if os.environ.get("OPENAI_API_KEY"):
        request = urllib.request.Request(
            os.environ["OPENAI_BASE_URL"] + "/chat/completions",
            json.dumps({"model": os.environ["MODEL_ID"], "messages": [{"role": "user", "content": query}]}).encode(),
            {"Content-Type": "application/json", "Authorization": "Bearer " + os.environ["OPENAI_API_KEY"]})
        reply = json.loads(urllib.request.urlopen(request, timeout=20).read())["choices"][0]["message"]["content"]
    return json.dumps({"reply": reply, "env": dict(os.environ), "digests": digests})
'''


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@pytest.fixture
def run_cli(agenttui_cmd):
    def run(*args: str, env: dict | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
        base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "OPENAI_"))}
        # Never let boto3 look further than the environment (no metadata service, no STS).
        base.update(AWS_EC2_METADATA_DISABLED="true", AWS_CONFIG_FILE="/nonexistent",
                    AWS_SHARED_CREDENTIALS_FILE="/nonexistent", AWS_ENDPOINT_URL_STS="http://127.0.0.1:9")
        return subprocess.run([*agenttui_cmd, *args], capture_output=True, text=True, timeout=timeout,
                              env={**base, **(env or {})})
    return run


def leaks(text: str | bytes) -> list[str]:
    data = text.encode() if isinstance(text, str) else text
    return [s for s in SECRETS if s.encode() in data]


def test_secrets_never_leave_the_sandbox(run_cli, tmp_path):
    agent = tmp_path / "agent.py"
    agent.write_text(AGENT)
    with FakeOpenAI(api_key=OPENAI_KEY) as endpoint:
        openai = run_cli("submit", str(agent), "--query", "canary", "--provider", "openai", "--model", "gpt-fake",
                         "--option", f"OPENAI_BASE_URL={endpoint.url}/v1", "--egress", "provider-only", "--json",
                         env={"OPENAI_API_KEY": OPENAI_KEY})
        assert openai.returncode == 0, openai.stderr[-3000:]
        # Bedrock: the user's (fake, temporary) AWS credentials from their environment; the
        # runtime endpoint is pointed at this machine so the preflight stays local.
        bedrock = run_cli("submit", str(agent), "--query", "canary", "--provider", "bedrock", "--model", "m",
                          "--option", f"AWS_ENDPOINT_URL_BEDROCK_RUNTIME={endpoint.url}", "--egress", "provider-only",
                          "--json", env={"AWS_ACCESS_KEY_ID": AWS_KEY_ID, "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
                                         "AWS_SESSION_TOKEN": AWS_TOKEN, "AWS_REGION": "eu-west-1"})
        assert bedrock.returncode == 0, bedrock.stderr[-3000:]
        assert endpoint.requests[-1]["headers"]["Authorization"] == f"Bearer {OPENAI_KEY}"
    outputs = [openai.stdout, openai.stderr, bedrock.stdout, bedrock.stderr]
    ids = [json.loads(result.stdout)["id"] for result in (openai, bedrock)]
    for test_id in ids:
        logs = run_cli("logs", str(test_id))
        show = run_cli("show", str(test_id), "--json")
        assert logs.returncode == 0 and show.returncode == 0
        outputs += [logs.stdout, show.stdout]
        assert "[redacted]" in logs.stdout and "[redacted]" in show.stdout
        response = json.loads(json.loads(show.stdout)["response"])
        digests = response["digests"]
        if test_id == ids[0]:
            assert response["reply"] == answer("gpt-fake", "canary")
            assert digests["OPENAI_API_KEY"] == sha(OPENAI_KEY)  # delivered, yet never shown
        else:
            assert (digests["AWS_ACCESS_KEY_ID"], digests["AWS_SECRET_ACCESS_KEY"], digests["AWS_SESSION_TOKEN"]) == (
                sha(AWS_KEY_ID), sha(AWS_SECRET), sha(AWS_TOKEN))
            assert response["env"]["AWS_REGION"] == "eu-west-1"
        package = run_cli("package", str(test_id), "-o", str(tmp_path / "pkg"), "--json")
        assert package.returncode == 0, package.stderr
        with zipfile.ZipFile(json.loads(package.stdout)["path"]) as archive:
            for name in archive.namelist():
                assert leaks(archive.read(name)) == [], name
    assert [leaks(text) for text in outputs] == [[]] * len(outputs)
    # The store's files, byte for byte (with its write-ahead log), hold no secret value; the
    # stored request keeps the secret's name only and the sealed copy is gone with the test.
    from agenttui.core.config import data_dir

    for path in data_dir().glob("agenttui.db*"):
        assert leaks(path.read_bytes()) == [], path
    conn = sqlite3.connect(data_dir() / "agenttui.db")
    request = json.loads(conn.execute("select request_json from tests where id=?", (ids[0],)).fetchone()[0])
    assert request["provider"]["secrets"] == ["OPENAI_API_KEY"] and "OPENAI_API_KEY" not in request["provider"]["options"]
    assert conn.execute("select count(*) from test_secrets").fetchone()[0] == 0
    conn.close()
    assert_tui_shows_no_secret(ids)


def assert_tui_shows_no_secret(ids: list[int]) -> None:
    import asyncio

    from agenttui.client.local import LocalClient
    from agenttui.core.config import load_settings

    from ..tui.conftest import make_app, screen_text, wait_until

    async def look() -> list[str]:
        settings = load_settings(backend="noop")
        app = make_app(settings, client=LocalClient(settings))
        screens = []
        async with app.run_test(size=(160, 50)) as pilot:
            await wait_until(pilot, lambda: len(app.history_table.views) == 2, what="history")
            await pilot.press("f4")
            for test_id in ids:
                app.history_table.select_test(test_id)
                await pilot.pause()
                await pilot.press("enter")
                await wait_until(pilot, lambda: getattr(app.screen, "loaded", False), what="detail")
                screens.append(screen_text(app))
                await pilot.press("escape")
        return screens

    screens = asyncio.run(look())
    assert all("[redacted]" in text for text in screens)
    assert [leaks(text) for text in screens] == [[], []]


def test_invalid_provider_configs_are_refused_field_by_field(run_cli, tmp_path):
    agent = tmp_path / "agent.py"
    agent.write_text("def run(q):\n    return q\n")
    cases = [
        (["--provider", "skynet"], {}, ["--provider: unknown provider 'skynet'"]),
        (["--provider", "openai", "--option", "OPENAI_BASE_URL=ftp://x/v1"], {"OPENAI_API_KEY": "k-12345678"},
         ["--option OPENAI_BASE_URL: must be an http:// or https:// URL"]),
        (["--provider", "ollama", "--option", "OLLAMA_HOST=http://bad host:1"], {}, ["--option OLLAMA_HOST:"]),
        (["--provider", "openai", "--option", "OPENAI_BASE_URL=http://127.0.0.1:9/v1"], {},
         ["--option OPENAI_API_KEY: the API key is missing"]),
        (["--provider", "bedrock"], {}, ["--provider bedrock (credentials): no AWS credentials were found",
                                        "--option AWS_REGION: no AWS region"]),
        (["--egress", "everything"], {}, ["--egress"]),
    ]
    for flags, env, expected in cases:
        result = run_cli("submit", str(agent), "--query", "q", *flags, env=env)
        assert result.returncode == 2, (flags, result.stderr)
        for fragment in expected:
            assert fragment in result.stderr, (flags, result.stderr)
    from agenttui.core.config import data_dir

    db = data_dir() / "agenttui.db"
    assert not db.exists() or sqlite3.connect(db).execute("select count(*) from tests").fetchone()[0] == 0
