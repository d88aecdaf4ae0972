"""Everything the package templates see, typed: a PackageContext made of a few groups, each
built by a small helper from the finished test. `template_vars()` gives the templates their
names (each group's fields, plus `provider`)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from typing import Any

from agenttui.core.domain import Limits, TestRequest
from agenttui.core.providers import (
    DEFAULT_OLLAMA_URL,
    HOST_ALIAS,
    SECRET_NAME,
    EnvVar,
    Provider,
    ProviderConfig,
    container_env,
    deployed_env,
    provider_for,
)
from agenttui.harness import RUNNER_FILENAME
from agenttui.packaging.analysis import (
    env_vars_read,
    installed_pins,
    known_versions,
    module_docstring,
    requirement_lines,
    slugify,
)
from agenttui.packaging.aws import (
    AWS_CDK_CLI_VERSION,
    AWS_CDK_LIB_VERSION,
    AWS_CREDENTIAL_VARS,
    CONSTRUCTS_SPEC,
    bedrock_model_arns,
    fargate_size,
)
from agenttui.packaging.result import PackageError
from agenttui.packaging.source import PACKAGEABLE, FinishedTest
from agenttui.packaging.templates import AGENT_FILENAME, ENTRYPOINT_FILENAME

# Variables the package's own entry point reads (documented, not required).
ENTRYPOINT_VARS = ("AGENT_QUERY", "AGENT_TIMEOUT_S", "AGENT_ENTRYPOINT")
OLLAMA_PLACEHOLDER = "http://ollama.example.internal:11434"


@dataclass(frozen=True)
class ProviderInfo:
    name: str
    title: str
    docs: str
    model_id: str
    iam_actions: list[str]


@dataclass(frozen=True)
class PackageVar:
    """An environment variable as .env.example, the README and the CDK app present it."""

    name: str
    description: str
    secret: bool
    value: str
    example: str
    comment_out: bool  # left commented out in .env.example


@dataclass(frozen=True)
class Naming:
    test_id: int
    stem: str  # agenttui-<id>-<slug>: the zip, its top folder, the image and the stack
    slug: str
    image_name: str
    stack_name: str
    secret_prefix: str


@dataclass(frozen=True)
class Outcome:
    """What the test was and produced, its free text already cleaned of secrets."""

    description: str | None
    query: str
    status: str
    response: str | None
    error: str | None
    failure_kind: str | None
    owner: str
    tested_at: str | None
    generated_at: str
    metrics: list[tuple[str, str]]


@dataclass(frozen=True)
class Variables:
    env_vars: list[PackageVar]  # the provider's
    agent_vars: list[PackageVar]  # read by agent.py, not set during the test
    all_vars: list[PackageVar]


@dataclass(frozen=True)
class FargateSize:
    cpu: int
    memory: int


@dataclass(frozen=True)
class CdkVersions:
    lib: str
    constructs: str
    cli: str


CDK_VERSIONS = CdkVersions(lib=AWS_CDK_LIB_VERSION, constructs=CONSTRUCTS_SPEC, cli=AWS_CDK_CLI_VERSION)


@dataclass(frozen=True)
class AwsDeployment:
    """On AWS: credentials come from the task role; other secrets from Secrets Manager / SSM;
    the rest are plain environment values kept in cdk.json's context."""

    aws_env: dict[str, str]
    aws_secrets: list[str]
    aws_warnings: list[str]
    bedrock_arns: list[dict[str, Any]]
    fargate: FargateSize
    cdk: CdkVersions


@dataclass(frozen=True)
class BuildFiles:
    """How the image is built and run: requirements, base image, limits, file names."""

    requirements: list[str]
    requirements_added: list[dict[str, str]]
    requirements_installed: list[str]  # the tested image's other packages, pinned
    has_requirements: bool
    base_image: str
    base_image_id: str | None
    test_image: str | None
    custom_dockerfile: bool
    custom_dockerfile_text: str
    limits: Limits
    timeout_s: int
    harness_file: str
    entrypoint_file: str
    agent_file: str
    original_agent_filename: str
    # The object the test called (submit --entrypoint): entrypoint.py calls the same one.
    agent_entrypoint: str | None
    local_ollama: bool  # the model is the host's Ollama
    # Some endpoint is on the host: the container reaches it as host.docker.internal
    # (compose's extra_hosts, `docker run --add-host`).
    host_endpoints: bool


@dataclass(frozen=True)
class PackageContext:
    naming: Naming
    outcome: Outcome
    provider: ProviderInfo
    variables: Variables
    aws: AwsDeployment
    build: BuildFiles

    def template_vars(self) -> dict[str, Any]:
        """The names the templates use: each group's fields, and `provider`."""
        values: dict[str, Any] = {"provider": self.provider}
        for group in (self.naming, self.outcome, self.variables, self.aws, self.build):
            values.update({f.name: getattr(group, f.name) for f in fields(group)})
        return values


# ---------------------------------------------------------------------------- formatting
def _fmt_seconds(value: Any) -> str:
    seconds = float(value)
    if seconds == 0 or seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 0.001:
        return f"{seconds * 1000:.0f} ms"
    return "< 1 ms"


