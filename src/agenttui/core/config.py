"""Settings: command-line flags > AGENTTUI_* environment > config.toml > defaults.

Paths follow XDG through platformdirs (agenttui.core.paths), so setting XDG_CONFIG_HOME /
XDG_DATA_HOME / XDG_STATE_HOME / XDG_RUNTIME_DIR isolates a whole run (the test suite relies
on it). The headless client reads its few settings without pydantic: agenttui.client.settings.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    NoDecode,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

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


class Settings(BaseSettings):
    """Every tunable of agenttui. docs/configuration.md documents each field."""

    model_config = SettingsConfigDict(env_prefix="AGENTTUI_", extra="ignore", validate_default=True)

    # Store
    db_url: str = Field(
        default="",
        description="SQLAlchemy async URL of the store; default: SQLite file in the data dir.",
    )
    # Execution
    backend: Literal["docker", "ecs", "noop"] = Field(
        default="docker",
        description="Where tests run (ecs: AWS Fargate, docs/aws.md; noop: runs nothing; for benchmarks).",
    )
    noop_run_s: float = Field(default=0.0, ge=0, description="How long a noop test 'runs'.")
    base_image: str = Field(
        default="python:3.11-slim",
        description="Image agents run on (must have python3 and pip).",
    )
    max_concurrent: int = Field(
        default=10, ge=1, le=1000, description="Global cap on BUILDING+RUNNING tests."
    )
    default_cpus: float = Field(default=1.0, gt=0, le=64)
    default_memory_mb: int = Field(default=2048, ge=64, le=1_048_576)
    default_pids: int = Field(default=1000, ge=16, le=1_000_000)
    default_timeout_s: int = Field(default=600, ge=10, le=600)
    scratch_mb: int = Field(default=256, ge=16, description="Size of the writable /tmp tmpfs.")
    extra_ca_bundle: Path | None = Field(
        default=None,
        description="PEM bundle given to builds and containers (corporate TLS proxies).",
    )
    extra_labels: dict[str, str] = Field(
        default_factory=dict, description="Labels put on every container (cost tracking, ownership)."
    )
    build_timeout_s: int = Field(default=900, ge=30)
    warm_pool: int = Field(
        default=1,
        ge=0,
        le=16,
        description="Containers started ahead and kept waiting per kind of test (docker backend; 0: off).",
    )
    warm_pool_max: int = Field(
        default=10,
        ge=0,
        le=1000,
        description="After a burst of tests of a kind, up to this many wait for the next (at most max_concurrent).",
    )
    warm_pool_idle_s: float = Field(
        default=600.0, ge=10, description="A waiting container is replaced after this long unused."
    )
    stop_grace_s: float = Field(
        default=1.0, ge=0, le=60, description="SIGTERM→SIGKILL grace on cancel/timeout."
    )
    # Orchestration
    lease_s: float = Field(default=15.0, gt=0, description="Owner lease of a running test.")
    heartbeat_s: float = Field(default=3.0, gt=0)
    poll_s: float = Field(default=0.2, gt=0, description="How often the queue/cancels are polled.")
    max_attempts: int = Field(default=3, ge=1, le=10, description="Tries for infrastructure failures.")
    retry_backoff_s: float = Field(default=2.0, ge=0, description="First retry delay; doubles.")
    # Server
    socket_path: Path | None = Field(
        default=None,
        description="Socket of a shared server; unset: the personal server in the runtime dir.",
    )
    socket_mode: str = Field(default="600", pattern=r"^[0-7]{3}$", description="Octal mode of the socket.")
    socket_group: str | None = Field(default=None, description="Group given the socket (shared box).")
    admin_group: str | None = Field(default=None, description="Members may act on every user's tests.")
    server_idle_exit_s: float = Field(default=1800.0, ge=0, description="Personal server exits when idle.")
    in_process: bool = Field(default=False, description="Headless commands run without a server.")
    # Model providers, egress and secrets (docs/providers.md)
    ollama_url: str = Field(
        default="http://127.0.0.1:11434",
        description="Where Ollama listens, as this host reaches it; containers get it through a forwarder.",
    )
    default_egress: Literal["none", "provider-only", "full"] = Field(
        default="provider-only", description="Network policy of a test that does not choose one."
    )
    allow_full_egress: bool = Field(default=True, description="Whether tests may ask for egress 'full'.")
    preflight_timeout_s: float = Field(
        default=10.0, gt=0, le=120, description="How long the provider check from the sandbox may take."
    )
    aws_session_duration_s: int = Field(
        default=3600, ge=900, le=129600, description="Lifetime of the session credentials given to Bedrock tests."
    )
    secrets_key_file: Path | None = Field(
        default=None, description="Key that seals queued tests' secrets (default: state dir/secrets.key)."
    )
    # Packages
    package_dir: Path | None = Field(
        default=None, description="Where deployment packages are written (default: data dir/packages)."
    )
    # Logs
    log_max_bytes: int = Field(default=20_000_000, ge=10_000, description="Stored log cap per test.")
    log_max_line: int = Field(default=16_384, ge=256, description="Longest stored log line.")
    # History
    archive_after_days: float = Field(default=7.0, gt=0)
    # AWS: the ecs backend and S3 packages (docs/aws.md)
    aws_region: str | None = Field(
        default=None, description="AWS region; unset: the AWS configuration's (AWS_REGION, ~/.aws/config)."
    )
    aws_endpoint_url: str | None = Field(
        default=None, description="Endpoint of an AWS emulator (moto, LocalStack); unset: AWS itself."
    )
    ecs_cluster: str = Field(default="agenttui", description="ECS cluster tests run in.")
    ecs_task_definition: str = Field(
        default="agenttui-runner", description="Task definition (family, family:revision or ARN) of the runner."
    )
    ecs_container_name: str = Field(default="agent", description="The runner's container in the task definition.")
    ecs_runner_image: str = Field(
        default="", description="Runner image the task definition is expected to use (checked by doctor)."
    )
    ecs_subnets: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Subnets of the tasks (comma-separated or JSON list)."
    )
    ecs_security_groups: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Security groups of the tasks (comma-separated or JSON list)."
    )
    ecs_assign_public_ip: bool = Field(
        default=False, description="Give tasks a public IP (public subnets without a NAT gateway)."
    )
    ecs_log_group: str = Field(default="/agenttui/runner", description="CloudWatch log group of the runner (awslogs).")
    ecs_log_stream_prefix: str = Field(default="agenttui", description="awslogs-stream-prefix of the runner.")
    ecs_poll_s: float = Field(
        default=1.0, ge=0.05, le=60, description="How often task states and CloudWatch logs are polled."
    )
    s3_bucket: str = Field(default="", description="Bucket for agent bundles and deployment packages.")
    s3_prefix: str = Field(default="agenttui/", description="Key prefix of everything agenttui puts in the bucket.")

    @field_validator("ecs_subnets", "ecs_security_groups", mode="before")
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
            TomlConfigSettingsSource(settings_cls, toml_file=config_file()),
        )

    @cached_property
    def resolved_db_url(self) -> str:
        if self.db_url:
            return self.db_url
        return f"sqlite+aiosqlite:///{data_dir() / 'agenttui.db'}"

    @property
    def resolved_socket_path(self) -> Path:
        return self.socket_path or runtime_dir() / "agenttui.sock"

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
        lines = []
        for err in exc.errors():
            name = ".".join(str(p) for p in err["loc"])
            lines.append(
                f"setting {name!r} (AGENTTUI_{name.upper()} or {config_file()}): {err['msg']}"
            )
        raise SettingsError("; ".join(lines)) from None
    except Exception as exc:  # a malformed TOML file
        raise SettingsError(f"cannot read settings from {config_file()}: {exc}") from None
