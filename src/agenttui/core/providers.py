"""Model providers as data: the environment each gives the container, the endpoints it needs,
which values are secret, what a submit requires, and a test's choice of one (ProviderConfig,
checked against this catalogue). Resolving credentials (I/O: the AWS configuration, STS) is
the engine's: agenttui.engine.credentials.

Variable names are each ecosystem's standard ones (R-17), so agents written for the official
clients work unchanged in the container and in the deployment package. docs/providers.md
describes every provider for users.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from agenttui.core.lifecycle import FieldErrors


@dataclass(frozen=True)
class EnvVar:
    name: str
    description: str
    secret: bool = False
    default: str | None = None  # used when the request's options do not set it
    example: str = ""  # placeholder for .env.example
    # Another library's name for a value of this provider: copied from the first of these
    # variables that has a value (after endpoint URLs are rewritten for the sandbox), unless
    # the request's options set it themselves.
    follows: tuple[str, ...] = ()
    suffix: str = ""  # appended to the followed URL (OpenAI-style clients want .../v1)
    readers: str = ""  # the libraries that read it (docs/providers.md)


@dataclass(frozen=True)
class Endpoint:
    """A network endpoint a provider's client calls, as seen from the host (where agenttui runs).

    `env_var` carries its URL to the container (rewritten to the address the sandbox reaches it
    at); None when the client derives the URL itself (the AWS SDK from the region)."""

    name: str
    url: str
    env_var: str | None
    probe_path: str | None  # HTTP GET answered by a healthy endpoint; None: connect/TLS only
    scheme: str = "http"
    host: str = ""
    port: int = 0

    @classmethod
    def from_url(cls, name: str, url: str, env_var: str | None, probe_path: str | None) -> Endpoint:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        port = parts.port or (443 if scheme == "https" else 80)
        return cls(name, url, env_var, probe_path, scheme, (parts.hostname or "").lower(), port)

    @property
    def is_loopback(self) -> bool:
        return is_loopback_host(self.host)


@dataclass(frozen=True)
class Provider:
    name: str
    title: str
    env: tuple[EnvVar, ...]
    docs: str = ""
    python_packages: tuple[str, ...] = field(default_factory=tuple)
    # IAM actions a deployed agent's role needs to call the provider (deployment packages).
    iam_actions: tuple[str, ...] = field(default_factory=tuple)
    # Options whose value must be an http(s) URL.
    url_options: tuple[str, ...] = field(default_factory=tuple)
    # Options used on the submitting side only, never given to the container (AWS_PROFILE).
    resolve_only: tuple[str, ...] = field(default_factory=tuple)
    # Options a submit cannot go without: name -> how to provide it.
    required: Mapping[str, str] = field(default_factory=dict)

    @property
    def secret_names(self) -> frozenset[str]:
        return frozenset(v.name for v in self.env if v.secret)

    def is_secret(self, option: str) -> bool:
        """Secret: the provider's secret variables and any option whose name looks secret."""
        return option in self.secret_names or bool(SECRET_NAME.search(option))


