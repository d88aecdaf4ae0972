"""How the installed command ends when its user or its reader leaves: Ctrl-C detaches with the
shell's interrupt code, a closed pipe ends quietly."""

from __future__ import annotations

import os
import signal
import subprocess

from agenttui.core import errors


def test_ctrl_c_in_submit_detaches_with_exit_130_and_the_test_keeps_running(agenttui_cmd, tmp_path, monkeypatch):
    monkeypatch.setenv("AGENTTUI_BACKEND", "noop")
    monkeypatch.setenv("AGENTTUI_NOOP_RUN_S", "30")
    agent = tmp_path / "agent.py"
    agent.write_text("def run(query):\n    return query\n")
    submit = subprocess.Popen([*agenttui_cmd, "submit", str(agent), "--query", "x"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in submit.stdout:  # the follow has begun once the test's first line arrives
            if "preparing image" in line:
                break
        submit.send_signal(signal.SIGINT)
        _, err = submit.communicate(timeout=30)
    finally:
        if submit.poll() is None:
            submit.kill()
    assert submit.returncode == errors.DETACHED.exit == 130, err
    assert "detached: test 1 keeps running" in err
    shown = subprocess.run([*agenttui_cmd, "show", "1", "--json"], capture_output=True, text=True, timeout=60)
    assert '"status": "RUNNING"' in shown.stdout or '"status": "BUILDING"' in shown.stdout, shown.stdout


def test_a_closed_reader_ends_the_output_quietly(agenttui_cmd):
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before anything is written, as after `| head -1`
    try:
        done = subprocess.run([*agenttui_cmd, "--in-process", "history"], stdout=write_end,
                              stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(write_end)
    assert done.returncode == errors.OUTPUT_CLOSED.exit == 141
    assert done.stderr == ""
