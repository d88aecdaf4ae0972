"""Snapshots of every rendered package file, per provider, with a fixed clock.

A template change shows up here as a diff to review. To accept it deliberately:

    AGENTTUI_UPDATE_GOLDEN=1 .venv/bin/pytest tests/unit/test_packaging_golden.py

then read `git diff tests/unit/golden/` before committing.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agenttui import packaging

from .test_packaging_build import MODELS, build, files_of, package_record

GOLDEN = Path(__file__).resolve().parent / "golden" / "package"
UPDATE = os.environ.get("AGENTTUI_UPDATE_GOLDEN", "") not in ("", "0")
# agent.py is the user's code and agenttui_harness.py the harness's own source: not templates.
RENDERED = [target for _template, target in packaging.TEMPLATES]


def golden_package(tmp_path: Path, provider: str) -> dict[str, str]:
    record = package_record(
        provider,
        requirements="requests>=2.31\nrich\n",
        code=(
            '"""Weather helper: answers questions about the weather."""\n'
            "import os\n\n"
            "def run(query):\n"
            "    return 'sunny (%s) for: %s' % (os.environ.get('UNITS', 'metric'), query)\n"
        ),
    )
    return files_of(build(tmp_path, record, versions={"rich": "13.9.4"}))


@pytest.mark.parametrize("provider", sorted(MODELS))
@pytest.mark.parametrize("target", RENDERED)
def test_template_output_matches_golden(tmp_path, provider, target):
    files = golden_package(tmp_path, provider)
    golden = GOLDEN / provider / (target.replace("/", "__") + ".golden")
    if UPDATE:
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(files[target], encoding="utf-8")
    assert golden.is_file(), f"no golden file {golden}; run with AGENTTUI_UPDATE_GOLDEN=1 and review it"
    assert files[target] == golden.read_text(encoding="utf-8"), (
        f"{target} for {provider} changed; if intended, regenerate with AGENTTUI_UPDATE_GOLDEN=1 "
        "and review the diff"
    )


def test_no_stale_golden_files():
    expected = {(p, t.replace("/", "__") + ".golden") for p in MODELS for t in RENDERED}
    present = {(f.parent.name, f.name) for f in GOLDEN.glob("*/*")}
    assert present <= expected, sorted(present - expected)