MODEL_ID = EnvVar("MODEL_ID", "model the agent should use", readers="your agent (agenttui's convention)")
# Settings for libraries that would otherwise download data at import or send telemetry; the
# sandbox has no internet under provider-only egress, and a deployed agent loses nothing by them.
OFFLINE_ENV = (
    EnvVar(
        "LITELLM_LOCAL_MODEL_COST_MAP",
        "litellm: use the price list bundled with it instead of downloading one at import",
        default="True",
        example="True",
        readers="litellm (and what calls it: smolagents' LiteLLMModel, CrewAI)",
    ),
    EnvVar(
        "CREWAI_DISABLE_TELEMETRY",
        "CrewAI: send no anonymous usage telemetry (to telemetry.crewai.com)",
        default="true",
        example="true",
        readers="CrewAI",
    ),
)
# Names that mark a value as secret when a user passes their own option (`--option MY_TOKEN=…`).
SECRET_NAME = re.compile(r"KEY|SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL|PRIVATE", re.IGNORECASE)
OPTION_NAME = re.compile(r"^[A-Z_][A-Z0-9_]{0,127}$")
# Variables the runner, the container or Python rely on: an option may not override them.
RESERVED_PREFIXES = ("AGENTTUI_", "PYTHON")
RESERVED_NAMES = frozenset({"PATH", "HOME", "USER", "HOSTNAME", "LD_PRELOAD", "LD_LIBRARY_PATH",
                            "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "MODEL_ID"})
MAX_OPTION_CHARS = 4096
DEFAULT_OLLAMA_URL = "http://127.0.0.1:11434"
# Inside the sandbox, services of the host are offered under Docker's usual name.
HOST_ALIAS = "host.docker.internal"

PROVIDERS: dict[str, Provider] = {
    "ollama": Provider(
        name="ollama",
        title="Ollama",
        env=(
            MODEL_ID,
            EnvVar(
                "OLLAMA_HOST",
                "Ollama server URL",
                default=f"http://{HOST_ALIAS}:11434",
                example=f"http://{HOST_ALIAS}:11434",
                readers="ollama (Python client), langchain-ollama, Strands' OllamaModel",
            ),
            EnvVar(
                "OLLAMA_BASE_URL",
                "Ollama's OpenAI-compatible URL (the server URL + /v1)",
                example=f"http://{HOST_ALIAS}:11434/v1",
                follows=("OLLAMA_HOST",),
                suffix="/v1",
                readers="pydantic-ai's OllamaProvider",
            ),
            EnvVar(
                "OLLAMA_API_BASE",
                "Ollama server URL (litellm's name)",
                example=f"http://{HOST_ALIAS}:11434",
                follows=("OLLAMA_HOST",),
                readers="litellm (`ollama/` and `ollama_chat/` models), smolagents' LiteLLMModel, CrewAI",
            ),
            *OFFLINE_ENV,
        ),
        docs="Ollama serves models on the host; the container reaches it at OLLAMA_HOST.",
        python_packages=("ollama",),
        url_options=("OLLAMA_HOST",),
    ),
    "bedrock": Provider(
        name="bedrock",
        title="AWS Bedrock",
        env=(
            MODEL_ID,
            EnvVar("AWS_REGION", "AWS region of Bedrock", default="us-east-1", example="us-east-1",
                   readers="boto3/botocore (Strands' BedrockModel, langchain-aws, pydantic-ai), litellm"),
            EnvVar("AWS_DEFAULT_REGION", "AWS region (older SDKs)", example="us-east-1", follows=("AWS_REGION",),
                   readers="boto3/botocore, the AWS CLI"),
            EnvVar("AWS_REGION_NAME", "AWS region (litellm's name)", example="us-east-1", follows=("AWS_REGION",),
                   readers="litellm (`bedrock/` models)"),
            EnvVar("AWS_ACCESS_KEY_ID", "AWS access key id", secret=True, example="<your-access-key-id>",
                   readers="boto3/botocore, litellm"),
            EnvVar("AWS_SECRET_ACCESS_KEY", "AWS secret access key", secret=True, example="<your-secret-key>",
                   readers="boto3/botocore, litellm"),
            EnvVar("AWS_SESSION_TOKEN", "AWS session token (temporary credentials)", secret=True, example="",
                   readers="boto3/botocore, litellm"),
            EnvVar("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", "Bedrock runtime endpoint, when not AWS's own",
                   follows=("AWS_ENDPOINT_URL",), readers="boto3/botocore 1.31+"),
            EnvVar("AWS_BEDROCK_RUNTIME_ENDPOINT", "Bedrock runtime endpoint (litellm's name)",
                   follows=("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", "AWS_ENDPOINT_URL"), readers="litellm"),
            *OFFLINE_ENV,
        ),
        docs="Bedrock is called with the AWS SDK; credentials come from the standard AWS variables.",
        python_packages=("boto3",),
        iam_actions=("bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"),
        url_options=("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_BEDROCK_RUNTIME"),
        resolve_only=("AWS_PROFILE",),
        required={
            "AWS_ACCESS_KEY_ID": "no AWS credentials were found in your AWS configuration (environment, "
            "profile, SSO): run `aws configure` or `aws sso login`, or pick a profile with "
            "--option AWS_PROFILE=name",
            "AWS_SECRET_ACCESS_KEY": "the AWS credentials have no secret access key",
        },
    ),
    "openai": Provider(
        name="openai",
        title="OpenAI-compatible endpoint",
        env=(
            MODEL_ID,
            EnvVar("OPENAI_BASE_URL", "base URL of the endpoint", example="https://api.example.com/v1",
                   readers="openai 1.x (and what wraps it: Strands' OpenAIModel, the OpenAI Agents SDK, "
                   "pydantic-ai, smolagents' OpenAIServerModel, langchain-openai), litellm"),
            EnvVar("OPENAI_API_BASE", "base URL of the endpoint (older clients' name)",
                   example="https://api.example.com/v1", follows=("OPENAI_BASE_URL",),
                   readers="langchain-openai (`openai_api_base`), litellm, openai 0.x"),
            EnvVar("OPENAI_API_KEY", "API key", secret=True, example="<your-api-key>",
                   readers="openai, langchain-openai, pydantic-ai, litellm, Strands, the OpenAI Agents SDK"),
            *OFFLINE_ENV,
        ),
        docs="Any endpoint speaking the OpenAI API; the official client reads these variables.",
        python_packages=("openai",),
        url_options=("OPENAI_BASE_URL",),
        required={
            "OPENAI_BASE_URL": "the endpoint's base URL is missing: pass --option "
            "OPENAI_BASE_URL=https://host/v1 (or set OPENAI_BASE_URL in your environment)",
            "OPENAI_API_KEY": "the API key is missing: set OPENAI_API_KEY in your environment or pass "
            "--option OPENAI_API_KEY=... (local servers accept any value)",
        },
    ),
}


KNOWN_PROVIDERS = tuple(PROVIDERS)


class ProviderConfig(BaseModel):
    """A test's provider: which one, its model, and its options (agenttui.core.domain re-exports it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "ollama"
    model_id: str = Field(default="llama3.2", min_length=1, max_length=200)
    # Settings of the provider, given to the container as environment variables. A client may
    # send secret values here; they are taken out before anything is stored (see `secrets`).
    options: dict[str, str] = Field(default_factory=dict)
    # Names of the secret options of this test; their values are never part of the request that
    # is stored or shown (agenttui.core.secrets keeps them, encrypted, until the test ends).
    secrets: tuple[str, ...] = ()

    @field_validator("name")
    @classmethod
    def _known(cls, value: str) -> str:
        value = value.strip().lower()
        if value not in KNOWN_PROVIDERS:
            raise ValueError(f"unknown provider {value!r}; known: {', '.join(KNOWN_PROVIDERS)}")
        return value

    @model_validator(mode="after")
    def _options(self) -> ProviderConfig:
        errors = config_errors(self)
        if errors:
            raise FieldErrors(errors)
        return self


def provider_for(config: ProviderConfig) -> Provider:
    return PROVIDERS[config.name]


def is_loopback_host(host: str) -> bool:
    host = host.strip("[]").lower()
    if host in ("localhost", "localhost.localdomain") or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# ---------------------------------------------------------------------- validation
def check_url(value: str) -> str | None:
    """Why `value` is not a usable http(s) endpoint URL, or None when it is."""
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError as exc:
        return f"{value!r} is not a valid URL ({exc})"
    if parts.scheme.lower() not in ("http", "https"):
        return f"must be an http:// or https:// URL such as http://127.0.0.1:11434; got {value!r}"
    if not parts.hostname:
        return f"has no host name: {value!r}"
    if port == 0:
        return f"port 0 is not a valid port: {value!r}"
    if parts.username or parts.password:
        return "must not carry credentials in the URL; pass them as their own option"
    if any(c.isspace() for c in value.strip()):
        return f"must not contain spaces: {value!r}"
    return None


def config_errors(config: ProviderConfig) -> dict[str, str]:
    """Field errors of a provider configuration on its own (keys relative to the provider):
    option names, URL syntax. What a submit additionally needs is checked by `submit_errors`."""
    provider = PROVIDERS.get(config.name)
    if provider is None:
        return {}  # the name's own validator reports it
    errors: dict[str, str] = {}
    for key, value in config.options.items():
        where = f"options.{key}"
        if not OPTION_NAME.match(key):
            errors[where] = "option names are environment variable names: A-Z, 0-9 and _ (e.g. OPENAI_BASE_URL)"
        elif key in RESERVED_NAMES or key.startswith(RESERVED_PREFIXES):
            errors[where] = "is set by agenttui itself and cannot be given as an option"
        elif len(value) > MAX_OPTION_CHARS:
            errors[where] = f"must be under {MAX_OPTION_CHARS} characters; it has {len(value)}"
        elif key in provider.url_options and (problem := check_url(value)):
            errors[where] = problem
    for name in config.secrets:
        if not provider.is_secret(name):
            errors[f"secrets.{name}"] = "is not a secret of this provider"
    return errors


def submit_errors(config: ProviderConfig) -> dict[str, str]:
    """What is missing for the provider to be usable (credentials, required URLs); keys are
    relative to the request (`provider.…`). Checked before anything is queued."""
    provider = provider_for(config)
    given = set(config.options) | set(config.secrets)
    errors: dict[str, str] = {}
    for name, how in provider.required.items():
        if name not in given or (name in config.options and not config.options[name].strip()):
            errors.setdefault("provider.credentials" if config.name == "bedrock" else f"provider.options.{name}", how)
    if config.name == "bedrock" and "AWS_REGION" not in config.options:
        errors["provider.options.AWS_REGION"] = (
            "no AWS region: pass --option AWS_REGION=us-east-1 or set a region in your AWS configuration"
        )
    return errors


# ---------------------------------------------------------------------- secrets
def split_secrets(config: ProviderConfig) -> tuple[ProviderConfig, dict[str, str]]:
    """(the config with secret values taken out — their names kept in `secrets` —, the values).
    What is stored and shown is the first; the values travel separately (agenttui.core.secrets)."""
    provider = provider_for(config)
    values = {k: v for k, v in config.options.items() if provider.is_secret(k)}
    if not values:
        return config, {}
    options = {k: v for k, v in config.options.items() if k not in values}
    names = tuple(sorted(set(config.secrets) | set(values)))
    return config.model_copy(update={"options": options, "secrets": names}), values


# ---------------------------------------------------------------------- container environment
def container_env(
    config: ProviderConfig,
    *,
    secrets: Mapping[str, str] | None = None,
    urls: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The provider's variables for the container: options override defaults; MODEL_ID is the
    request's model id; `secrets` adds the secret values; `urls` replaces endpoint URLs with the
    address the sandbox reaches them at. Variables with no value are left out. Other options
    pass through as they are (an agent's own settings), except the resolve-only ones."""
    provider = provider_for(config)
    options = {**config.options, **(secrets or {})}
    env: dict[str, str] = {}
    for var in provider.env:
        if var.name == "MODEL_ID":
            env[var.name] = config.model_id
        elif var.name in options:
            env[var.name] = options[var.name]
        elif var.default is not None:
            env[var.name] = var.default
    for key, value in options.items():
        if key not in env and key not in provider.resolve_only:
            env[key] = value
    env.update(urls or {})
    # Every library's name for a value gets it in the form that library expects.
    for var in provider.env:
        source = next((env[name] for name in var.follows if env.get(name)), None)
        if source is not None and var.name not in options:
            env[var.name] = with_suffix(source, var.suffix)
    return env


def with_host(url: str, host: str) -> str:
    """`url` with its host replaced (port, path and query kept)."""
    parts = urlsplit(url)
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def deployed_env(config: ProviderConfig, *, ollama_url: str = DEFAULT_OLLAMA_URL) -> dict[str, str]:
    """The provider's variables for a deployed container (a package): endpoints on the host's
    loopback become the host's address from a container's point of view (HOST_ALIAS, which
    `--add-host host.docker.internal:host-gateway` provides on Linux), their ports as configured."""
    urls = {
        endpoint.env_var: with_host(endpoint.url, HOST_ALIAS)
        for endpoint in endpoints(config, ollama_url=ollama_url)
        if endpoint.env_var and endpoint.is_loopback
    }
    return container_env(config, urls=urls)


def with_suffix(url: str, suffix: str) -> str:
    """`url` ending in `suffix` (once): http://host:11434 → http://host:11434/v1."""
    if not suffix or url.rstrip("/").endswith(suffix):
        return url
    return url.rstrip("/") + suffix


def endpoints(config: ProviderConfig, *, ollama_url: str = DEFAULT_OLLAMA_URL) -> list[Endpoint]:
    """The endpoints the provider's client calls, as the host reaches them."""
    options = config.options
    if config.name == "ollama":
        return [Endpoint.from_url("ollama", options.get("OLLAMA_HOST") or ollama_url, "OLLAMA_HOST", "/api/tags")]
    if config.name == "openai":
        base = options.get("OPENAI_BASE_URL", "")
        if not base:
            return []
        return [Endpoint.from_url("openai", base, "OPENAI_BASE_URL", urlsplit(base).path.rstrip("/") + "/models")]
    if config.name == "bedrock":
        for var in ("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", "AWS_ENDPOINT_URL"):
            if options.get(var):
                return [Endpoint.from_url("bedrock", options[var], var, None)]
        region = options.get("AWS_REGION") or "us-east-1"
        return [Endpoint.from_url("bedrock", f"https://bedrock-runtime.{region}.amazonaws.com", None, None)]
    return []


# ---------------------------------------------------------------------- preflight messages
def unreachable_message(config: ProviderConfig, endpoint: Endpoint, why: str, sandbox_url: str | None) -> str:
    """An actionable message for an endpoint the sandbox could not reach."""
    target = f"{endpoint.host}:{endpoint.port}"
    via = f"agenttui forwards the container's {sandbox_url} to {target}" if sandbox_url else ""
    if config.name == "ollama":
        return (
            f"Ollama not reachable at {endpoint.url}: {why}; is it running (`ollama serve`)? "
            + (via + "; " if via else "")
            + "set ollama_url (AGENTTUI_OLLAMA_URL) or --option OLLAMA_HOST=http://host:port to change it"
        )
    via = f" ({via})" if via else ""
    if config.name == "openai":
        return (
            f"the OpenAI-compatible endpoint {endpoint.url} is not reachable: {why}{via}; "
            "check that the server runs and OPENAI_BASE_URL (--option OPENAI_BASE_URL=...) is right"
        )
    return (
        f"the Bedrock endpoint {endpoint.url} is not reachable: {why}{via}; check the network and "
        "AWS_REGION / AWS_ENDPOINT_URL_BEDROCK_RUNTIME"
    )


def ollama_model_warning(model_id: str, tags_body: str) -> str | None:
    """A hint when Ollama answers but does not have the model (from its /api/tags answer)."""
    import json

    try:
        models = json.loads(tags_body).get("models") or []
        names = {m.get("name", "") for m in models} | {m.get("model", "") for m in models}
    except (ValueError, AttributeError):
        return None
    wanted = {model_id, f"{model_id}:latest"} if ":" not in model_id else {model_id}
    if names & wanted:
        return None
    listed = ", ".join(sorted(n for n in names if n)[:8]) or "none"
    return f"Ollama does not list the model {model_id!r} (it has: {listed}); run `ollama pull {model_id}`"
