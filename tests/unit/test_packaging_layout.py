"""The wheel carries styles/ and templates/, and the engine never imports Textual."""

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_plain_install_finds_styles_and_templates(tmp_path):
    """`pip install .` (not editable): the installed package finds its styles and templates."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(REPO)],
        check=True,
    )
    (wheel,) = tmp_path.glob("agenttui-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert any(n.startswith("agenttui/styles/") and n.endswith(".tcss") for n in names) or not list(
        (REPO / "styles").glob("*.tcss")
    )
    assert any(n.startswith("agenttui/templates/") for n in names)
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)], check=True
    )
    probe = (
        "import json, agenttui.core.resources as r\n"
        "t = r.resource_dir('templates'); s = r.resource_dir('styles')\n"
        "print(json.dumps({'mod': r.__file__, 't': str(t), 's': str(s), "
        "'tfiles': sorted(p.name for p in t.rglob('*') if p.is_file())}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True,
        env={**os.environ, "PYTHONPATH": str(target)},
    )
    found = json.loads(out.stdout)
    assert found["mod"].startswith(str(target))  # the installed copy, not the checkout
    assert found["t"].startswith(str(target)) and found["s"].startswith(str(target))
    expected = sorted(p.name for p in (REPO / "templates").rglob("*") if p.is_file())
    assert found["tfiles"] == expected


def test_engine_and_headless_cli_do_not_import_textual():
    probe = (
        "import sys\n"
        "import agenttui.cli, agenttui.engine.store, agenttui.engine.orchestrator, agenttui.client.local\n"
        "import agenttui.backends.docker.backend, agenttui.harness, agenttui.core.config, agenttui.core.domain\n"
        "from agenttui.cli import build_parser\n"
        "build_parser().parse_args(['queue'])\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'textual'))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_import_linter_contract_holds():
    lint = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run([str(lint)], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "KEPT" in result.stdout


def test_headless_submit_and_queue_load_no_pydantic_nor_sqlalchemy(tmp_path):
    """Their start-up is most of a submit's latency: the socket client's path stays light (the
    server validates). Run up to the first request, against a shared socket nobody answers."""
    agent = tmp_path / "agent.py"
    agent.write_text("def run(q):\n    return q\n")
    probe = (
        "import sys\n"
        "from agenttui.cli import main\n"
        f"codes = [main(['submit', {str(agent)!r}, '--query', 'x']), main(['queue', '--json'])]\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'pydantic', 'pydantic_settings', 'sqlalchemy', "
        "'sqlmodel', 'aiohttp', 'aiodocker'})\n"
        "print(codes, heavy)\n"
    )
    env = {**os.environ, "AGENTTUI_SOCKET_PATH": str(tmp_path / "nobody.sock")}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[3, 3] []", out.stdout + out.stderr
