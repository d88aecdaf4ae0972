"""Settings: command-line flags > AGENTTUI_* environment > config.toml > defaults.

The settings themselves (names, types, defaults, bounds, descriptions) are defined once, in
agenttui.core.settings_schema; Settings makes them pydantic fields and adds the checks and
derived paths only the engine needs. The headless client reads its few settings from the same
definition without pydantic: agenttui.client.settings.

Paths follow XDG through platformdirs (agenttui.core.paths), so setting XDG_CONFIG_HOME /
XDG_DATA_HOME / XDG_STATE_HOME / XDG_RUNTIME_DIR isolates a whole run (the test suite relies
on it).
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, get_origin

from pydantic import Field, ValidationError, create_model, field_validator
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

# Re-exported from the light modules the headless client uses.
from agenttui.core.errors import SettingsError  # noqa: F401
from agenttui.core.paths import (  # noqa: F401
    APP_NAME,
    config_dir,
    config_file,
    data_dir,
    runtime_dir,
    server_log_file,
    state_dir,
)
from agenttui.core.settings_schema import (
    ENV_PREFIX,
    SETTINGS,
    Setting,
    describe_problem,
    read_config_file,
    socket_path_or_personal,
)


def _pydantic_field(setting: Setting) -> tuple[Any, Any]:
    """The pydantic field of one setting of the schema."""
    annotation = setting.type
    if get_origin(annotation) is list:  # comma-separated or JSON, parsed by Settings._id_list
        annotation = Annotated[annotation, NoDecode]
    bounds = {
        key: value
        for key, value in (("gt", setting.gt), ("ge", setting.ge), ("le", setting.le), ("pattern", setting.pattern))
        if value is not None
    }
    if setting.default_factory is not None:
        return annotation, Field(default_factory=setting.default_factory, description=setting.description, **bounds)
    return annotation, Field(default=setting.default, description=setting.description, **bounds)


_LIST_SETTINGS = tuple(name for name, setting in SETTINGS.items() if get_origin(setting.type) is list)
_SchemaFields = create_model(
    "SettingsFields",
    __base__=BaseSettings,
    __module__=__name__,
    **{name: _pydantic_field(setting) for name, setting in SETTINGS.items()},
)


class _ConfigFile(PydanticBaseSettingsSource):
    """config.toml, read by the same function as the socket client's settings."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ gives the whole file

    def __call__(self) -> dict[str, Any]:
        return read_config_file()


class Settings(_SchemaFields):
    """Every tunable of agenttui: the fields of agenttui.core.settings_schema.SettingsSchema,
    checked by pydantic. docs/configuration.md documents each field."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", validate_default=True)

    @field_validator(*_LIST_SETTINGS, mode="before")
    @classmethod
    def _id_list(cls, value: Any) -> Any:
        """Accept `a,b` as well as `["a", "b"]` (environment variables and TOML alike)."""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                import json

                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("extra_ca_bundle")
    @classmethod
    def _bundle_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not Path(value).is_file():
            raise ValueError(f"file {value} does not exist (a PEM CA bundle is expected)")
        return value

    @field_validator("ollama_url")
    @classmethod
    def _ollama_url(cls, value: str) -> str:
        from agenttui.core.providers import check_url

        problem = check_url(value)
        if problem:
            raise ValueError(problem)
        return value.strip()

    @property
    def resolved_secrets_key_file(self) -> Path:
        return self.secrets_key_file or state_dir() / "secrets.key"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            env_settings,
            _ConfigFile(settings_cls),
        )

    @cached_property
    def resolved_db_url(self) -> str:
        if self.db_url:
            return self.db_url
        return f"sqlite+aiosqlite:///{data_dir() / 'agenttui.db'}"

    @property
    def resolved_socket_path(self) -> Path:
        return socket_path_or_personal(self.socket_path)

    @property
    def socket_mode_bits(self) -> int:
        return int(self.socket_mode, 8)

    @property
    def resolved_package_dir(self) -> Path:
        return self.package_dir or data_dir() / "packages"

    @property
    def staging_dir(self) -> Path:
        """Where per-test agent bundles are staged for bind-mounting into containers."""
        return data_dir() / "staging"


def load_settings(**overrides: Any) -> Settings:
    """Load settings, turning pydantic's errors into one readable message."""
    clean = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**clean)
    except ValidationError as exc:
        problems = (describe_problem(".".join(str(p) for p in err["loc"]), err["msg"]) for err in exc.errors())
        raise SettingsError("; ".join(problems)) from None
    except SettingsError:  # config.toml unreadable: the message names it
        raise
    except Exception as exc:  # a source pydantic-settings cannot decode (AGENTTUI_EXTRA_LABELS not JSON)
        raise SettingsError(f"cannot read settings from {config_file()}: {exc}") from None
