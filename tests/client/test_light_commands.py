"""The headless commands start like a small tool: on the way to the server and back, none of
them imports asyncio, pydantic or the store's SQLAlchemy (read from `python -X importtime`)."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("asyncio", "pydantic", "pydantic_core", "sqlalchemy", "sqlmodel", "aiohttp", "textual")


def imported(stderr: str) -> set[str]:
    """The modules a `python -X importtime` run imported, from its report on stderr."""
    names = set()
    for line in stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip())
    return names


@pytest.fixture
def light(monkeypatch):
    monkeypatch.setenv("AGENTTUI_BACKEND", "noop")
    monkeypatch.setenv("AGENTTUI_NOOP_RUN_S", "1")  # long enough to cancel one

    def run(*args: str, code: int = 0) -> subprocess.CompletedProcess:
        done = subprocess.run([sys.executable, "-X", "importtime", "-m", "agenttui", *args],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == code, (args, done.stdout, done.stderr[-3000:])
        heavy = sorted(name for name in imported(done.stderr) if name.split(".")[0] in HEAVY)
        assert not heavy, f"agenttui {' '.join(args)} imported {heavy[:8]}"
        assert "agenttui.client.blocking" in imported(done.stderr)  # it did talk to the server
        return done

    return run


def test_the_headless_commands_import_no_asyncio_pydantic_or_sqlalchemy(light, tmp_path):
    agent = tmp_path / "agent.py"
    agent.write_text("def run(query):\n    return query.upper()\n")
    # The first command starts the personal server (a process of its own, not measured here).
    queued = light("submit", str(agent), "--query", "first", "--no-wait")
    test_id = queued.stdout.strip()
    followed = light("submit", str(agent), "--query", "hello")
    assert "COMPLETED" in followed.stdout and "hello" in followed.stdout
    # A command builds its own part of the grammar: the suite commands' modules stay unloaded.
    assert "agenttui.cli.suites" not in imported(followed.stderr)
    assert "COMPLETED" in light("show", test_id, "--json").stdout
    assert light("logs", test_id).stdout
    assert light("logs", "-f", test_id).stdout
    assert "hello" in light("history").stdout.lower()
    assert "running" in light("queue").stdout
    assert f"test {test_id}" in light("trace", test_id).stdout
    assert "COMPLETED" in light("retry", test_id, "--query", "again").stdout
    running = light("submit", str(agent), "--query", "cancel me", "--no-wait").stdout.strip()
    assert f"test {running} cancelled" in light("cancel", running).stdout.lower()


def test_a_command_alone_is_parsed_as_the_whole_grammar_parses_it():
    from agenttui.cli.entry import COMMANDS
    from agenttui.cli.parser import COMMAND_PARSERS, build_parser, command_of, normalise_argv

    assert set(COMMAND_PARSERS) == set(COMMANDS)
    samples = [
        ["submit", "a.py", "--query", "q", "--egress", "none", "--socket", "/tmp/s"],
        ["--max-concurrent", "3", "history", "--search", "x", "--limit", "5"],
        ["--socket=/tmp/s", "logs", "-f", "7"],
        ["suite", "run", "s.toml", "--repeat", "2", "--json"],
        ["server", "status", "--json"],
    ]
    for argv in samples:
        argv = normalise_argv(argv)
        command = command_of(argv)
        assert command is not None and command in argv
        assert vars(build_parser(command).parse_args(argv)) == vars(build_parser().parse_args(argv))
    assert command_of(normalise_argv(["--help"])) is None  # the whole grammar answers --help
    assert command_of(["agent.py"]) is None  # `agenttui agent.py`: the TUI


@pytest.mark.parametrize(("argv", "said"), [
    (["frobnicate"], "'frobnicate' is not a command. The commands: submit, cassette,"),
    (["submitt", "a.py"], "'submitt' is not a command (did you mean 'submit'?)"),
    (["suite", "rnu"], "'rnu' is not an action of this command (did you mean 'run'?). Its actions: run,"),
    (["submit"], "agenttui submit: missing agent"),
    (["--max-concurrent", "x", "queue"], "--max-concurrent takes a whole number, not 'x'"),
    (["submit", "a.py", "--priority", "urgent"], "--priority is one of high, normal, low, not 'urgent'"),
    (["queue", "--bogus"], "unknown option or argument: --bogus"),
    (["history", "--limit"], "--limit needs a value after it"),
])
def test_a_mistake_on_the_command_line_is_said_in_agenttuis_words(argv, said):
    done = subprocess.run([sys.executable, "-m", "agenttui", *argv], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert said in done.stderr
    assert "--help` lists what it takes" in done.stderr
    for argparse_wording in ("invalid choice", "the following arguments", "unrecognized arguments", "error:",
                             "usage:", "Traceback"):
        assert argparse_wording not in done.stderr


def test_version_is_the_installed_package_s():
    import tomllib
    from pathlib import Path

    declared = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())["project"]["version"]
    done = subprocess.run([sys.executable, "-m", "agenttui", "--version"], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout.strip(), done.stderr) == (0, f"agenttui {declared}", "")
