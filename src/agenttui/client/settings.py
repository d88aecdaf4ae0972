"""The few settings a socket client needs, read without pydantic.

The fields are CLIENT_SETTINGS of agenttui.core.settings_schema, the definition Settings is
built from too: same names, types, defaults, bounds, environment variables and config-file keys,
read in the same order (flags > AGENTTUI_* > config.toml > defaults). Importing pydantic-settings
would cost a headless command ~200 ms. The server validates all its settings when it starts; a
personal server that refuses to start for a bad setting is reported by the client that started
it (agenttui.client.remote).
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from pathlib import Path
from collections.abc import Iterable
from typing import Any, Literal

from agenttui.core.errors import SettingsError
from agenttui.core.settings_schema import (
    CLIENT_SETTINGS,
    ENV_PREFIX,
    SETTINGS,
    Setting,
    describe_problem,
    read_config_file,
    socket_path_or_personal,
)

# As pydantic reads a boolean from text.
_TRUE = {"1", "on", "t", "true", "y", "yes"}
_FALSE = {"0", "off", "f", "false", "n", "no"}


class _ClientSettingsPaths:
    socket_path: Path | None

    @property
    def resolved_socket_path(self) -> Path:
        return socket_path_or_personal(self.socket_path)


ClientSettings = dataclasses.make_dataclass(
    "ClientSettings",
    [(name, SETTINGS[name].type) for name in CLIENT_SETTINGS],
    bases=(_ClientSettingsPaths,),
    namespace={"__module__": __name__, "__doc__": "The values of CLIENT_SETTINGS."},
    frozen=True,
)


def _without_none(kind: Any) -> Any:
    """`X | None` -> X."""
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        rest = [arg for arg in typing.get_args(kind) if arg is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return kind


def _number(kind: type, raw: Any) -> Any:
    article = "an integer" if kind is int else "a number"
    if isinstance(raw, bool):
        raise ValueError(f"must be {article}")
    try:
        value = kind(raw.strip() if isinstance(raw, str) else raw)
        if kind is int and isinstance(raw, float) and raw != value:
            raise ValueError
    except (TypeError, ValueError):
        raise ValueError(f"must be {article}, got {raw!r}") from None
    return value


def _convert(setting: Setting, raw: Any) -> Any:
    kind = _without_none(setting.type)
    if kind is bool:
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
        raise ValueError("must be a boolean (true or false)")
    if typing.get_origin(kind) is Literal:
        choices = typing.get_args(kind)
        if raw not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}, got {raw!r}")
        return raw
    if kind is Path:
        if not isinstance(raw, (str, os.PathLike)):
            raise ValueError("must be a path")
        return Path(raw) if str(raw) else None  # empty: not set
    if kind is str:
        if not isinstance(raw, str):
            raise ValueError("must be text")
        return raw
    if kind not in (int, float):
        raise TypeError(f"the client cannot read setting {setting.name!r} of type {kind}")
    value = _number(kind, raw)
    if setting.gt is not None and not value > setting.gt:
        raise ValueError(f"must be greater than {setting.gt}")
    if setting.ge is not None and not value >= setting.ge:
        raise ValueError(f"must be at least {setting.ge}")
    if setting.le is not None and not value <= setting.le:
        raise ValueError(f"must be at most {setting.le}")
    return value


def _raw_values(names: Iterable[str], overrides: dict[str, Any]) -> dict[str, Any]:
    """Each setting's value as given: flags (`overrides`, None = not given) > AGENTTUI_* (any
    case) > config.toml > defaults."""
    env = {key.upper(): value for key, value in os.environ.items() if key.upper().startswith(ENV_PREFIX)}
    config: dict[str, Any] | None = None
    raws: dict[str, Any] = {}
    for name in names:
        setting = SETTINGS[name]
        if overrides.get(name) is not None:
            raws[name] = overrides[name]
        elif setting.env_var in env:
            raws[name] = env[setting.env_var]
        else:
            if config is None:
                config = read_config_file()
            raws[name] = config.get(name, setting.default)
    return raws


def load_client_settings(**overrides: Any) -> ClientSettings:
    """Flags (`overrides`, None = not given) > AGENTTUI_* (any case) > config.toml > defaults."""
    values: dict[str, Any] = {}
    errors = []
    for name, raw in _raw_values(CLIENT_SETTINGS, overrides).items():
        try:
            values[name] = None if raw is None else _convert(SETTINGS[name], raw)
        except ValueError as exc:
            errors.append(describe_problem(name, str(exc)))
    if errors:
        raise SettingsError("; ".join(errors))
    return ClientSettings(**values)


# Settings that choose the server rather than set it up, or that only the client uses.
_NOT_THE_SERVERS = frozenset({"socket_path", "in_process", "package_dir", "aws_session_duration_s"})


def _readable(setting: Setting) -> bool:
    kind = _without_none(setting.type)
    return kind in (bool, int, float, str, Path) or typing.get_origin(kind) is Literal


def differing_settings(server_digests: dict[str, str]) -> list[str]:
    """The settings whose value a personal server started now would read (it reads the same
    sources as this process: AGENTTUI_* and config.toml) other than the running server's, told
    by their digests (agenttui.core.wire.Health.settings). Settings of a kind this reader does
    not know (lists, tables) and bad values (a server refuses them when it starts) are left out."""
    from agenttui.core.wire import settings_digest

    names = [name for name, setting in SETTINGS.items()
             if name in server_digests and name not in _NOT_THE_SERVERS and _readable(setting)]
    differing = []
    for name, raw in _raw_values(names, {}).items():
        try:
            value = None if raw is None else _convert(SETTINGS[name], raw)
        except ValueError:
            continue
        if settings_digest(value) != server_digests[name]:
            differing.append(name)
    return differing
