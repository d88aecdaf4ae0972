"""What the package's CDK app deploys on AWS: the tool versions, the Fargate size covering the
test's limits, and the IAM resources of a Bedrock model."""

from __future__ import annotations

from typing import Any

# Pinned pair, tested together: the registry's aws-cdk 3.x CLI refuses the cloud assembly
# (schema 55) that aws-cdk-lib 2.275 writes; aws-cdk 2.1148.1 reads it.
AWS_CDK_LIB_VERSION = "2.275.0"
CONSTRUCTS_SPEC = ">=10.0.0,<11.0.0"
AWS_CDK_CLI_VERSION = "2.1148.1"

# Credentials the ECS task role supplies on AWS: never passed to the deployed task.
AWS_CREDENTIAL_VARS = frozenset({"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"})
# Bedrock cross-region inference profiles prefix the model id with a geography.
_PROFILE_PREFIXES = ("us.", "eu.", "apac.", "us-gov.", "global.", "jp.", "au.", "ca.")
# Fargate's valid (CPU units, memory MiB range, step) combinations.
_FARGATE_SIZES = (
    (256, 512, 2048, None),  # 512, 1024, 2048
    (512, 1024, 4096, 1024),
    (1024, 2048, 8192, 1024),
    (2048, 4096, 16384, 1024),
    (4096, 8192, 30720, 1024),
    (8192, 16384, 61440, 4096),
    (16384, 32768, 122880, 8192),
)


def fargate_size(cpus: float, memory_mb: int) -> tuple[int, int]:
    """The smallest valid Fargate (CPU units, memory MiB) covering the test's limits."""
    want_cpu = max(256, int(round(cpus * 1024)))
    for cpu, low, high, step in _FARGATE_SIZES:
        if cpu < want_cpu or memory_mb > high:
            continue
        if step is None:
            options = [512, 1024, 2048]
        else:
            options = list(range(low, high + 1, step))
        return cpu, next(m for m in options if m >= memory_mb)
    return _FARGATE_SIZES[-1][0], _FARGATE_SIZES[-1][2]


def fargate_largest() -> tuple[float, int]:
    """The most CPUs and memory (MiB) one Fargate task can have."""
    cpu, _low, high, _step = _FARGATE_SIZES[-1]
    return cpu / 1024, high


def bedrock_model_arns(model_id: str) -> list[dict[str, Any]]:
    """IAM resources for a Bedrock model id: the foundation model (any region) and, for a
    cross-region inference profile (`us.…`), the profile in this account. Each is
    {"account": whether the ARN holds the account id, "resource": the part after it} — or
    {"arn": ...} when the model id already is an ARN."""
    if model_id.startswith("arn:"):
        return [{"arn": model_id}]
    base = model_id
    arns: list[dict[str, Any]] = []
    if model_id.startswith(_PROFILE_PREFIXES):
        base = model_id.split(".", 1)[1]
        arns.append({"account": True, "resource": "inference-profile/" + model_id})
    arns.insert(0, {"account": False, "resource": "foundation-model/" + base})
    return arns
