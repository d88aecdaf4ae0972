import itertools
import json
import os
import sqlite3
import subprocess
import textwrap
from pathlib import Path

import pytest

from agenttui.backends.base import RunSpec
from agenttui.core.domain import TestRequest
from agenttui.harness import new_nonce

from ..helpers import wait_for  # noqa: F401  (used by the tests that import it from here)

pytestmark = pytest.mark.docker


@pytest.fixture
def write_agent(tmp_path):
    def write(code: str, name: str = "agent.py") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(code))
        return path

    return write


@pytest.fixture
def cli(agenttui_cmd):
    """Run the real `agenttui` console script; returns CompletedProcess (text)."""

    def run(*args: str, timeout: float = 120, env: dict | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*agenttui_cmd, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, **(env or {})},
        )

    return run


def store_id() -> str:
    """The id of this test's store (test ids repeat across stores; this label does not)."""
    from agenttui.core.config import data_dir

    conn = sqlite3.connect(data_dir() / "agenttui.db")
    return conn.execute("select value from store_meta where key='store_id'").fetchone()[0]


def container_filters(test_id: int) -> list[str]:
    return ["--filter", f"label=agenttui.test_id={test_id}", "--filter", f"label=agenttui.store={store_id()}"]


def containers_of(test_id: int) -> list[str]:
    out = subprocess.run(
        ["docker", "ps", "-aq", *container_filters(test_id)], capture_output=True, text=True, check=True
    ).stdout
    return out.split()




def show_json(cli, test_id: int) -> dict:
    result = cli("show", str(test_id), "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


TEST_IDS = itertools.count(1)  # per session: with a store id, unique container names


def new_spec(request: TestRequest, *, store_id: str, env: dict | None = None) -> tuple[RunSpec, str]:
    """A first attempt of a new test of `store_id`, with the harness's query and a fresh nonce."""
    nonce = new_nonce()
    spec = RunSpec(
        test_id=next(TEST_IDS),
        attempt=1,
        store_id=store_id,
        request=request,
        env={"AGENTTUI_QUERY": request.query, "AGENTTUI_RESULT_NONCE": nonce, **(env or {})},
    )
    return spec, nonce
