"""Command line: the TUI (no arguments) and the headless commands (R-25).

Exit codes come from the table in agenttui.core.errors (0 completed, 1 agent failed, 2 invalid
input, 3 infrastructure failure, 4 timed out, 5 cancelled). This module must stay free of
Textual (a test checks it) and light to import: heavy modules load inside the commands that
need them.

One module per group of commands; `run` is the entry point (pyproject's script), `main` the
function it calls (tests call it in their own process)."""

from agenttui.cli.entry import main, run
from agenttui.cli.parser import build_parser

__all__ = ["build_parser", "main", "run"]
