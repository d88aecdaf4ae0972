"""The few settings a socket client needs, read without pydantic.

Same sources and order as agenttui.core.config.Settings (flags > AGENTTUI_* > config.toml >
defaults) and the same bounds (a unit test compares them), but only these fields: importing
pydantic-settings costs a headless command ~200 ms. The server validates all its settings
when it starts; a personal server that refuses to start for a bad setting is reported by the
client that started it (agenttui.client.remote).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agenttui.core.errors import SettingsError
from agenttui.core.paths import config_file, runtime_dir

# name -> (type, default, exclusive minimum, inclusive minimum, inclusive maximum)
FIELDS: dict[str, tuple[type, Any, float | None, float | None, float | None]] = {
    "socket_path": (Path, None, None, None, None),
    "in_process": (bool, False, None, None, None),
    "default_cpus": (float, 1.0, 0, None, 64),
    "default_memory_mb": (int, 2048, None, 64, 1_048_576),
    "default_pids": (int, 1000, None, 16, 1_000_000),
    "default_timeout_s": (int, 600, None, 10, 600),
    "aws_session_duration_s": (int, 3600, None, 900, 129600),
    "poll_s": (float, 0.2, 0, None, None),
    # Read by the TUI: its status bar names the backend, its editor the server's default egress.
    "backend": (str, "docker", None, None, None),
    "default_egress": (str, "provider-only", None, None, None),
}
CHOICES: dict[str, tuple[str, ...]] = {
    "backend": ("docker", "ecs", "noop"),
    "default_egress": ("none", "provider-only", "full"),
}
_TRUE = {"1", "on", "t", "true", "y", "yes"}
_FALSE = {"0", "off", "f", "false", "n", "no"}


@dataclass(frozen=True)
class ClientSettings:
    socket_path: Path | None
    in_process: bool
    default_cpus: float
    default_memory_mb: int
    default_pids: int
    default_timeout_s: int
    aws_session_duration_s: int
    poll_s: float
    backend: str
    default_egress: str

    @property
    def resolved_socket_path(self) -> Path:
        return self.socket_path or runtime_dir() / "agenttui.sock"


def _convert(name: str, raw: Any) -> Any:
    kind, _default, gt, ge, le = FIELDS[name]
    if kind is bool:
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
        raise ValueError("must be a boolean (true or false)")
    if kind is str:
        if raw not in CHOICES[name]:
            raise ValueError(f"must be one of {', '.join(CHOICES[name])}, got {raw!r}")
        return raw
    if kind is Path:
        if not isinstance(raw, (str, os.PathLike)):
            raise ValueError("must be a path")
        return Path(raw) if str(raw) else None  # empty: not set
    if isinstance(raw, bool):
        raise ValueError(f"must be a{'n integer' if kind is int else ' number'}")
    try:
        value = kind(raw.strip() if isinstance(raw, str) else raw)
        if kind is int and isinstance(raw, float) and raw != value:
            raise ValueError
    except (TypeError, ValueError):
        raise ValueError(f"must be a{'n integer' if kind is int else ' number'}, got {raw!r}") from None
    if gt is not None and not value > gt:
        raise ValueError(f"must be greater than {gt}")
    if ge is not None and not value >= ge:
        raise ValueError(f"must be at least {ge}")
    if le is not None and not value <= le:
        raise ValueError(f"must be at most {le}")
    return value


def _toml() -> dict[str, Any]:
    path = config_file()
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise SettingsError(f"cannot read settings from {path}: {exc}") from None
    import tomllib

    try:
        return tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SettingsError(f"cannot read settings from {path}: {exc}") from None


def load_client_settings(**overrides: Any) -> ClientSettings:
    """Flags (`overrides`, None = not given) > AGENTTUI_* (any case) > config.toml > defaults."""
    env = {key.upper(): value for key, value in os.environ.items() if key.upper().startswith("AGENTTUI_")}
    toml: dict[str, Any] | None = None
    values: dict[str, Any] = {}
    errors = []
    for name, (_kind, default, *_bounds) in FIELDS.items():
        if overrides.get(name) is not None:
            raw = overrides[name]
        elif f"AGENTTUI_{name.upper()}" in env:
            raw = env[f"AGENTTUI_{name.upper()}"]
        else:
            if toml is None:
                toml = _toml()
            raw = toml.get(name, default)
        if raw is None:
            values[name] = None
            continue
        try:
            values[name] = _convert(name, raw)
        except ValueError as exc:
            errors.append(f"setting {name!r} (AGENTTUI_{name.upper()} or {config_file()}): {exc}")
    if errors:
        raise SettingsError("; ".join(errors))
    return ClientSettings(**values)