def _fmt_bytes(value: Any) -> str:
    return f"{float(value) / 1048576:.1f} MB"


_METRIC_LABELS: dict[str, tuple[str, Any]] = {
    "wall_s": ("Wall time", _fmt_seconds),
    "build_s": ("Image build", _fmt_seconds),
    "image_built": ("Image built for this test", lambda v: "yes" if v else "no (reused)"),
    "queue_wait_s": ("Queue wait", _fmt_seconds),
    "cpu_s": ("CPU time", _fmt_seconds),
    "peak_memory_bytes": ("Peak memory", _fmt_bytes),
    "exit_code": ("Exit code", str),
    "oom_killed": ("Killed for memory (OOM)", lambda v: "yes" if v else "no"),
    "agent_load_s": ("Agent import time", _fmt_seconds),
    "agent_run_s": ("Agent call time", _fmt_seconds),
}


def metric_rows(metrics: Mapping[str, Any]) -> list[tuple[str, str]]:
    rows = []
    for key in [*_METRIC_LABELS, *sorted(k for k in metrics if k not in _METRIC_LABELS)]:
        if key not in metrics or metrics[key] is None or isinstance(metrics[key], (dict, list)):
            continue
        label, fmt = _METRIC_LABELS.get(key, (key, str))
        try:
            rows.append((label, fmt(metrics[key])))
        except (TypeError, ValueError):
            rows.append((label, str(metrics[key])))
    return rows


