"""The versions a test's image installed are recorded at its build, shown as the test's own
`installed` field and pinned in its package (issue 16, point 4). The real build is
tests/docker/test_package_frameworks.py; these check the parts on their own."""

from __future__ import annotations

from agenttui.backends.docker.images import parse_installed
from agenttui.core.wire import TestView

from ..unit.test_packaging_build import package_record
from .test_package_endpoints import rendered

INSTALLED = {"openai": "1.109.1", "httpx": "0.28.1", "pydantic-core": "2.33.2"}


def test_pip_freeze_lines_become_canonical_versions():
    text = "Pydantic_Core==2.33.2\nhttpx==0.28.1\nmylib @ file:///tmp/mylib\n-e git+https://x/y#egg=y\n\n"
    assert parse_installed(text) == {"httpx": "0.28.1", "pydantic-core": "2.33.2"}
    assert parse_installed("") == {}


def test_package_pins_every_installed_version():
    record = package_record("openai", options={"OPENAI_BASE_URL": "https://llm.example.com/v1"},
                            requirements="openai\n", metrics={"wall_s": 1.0, "installed": INSTALLED})
    requirements = rendered(record)["requirements.txt"]
    pins = [line.split("#")[0].strip() for line in requirements.splitlines() if "==" in line]
    assert pins == ["openai==1.109.1", "httpx==0.28.1", "pydantic-core==2.33.2"], requirements
    assert "installed" not in rendered(record)["README.md"].split("## How it was tested")[1].split("Query:")[0]


def test_show_json_has_installed_under_its_own_name():
    record = package_record("ollama", metrics={"wall_s": 1.0, "installed": INSTALLED})
    record.request_json = record.request.model_dump_json()
    view = TestView.from_record(record)
    assert view.installed == INSTALLED and "installed" not in view.metrics
    assert view.summary()["installed"] == INSTALLED and view.to_json()["installed"] == INSTALLED
