"""The one definition of agenttui's settings: each setting's name, type, default, bounds and
description (SETTINGS), where it is read from (the environment variable AGENTTUI_<NAME>, the key
<name> of config.toml) and how a bad value is reported.

Two loaders derive from it, with the same source order (flags > AGENTTUI_* > config.toml >
defaults): agenttui.core.config.Settings (pydantic-settings; every setting, checked when the
engine starts) and agenttui.client.settings (the few in CLIENT_SETTINGS, read by a socket client
without pydantic, which would cost a headless command ~200 ms of imports). Plain Python on
purpose: the headless client imports it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Literal, NamedTuple

from agenttui.core.errors import SettingsError
from agenttui.core.paths import config_file, runtime_dir

ENV_PREFIX = "AGENTTUI_"


class Setting(NamedTuple):
    """One setting. `type` is what pydantic checks (Literal: its choices); the bounds apply to
    numbers, the pattern to text."""

    name: str
    type: Any
    default: Any = None
    gt: float | None = None
    ge: float | None = None
    le: float | None = None
    pattern: str | None = None
    description: str | None = None
    default_factory: Callable[[], Any] | None = None

    @property
    def env_var(self) -> str:
        return env_var(self.name)


# Every tunable of agenttui; docs/configuration.md documents each one.
_ALL = (
    # Store
    Setting(
        "db_url", str, "",
        description="SQLAlchemy async URL of the store; default: SQLite file in the data dir.",
    ),
    # Execution
    Setting(
        "backend", Literal["docker", "ecs", "noop"], "docker",
        description="Where tests run (ecs: AWS Fargate, docs/aws.md; noop: runs nothing; for benchmarks).",
    ),
    Setting("noop_run_s", float, 0.0, ge=0, description="How long a noop test 'runs'."),
    Setting("base_image", str, "python:3.11-slim", description="Image agents run on (must have python3 and pip)."),
    Setting("max_concurrent", int, 10, ge=1, le=1000, description="Global cap on BUILDING+RUNNING tests."),
    Setting("default_cpus", float, 1.0, gt=0, le=64),
    Setting("default_memory_mb", int, 2048, ge=64, le=1_048_576),
    Setting("default_pids", int, 1000, ge=16, le=1_000_000),
    Setting("default_timeout_s", int, 600, ge=10, le=600),
    Setting("scratch_mb", int, 256, ge=16, description="Size of the writable /tmp tmpfs."),
    Setting(
        "extra_ca_bundle", Path | None, None,
        description="PEM bundle given to builds and containers (corporate TLS proxies).",
    ),
    Setting(
        "extra_labels", dict[str, str], default_factory=dict,
        description="Labels put on every container (cost tracking, ownership).",
    ),
    Setting("build_timeout_s", int, 900, ge=30),
    Setting(
        "warm_pool", int, 1, ge=0, le=16,
        description="Containers started ahead and kept waiting per kind of test (docker backend; 0: off).",
    ),
    Setting(
        "warm_pool_max", int, 10, ge=0, le=1000,
        description="After a burst of tests of a kind, up to this many wait for the next (at most max_concurrent).",
    ),
    Setting(
        "warm_pool_idle_s", float, 600.0, ge=10,
        description="A waiting container is replaced after this long unused.",
    ),
    Setting("stop_grace_s", float, 1.0, ge=0, le=60, description="SIGTERM→SIGKILL grace on cancel/timeout."),
    # Orchestration
    Setting("lease_s", float, 15.0, gt=0, description="Owner lease of a running test."),
    Setting("heartbeat_s", float, 3.0, gt=0),
    Setting("poll_s", float, 0.2, gt=0, description="How often the queue/cancels are polled."),
    Setting("max_attempts", int, 3, ge=1, le=10, description="Tries for infrastructure failures."),
    Setting("retry_backoff_s", float, 2.0, ge=0, description="First retry delay; doubles."),
    # Server
    Setting(
        "socket_path", Path | None, None,
        description="Socket of a shared server; unset: the personal server in the runtime dir.",
    ),
    Setting("socket_mode", str, "600", pattern=r"^[0-7]{3}$", description="Octal mode of the socket."),
    Setting("socket_group", str | None, None, description="Group given the socket (shared box)."),
    Setting("admin_group", str | None, None, description="Members may act on every user's tests."),
    Setting(
        "share_test_content", bool, False,
        description="Every user sees every test's query, response and error (off: only its owner and admins).",
    ),
    Setting("server_idle_exit_s", float, 1800.0, ge=0, description="Personal server exits when idle."),
    Setting("in_process", bool, False, description="Headless commands run without a server."),
    # Model providers, egress and secrets (docs/providers.md)
    Setting(
        "ollama_url", str, "http://127.0.0.1:11434",
        description="Where Ollama listens, as this host reaches it; containers get it through a forwarder.",
    ),
    Setting(
        "default_egress", Literal["none", "provider-only", "full"], "provider-only",
        description="Network policy of a test that does not choose one.",
    ),
    Setting("allow_full_egress", bool, True, description="Whether tests may ask for egress 'full'."),
    Setting(
        "preflight_timeout_s", float, 10.0, gt=0, le=120,
        description="How long the provider check from the sandbox may take.",
    ),
    Setting(
        "strict_preflight", bool, False,
        description="A test whose model endpoint does not answer fails at once (not retried) instead of "
        "running with a warning (for CI; the flag --strict-preflight sets it per test).",
    ),
    Setting(
        "aws_session_duration_s", int, 3600, ge=900, le=129_600,
        description="Lifetime of the session credentials given to Bedrock tests.",
    ),
    Setting(
        "secrets_key_file", Path | None, None,
        description="Key that seals queued tests' secrets (default: state dir/secrets.key).",
    ),
    # Packages
    Setting(
        "package_dir", Path | None, None,
        description="Where deployment packages are written (default: data dir/packages).",
    ),
    # Logs
    Setting("log_max_bytes", int, 20_000_000, ge=10_000, description="Stored log cap per test."),
    Setting("log_max_line", int, 16_384, ge=256, description="Longest stored log line."),
    # Model calls (the recorder, docs/recorder.md)
    Setting("model_calls_max", int, 1000, ge=1, description="Model calls stored per test."),
    Setting(
        "model_call_text_max", int, 32_768, ge=256, le=65_536,
        description="Longest stored request or response of a model call.",
    ),
    Setting(
        "tls_interception", bool, True,
        description="Read inside HTTPS model calls at the forwarder (a per-server CA the test's container "
        "trusts); off: HTTPS calls are recorded as connection, bytes and timing only.",
    ),
    # Budgets of a test that sets none (docs/recorder.md); unset: no limit
    Setting(
        "default_max_cost_usd", float | None, None, ge=0,
        description="A test's model calls may cost this much (USD) before the next is refused (--max-cost).",
    ),
    Setting(
        "default_max_tokens", int | None, None, ge=0,
        description="A test's model calls may use this many tokens (in + out) before the next is refused (--max-tokens).",
    ),
    Setting(
        "default_max_model_calls", int | None, None, ge=0,
        description="A test may make this many model calls; the next is refused (--max-model-calls).",
    ),
    # Export of traces over OTLP (docs/otlp.md)
    Setting(
        "otlp_endpoint", str, "", pattern=r"^$|^https?://",
        description="OTLP/HTTP (protobuf) traces URL a test's model calls are exported to when it ends, e.g. "
        "http://127.0.0.1:4318/v1/traces; empty: no export.",
    ),
    Setting(
        "otlp_headers", dict[str, str], default_factory=dict,
        description="Headers sent with each export (a collector's API key), never stored with a test.",
    ),
    # History
    Setting("archive_after_days", float, 7.0, gt=0),
    # AWS: the ecs backend and S3 packages (docs/aws.md)
    Setting(
        "aws_region", str | None, None,
        description="AWS region; unset: the AWS configuration's (AWS_REGION, ~/.aws/config).",
    ),
    Setting(
        "aws_endpoint_url", str | None, None,
        description="Endpoint of an AWS emulator (moto, LocalStack); unset: AWS itself.",
    ),
    Setting("ecs_cluster", str, "agenttui", description="ECS cluster tests run in."),
    Setting(
        "ecs_task_definition", str, "agenttui-runner",
        description="Task definition (family, family:revision or ARN) of the runner.",
    ),
    Setting("ecs_container_name", str, "agent", description="The runner's container in the task definition."),
    Setting(
        "ecs_runner_image", str, "",
        description="Runner image the task definition is expected to use (checked by doctor).",
    ),
    Setting(
        "ecs_subnets", list[str], default_factory=list,
        description="Subnets of the tasks (comma-separated or JSON list).",
    ),
    Setting(
        "ecs_security_groups", list[str], default_factory=list,
        description="Security groups of the tasks (comma-separated or JSON list).",
    ),
    Setting(
        "ecs_assign_public_ip", bool, False,
        description="Give tasks a public IP (public subnets without a NAT gateway).",
    ),
    Setting("ecs_log_group", str, "/agenttui/runner", description="CloudWatch log group of the runner (awslogs)."),
    Setting("ecs_log_stream_prefix", str, "agenttui", description="awslogs-stream-prefix of the runner."),
    Setting(
        "ecs_poll_s", float, 1.0, ge=0.05, le=60,
        description="How often task states and CloudWatch logs are polled.",
    ),
    Setting("s3_bucket", str, "", description="Bucket for agent bundles and deployment packages."),
    Setting("s3_prefix", str, "agenttui/", description="Key prefix of everything agenttui puts in the bucket."),
)
SETTINGS: dict[str, Setting] = {setting.name: setting for setting in _ALL}

# What a socket client reads itself; the server checks every setting when it starts.
CLIENT_SETTINGS = (
    "socket_path",
    "in_process",
    "default_cpus",
    "default_memory_mb",
    "default_pids",
    "default_timeout_s",
    "aws_session_duration_s",
    "poll_s",
    "package_dir",  # the client writes the packages it asks for, with its own rights
    # Read by the TUI: its status bar names the backend, its editor the server's default egress.
    "backend",
    "default_egress",
    "strict_preflight",  # the client asks for it per test
)


def env_var(name: str) -> str:
    return f"{ENV_PREFIX}{name.upper()}"


def socket_path_or_personal(socket_path: Path | None) -> Path:
    """The server's socket: the setting, else the personal server's in the runtime dir."""
    return socket_path or runtime_dir() / "agenttui.sock"


def describe_problem(name: str, problem: str) -> str:
    """A bad value in agenttui's words: the setting, where to fix it, what is wrong."""
    return f"setting {name!r} ({env_var(name)} or {config_file()}): {problem}"


def read_config_file() -> dict[str, Any]:
    """config.toml as a table ({} when there is none); a file that cannot be read or parsed is
    a SettingsError naming it."""
    path = config_file()
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise SettingsError(f"cannot read settings from {path}: {exc}") from None
    import tomllib  # only when there is a file

    try:
        return tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SettingsError(f"cannot read settings from {path}: {exc}") from None
