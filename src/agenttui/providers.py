"""Model providers as data: the environment each gives the container, and which values are secret.

Variable names are each ecosystem's standard ones (R-17), so agents written for the official
clients work unchanged in the container and in the deployment package.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from agenttui.domain import ProviderConfig


@dataclass(frozen=True)
class EnvVar:
    name: str
    description: str
    secret: bool = False
    default: str | None = None  # used when the request's options do not set it
    example: str = ""  # placeholder for .env.example


@dataclass(frozen=True)
class Provider:
    name: str
    title: str
    env: tuple[EnvVar, ...]
    docs: str = ""
    python_packages: tuple[str, ...] = field(default_factory=tuple)
    # IAM actions a deployed agent's role needs to call the provider (deployment packages).
    iam_actions: tuple[str, ...] = field(default_factory=tuple)

    @property
    def secret_names(self) -> frozenset[str]:
        return frozenset(v.name for v in self.env if v.secret)


MODEL_ID = EnvVar("MODEL_ID", "model the agent should use")

PROVIDERS: dict[str, Provider] = {
    "ollama": Provider(
        name="ollama",
        title="Ollama",
        env=(
            MODEL_ID,
            EnvVar(
                "OLLAMA_HOST",
                "Ollama server URL",
                default="http://host.docker.internal:11434",
                example="http://host.docker.internal:11434",
            ),
        ),
        docs="Ollama serves models on the host; the container reaches it at OLLAMA_HOST.",
        python_packages=("ollama",),
    ),
    "bedrock": Provider(
        name="bedrock",
        title="AWS Bedrock",
        env=(
            MODEL_ID,
            EnvVar("AWS_REGION", "AWS region of Bedrock", default="us-east-1", example="us-east-1"),
            EnvVar("AWS_DEFAULT_REGION", "AWS region (older SDKs)", default="us-east-1", example="us-east-1"),
            EnvVar("AWS_ACCESS_KEY_ID", "AWS access key id", secret=True, example="<your-access-key-id>"),
            EnvVar("AWS_SECRET_ACCESS_KEY", "AWS secret access key", secret=True, example="<your-secret-key>"),
            EnvVar("AWS_SESSION_TOKEN", "AWS session token (temporary credentials)", secret=True, example=""),
        ),
        docs="Bedrock is called with the AWS SDK; credentials come from the standard AWS variables.",
        python_packages=("boto3",),
        iam_actions=("bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"),
    ),
    "openai": Provider(
        name="openai",
        title="OpenAI-compatible endpoint",
        env=(
            MODEL_ID,
            EnvVar("OPENAI_BASE_URL", "base URL of the endpoint", example="https://api.example.com/v1"),
            EnvVar("OPENAI_API_KEY", "API key", secret=True, example="<your-api-key>"),
        ),
        docs="Any endpoint speaking the OpenAI API; the official client reads these variables.",
        python_packages=("openai",),
    ),
}


def provider_for(config: ProviderConfig) -> Provider:
    return PROVIDERS[config.name]


def container_env(config: ProviderConfig) -> dict[str, str]:
    """The provider's variables for the container: options override defaults; MODEL_ID is the
    request's model id. Variables with neither are left out."""
    provider = provider_for(config)
    env: dict[str, str] = {}
    for var in provider.env:
        if var.name == "MODEL_ID":
            env[var.name] = config.model_id
        elif var.name in config.options:
            env[var.name] = config.options[var.name]
        elif var.default is not None:
            env[var.name] = var.default
    # Older AWS SDKs read only AWS_DEFAULT_REGION: it follows AWS_REGION unless set itself.
    if "AWS_REGION" in config.options and "AWS_DEFAULT_REGION" not in config.options and "AWS_DEFAULT_REGION" in env:
        env["AWS_DEFAULT_REGION"] = config.options["AWS_REGION"]
    return env