def _utc(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def as_datetime(now: datetime | float | None) -> datetime:
    if now is None:
        return datetime.now(timezone.utc)
    if isinstance(now, (int, float)):
        return datetime.fromtimestamp(now, tz=timezone.utc)
    return now if now.tzinfo else now.replace(tzinfo=timezone.utc)


def _is_local_url(url: str) -> bool:
    return bool(re.search(r"//(localhost|127\.|0\.0\.0\.0|host\.docker\.internal|\[::1\])", url))


# ---------------------------------------------------------------------------- groups
def _check_packageable(test: FinishedTest) -> int:
    if test.id is None:
        raise PackageError("the test has no id (was it stored?)")
    if test.status not in PACKAGEABLE:
        raise PackageError(
            f"test {test.id} is {test.status}: a package is made from a finished test "
            "(COMPLETED, FAILED, TIMED_OUT, CANCELLED or ARCHIVED)"
        )
    return test.id


def _naming(test_id: int, slug: str) -> Naming:
    stem = f"agenttui-{test_id}-{slug}"
    return Naming(test_id=test_id, stem=stem, slug=slug, image_name=stem, stack_name=stem,
                  secret_prefix=f"agenttui/{stem}")


def _outcome(test: FinishedTest, clean: Callable[[str], str], now: datetime | float | None) -> Outcome:
    description = module_docstring(test.request.agent_code)
    return Outcome(
        description=clean(description) if description else None,
        query=clean(test.request.query),
        status=test.status,
        response=clean(test.response) if test.response is not None else None,
        error=clean(test.error) if test.error else test.error,
        failure_kind=test.failure_kind,
        owner=test.owner_name,
        tested_at=_utc(test.finished_at or test.running_at or test.created_at),
        generated_at=as_datetime(now).strftime("%Y-%m-%d %H:%M:%S UTC"),
        metrics=metric_rows(test.metrics),
    )


def _provider_info(request: TestRequest, provider: Provider) -> ProviderInfo:
    return ProviderInfo(name=provider.name, title=provider.title, docs=provider.docs,
                        model_id=request.provider.model_id, iam_actions=list(provider.iam_actions))


def _env_entry(var: EnvVar, tested_env: Mapping[str, str]) -> PackageVar:
    if var.secret:
        value = ""  # never the tested value
    elif var.name in tested_env:
        value = tested_env[var.name]  # what the test's container had
    else:
        value = var.example
    # An empty secret line would set the variable to "" (e.g. a bogus session token); an
    # unset optional name (an endpoint the test did not override) would set "" too.
    comment_out = (var.secret and not var.example) or (not var.secret and not value)
    return PackageVar(name=var.name, description=var.description, secret=var.secret, value=value,
                      example=var.example, comment_out=comment_out)


def _agent_var(name: str) -> PackageVar:
    secret = bool(SECRET_NAME.search(name))
    return PackageVar(
        name=name,
        description="read by agent.py (not set during the test)",
        secret=secret,
        value="",
        example=f"<your-{name.lower().replace('_', '-')}>" if secret else "",
        comment_out=True,
    )


def _variables(request: TestRequest, provider: Provider, ollama_url: str) -> Variables:
    tested_env = deployed_env(request.provider, ollama_url=ollama_url)
    env_vars = [_env_entry(var, tested_env) for var in provider.env]
    provider_names = {v.name for v in provider.env}
    # Variables agent.py reads itself: the test did not set them, so they stay optional
    # (commented out in .env.example, not set on AWS unless the user adds them).
    agent_vars = [
        _agent_var(name)
        for name in env_vars_read(request.agent_code)
        if not (name in provider_names or name in ENTRYPOINT_VARS or name.startswith("AGENTTUI_"))
    ]
    return Variables(env_vars=env_vars, agent_vars=agent_vars, all_vars=env_vars + agent_vars)


def _aws_deployment(request: TestRequest, provider: Provider, env_vars: list[PackageVar]) -> AwsDeployment:
    aws_env: dict[str, str] = {}
    aws_secrets: list[str] = []
    for var in env_vars:
        if var.name in AWS_CREDENTIAL_VARS or var.comment_out and not var.secret:
            continue
        if var.secret:
            aws_secrets.append(var.name)
        else:
            aws_env[var.name] = var.value
    aws_warnings = []
    if provider.name == "ollama":
        host = aws_env.get("OLLAMA_HOST", "")
        if not host or _is_local_url(host):
            placeholder = container_env(ProviderConfig(name="ollama", options={"OLLAMA_HOST": OLLAMA_PLACEHOLDER}))
            # Every library's name for the server follows the placeholder (OLLAMA_BASE_URL: /v1).
            aws_env.update({k: v for k, v in placeholder.items() if k.startswith("OLLAMA_")})
            others = ", ".join(sorted(k for k in aws_env if k.startswith("OLLAMA_") and k != "OLLAMA_HOST"))
            aws_warnings.append(
                f"OLLAMA_HOST is a placeholder, and so are {others}: set these context values (environment.* "
                "in cdk/cdk.json) to an Ollama server the task can reach (OLLAMA_BASE_URL ends in /v1)"
            )
    # An endpoint of the machine the test ran on means nothing to a task on AWS.
    on_test_host = sorted(k for k, v in aws_env.items() if _is_local_url(v) and v != OLLAMA_PLACEHOLDER)
    if on_test_host:
        aws_warnings.append(
            f"{', '.join(on_test_host)} point at the machine the test ran on: set these context values "
            "(environment.* in cdk/cdk.json) to an endpoint the task can reach"
        )
    cpu, memory = fargate_size(request.limits.cpus, request.limits.memory_mb)
    return AwsDeployment(
        aws_env=aws_env,
        aws_secrets=aws_secrets,
        aws_warnings=aws_warnings,
        bedrock_arns=bedrock_model_arns(request.provider.model_id) if provider.name == "bedrock" else [],
        fargate=FargateSize(cpu=cpu, memory=memory),
        cdk=CDK_VERSIONS,
    )


def _build_files(
    test: FinishedTest, provider: Provider, versions: Mapping[str, str], base_image: str, base_image_id: str | None,
    variables: Variables,
) -> BuildFiles:
    request = test.request
    req_lines, req_added = requirement_lines(request, provider, versions)
    values = {var.name: var.value for var in variables.env_vars}

    def on_host(name: str) -> bool:
        return f"//{HOST_ALIAS}" in values.get(name, "")

    has_requirements = any(
        line.split(" #", 1)[0].strip() and not line.strip().startswith("#") for line in req_lines
    ) or bool(req_added)
    return BuildFiles(
        requirements=req_lines,
        requirements_added=req_added,
        requirements_installed=installed_pins(test, request.requirements, also_listed=[a["line"] for a in req_added]),
        has_requirements=has_requirements,
        base_image=base_image,
        base_image_id=base_image_id,
        test_image=test.image,
        custom_dockerfile=bool(request.dockerfile.strip()),
        custom_dockerfile_text=request.dockerfile if request.dockerfile.strip() else "",
        limits=request.limits,
        timeout_s=request.timeout_s,
        harness_file=RUNNER_FILENAME,
        entrypoint_file=ENTRYPOINT_FILENAME,
        agent_file=AGENT_FILENAME,
        original_agent_filename=request.agent_filename,
        agent_entrypoint=request.entrypoint,
        local_ollama=provider.name == "ollama" and on_host("OLLAMA_HOST"),
        host_endpoints=any(on_host(var.name) for var in variables.env_vars),
    )


def package_context(
    test: FinishedTest,
    *,
    base_image: str,
    base_image_id: str | None,
    now: datetime | float | None = None,
    versions: Mapping[str, str] | None = None,
    redact_text: Callable[[str], str] | None = None,
    ollama_url: str = DEFAULT_OLLAMA_URL,
) -> PackageContext:
    """Everything the templates see. `redact_text` cleans the free text a test produced
    (query, response, error, docstring) before it is placed; every file is scrubbed again
    on output. `ollama_url`: where the test's Ollama was when the request named none."""
    test_id = _check_packageable(test)
    clean = redact_text or (lambda text: text)
    request = test.request
    provider = provider_for(request.provider)
    outcome = _outcome(test, clean, now)
    variables = _variables(request, provider, ollama_url)
    return PackageContext(
        naming=_naming(test_id, slugify(outcome.description or outcome.query)),
        outcome=outcome,
        provider=_provider_info(request, provider),
        variables=variables,
        aws=_aws_deployment(request, provider, variables.env_vars),
        build=_build_files(test, provider, known_versions(test, versions), base_image, base_image_id, variables),
    )
