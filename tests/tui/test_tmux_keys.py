"""The pane keys in a real terminal: the installed `agenttui` inside tmux (as over SSH, where
tmux relays the keys), driven with send-keys. No Docker: the in-process engine, noop backend."""

from __future__ import annotations

import os
import shlex
import shutil
import time

import pytest

from ..conftest import IN_CI
from .test_e2e_tmux import Tmux

pytestmark = pytest.mark.skipif(not shutil.which("tmux") and not IN_CI, reason="tmux is not installed")


def test_function_keys_reach_the_panes_and_the_network_option_in_tmux(agenttui_cmd):
    env = {k: v for k, v in os.environ.items() if k.startswith(("XDG_", "AGENTTUI_"))}
    env.update(TERM="tmux-256color", TEXTUAL_ANIMATIONS="none", PATH=os.environ["PATH"], AGENTTUI_BACKEND="noop")
    command = "env " + " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    command += " " + " ".join(shlex.quote(part) for part in [*agenttui_cmd, "--in-process"])
    tmux = Tmux(80, 24)
    try:
        tmux.start(command)
        tmux.wait_for("running 0/", "f2 f3 f4 f5 f6 panes", timeout=60)
        tmux.keys("F6")  # from the code editor: the Options tab, at the Network field
        tmux.wait_for("Network", "Provider", timeout=10)
        tmux.keys("Enter")  # its choices open
        tmux.wait_for("provider-only", timeout=10)
        tmux.keys("Escape")
        time.sleep(0.5)  # (a lone esc is told from the start of a key's sequence by a pause)
        tmux.keys("F3")  # the queue: typing there goes to the Query field
        tmux.wait_for("? Help", timeout=10)  # the footer: out of the Options' fields
        tmux.keys("hello", literal=True)
        tmux.wait_for("Query hello", timeout=10)
        tmux.keys("C-q")
    finally:
        tmux.kill()
