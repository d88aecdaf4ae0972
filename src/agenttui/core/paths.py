"""Where agenttui keeps its files: XDG directories through platformdirs, so setting
XDG_CONFIG_HOME / XDG_DATA_HOME / XDG_STATE_HOME / XDG_RUNTIME_DIR isolates a whole run.
Light on purpose: the headless client imports it."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import platformdirs

APP_NAME = "agenttui"


def config_dir() -> Path:
    return Path(platformdirs.user_config_dir(APP_NAME))


def data_dir() -> Path:
    return Path(platformdirs.user_data_dir(APP_NAME))


def state_dir() -> Path:
    return Path(platformdirs.user_state_dir(APP_NAME))


def runtime_dir() -> Path:
    """Where the personal server's socket lives: $XDG_RUNTIME_DIR/agenttui, or a private
    folder in /tmp when the session has no runtime dir (e.g. after `su`)."""
    base = os.environ.get("XDG_RUNTIME_DIR")
    if base and os.access(base, os.W_OK):
        return Path(base) / APP_NAME
    return Path(tempfile.gettempdir()) / f"{APP_NAME}-{os.getuid()}"


def server_log_file() -> Path:
    return state_dir() / "server.log"


def config_file() -> Path:
    return Path(os.environ.get("AGENTTUI_CONFIG", config_dir() / "config.toml"))
