"""`agenttui package ID`: a package from a real run, recorded and listed with the test."""

import json
import zipfile

import pytest

pytestmark = pytest.mark.docker


def test_package_command_writes_records_and_lists_the_zip(cli, write_agent, tmp_path):
    agent = write_agent("def run(query):\n    return query[::-1]\n")
    done = json.loads(cli("submit", str(agent), "--query", "package me", "--json").stdout)
    assert done["status"] == "COMPLETED"
    out = tmp_path / "out"
    result = cli("package", str(done["id"]), "-o", str(out))
    assert result.returncode == 0, result.stderr
    path = result.stdout.strip()
    assert path.startswith(str(out)) and path.endswith(".zip")
    assert "scp " in result.stderr and path in result.stderr
    names = zipfile.ZipFile(path).namelist()
    for required in ("agent.py", "requirements.txt", "Dockerfile", "README.md", ".env.example",
                     "docker-compose.yml", "cdk/app.py"):
        assert any(n.endswith("/" + required) for n in names), required
    shown = json.loads(cli("show", str(done["id"]), "--json").stdout)
    assert [p["path"] for p in shown["packages"]] == [path]


def test_package_of_an_unknown_test_is_a_clear_error(cli):
    result = cli("package", "4242")
    assert result.returncode == 2 and "no test with id 4242" in result.stderr
