"""Deployment packages (R-21, R-22, R-18): a finished test → a zip that deploys its agent.

`build_package(test, out_dir, base_image=...)` renders the Jinja2 templates in the top-level
`templates/package/` folder (StrictUndefined: a missing value is an error, never an empty
string) and writes `agenttui-<id>-<slug>.zip` holding one top folder with:

    agent.py             the tested code, unchanged (except secrets, see below)
    agenttui_harness.py  the harness the test ran (entry-point discovery is shared)
    entrypoint.py        what the container runs: query in → response on stdout
    requirements.txt     the tested requirements (+ the provider's client if agent.py imports it)
    Dockerfile           ARG BASE_IMAGE (the test's base), non-root, deps before code
    .dockerignore  .env.example  docker-compose.yml  README.md  certs/README.md
    cdk/                 app.py, agent_stack.py, cdk.json, requirements.txt (ECS Fargate)

Secrets (R-18): values of the provider's secret options, of any option whose name looks
secret, of the same variables in this process's environment, `extra_secrets`, and
well-known credential shapes (AWS key ids, `sk-` keys) are scrubbed from every file; the
result records which files needed it. `.env.example` only ever holds placeholders.

Rendering is pure (no Docker, no network) and takes a few milliseconds once the templates
are compiled; the compiled environment is cached per process.
"""

from __future__ import annotations

import ast
import io
import json
import os
import re
import time
import traceback
import zipfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from agenttui.core.domain import TERMINAL, Status, TestRequest
from agenttui.harness import RUNNER_FILENAME, runner_source
from agenttui.core.providers import PROVIDERS, EnvVar, Provider, container_env, provider_for
from agenttui.core.redact import Redactor
from agenttui.core.resources import resource_dir
from agenttui.engine.store import TestRecord

# Pinned pair, tested together: the registry's aws-cdk 3.x CLI refuses the cloud assembly
# (schema 55) that aws-cdk-lib 2.275 writes; aws-cdk 2.1148.1 reads it.
AWS_CDK_LIB_VERSION = "2.275.0"
CONSTRUCTS_SPEC = ">=10.0.0,<11.0.0"
AWS_CDK_CLI_VERSION = "2.1148.1"

AGENT_FILENAME = "agent.py"
ENTRYPOINT_FILENAME = "entrypoint.py"
CUSTOM_DOCKERFILE = "Dockerfile.tested"  # the test's own Dockerfile, kept for reference
PACKAGEABLE = frozenset(s.value for s in (*TERMINAL, Status.ARCHIVED))
# Credentials the ECS task role supplies on AWS: never passed to the deployed task.
AWS_CREDENTIAL_VARS = frozenset({"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"})
# Variables the package's own entry point reads (documented, not required).
ENTRYPOINT_VARS = ("AGENT_QUERY", "AGENT_TIMEOUT_S", "AGENT_ENTRYPOINT")
# A hard-coded AWS secret key next to its name (the bare 40-character shape alone would
# also match ordinary hashes and identifiers).
_AWS_SECRET_ASSIGNMENT = re.compile(
    r"(?i)(aws_?secret_?access_?key[\"']?\s*[:=]\s*[\"']?)([A-Za-z0-9/+=]{40})(?![A-Za-z0-9/+=])"
)
MIN_FILE_SCRUB_LEN = 8  # shorter secret values are scrubbed from the test's free text only
_SECRET_NAME = re.compile(r"KEY|SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL|PRIVATE", re.IGNORECASE)
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

# (template under templates/package/, path inside the package), in zip order.
TEMPLATES: tuple[tuple[str, str], ...] = (
    ("README.md.j2", "README.md"),
    ("Dockerfile.j2", "Dockerfile"),
    ("dockerignore.j2", ".dockerignore"),
    ("env.example.j2", ".env.example"),
    ("docker-compose.yml.j2", "docker-compose.yml"),
    ("requirements.txt.j2", "requirements.txt"),
    ("entrypoint.py.j2", ENTRYPOINT_FILENAME),
    ("certs/README.md.j2", "certs/README.md"),
    ("cdk/app.py.j2", "cdk/app.py"),
    ("cdk/agent_stack.py.j2", "cdk/agent_stack.py"),
    ("cdk/cdk.json.j2", "cdk/cdk.json"),
    ("cdk/requirements.txt.j2", "cdk/requirements.txt"),
)
_EXECUTABLE = frozenset({ENTRYPOINT_FILENAME, "cdk/app.py"})


class PackageError(Exception):
    """A package could not be generated (a template error names the template and line)."""


@dataclass(frozen=True)
class PackageResult:
    path: Path  # the zip
    size: int  # bytes
    files: list[str]  # paths inside the zip, below its top folder
    elapsed: float  # seconds spent generating
    top_folder: str = ""
    image_name: str = ""  # what README/compose call the built image
    warnings: list[str] = field(default_factory=list)  # e.g. a secret scrubbed from agent.py
    # With the AWS backend: the zip's S3 key and a presigned URL valid 24 hours.
    url: str | None = None
    url_expires_at: float | None = None
    s3_key: str | None = None


# ---------------------------------------------------------------------------- templates
def templates_dir() -> Path:
    return resource_dir("templates") / "package"


def _yaml_str(value: Any) -> str:
    """A double-quoted YAML scalar (JSON strings are valid YAML)."""
    return json.dumps(str(value), ensure_ascii=False)


def _compose_str(value: Any) -> str:
    """A YAML scalar for docker-compose, with `$` escaped against compose interpolation."""
    return _yaml_str(str(value).replace("$", "$$"))


def _shell_quote(value: Any) -> str:
    text = str(value)
    if text and re.fullmatch(r"[A-Za-z0-9_./:@%+=,-]+", text):
        return text
    return "'" + text.replace("'", "'\"'\"'") + "'"


def _fence(text: str) -> str:
    """A Markdown code fence longer than any backtick run in `text`."""
    longest = max((len(m) for m in re.findall(r"`+", text or "")), default=0)
    return "`" * max(3, longest + 1)


@lru_cache(maxsize=4)
def _environment(folder: str) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(folder),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
        auto_reload=False,
    )
    env.filters.update(
        yaml_str=_yaml_str,
        compose_str=_compose_str,
        shell_quote=_shell_quote,
        pyrepr=repr,
        tojson_pretty=lambda v: json.dumps(v, indent=2, ensure_ascii=False),
        fence=_fence,
    )
    return env


def render_template(name: str, context: Mapping[str, Any], folder: Path | None = None) -> str:
    """Render one template; any failure is a PackageError naming the template and line."""
    folder = folder or templates_dir()
    shown = f"templates/package/{name}"
    try:
        template = _environment(str(folder)).get_template(name)
        return template.render(**context)
    except jinja2.TemplateSyntaxError as exc:
        raise PackageError(f"{shown}, line {exc.lineno}: {exc.message}") from exc
    except jinja2.TemplateNotFound as exc:
        raise PackageError(f"{shown}: template not found in {folder}") from exc
    except Exception as exc:
        line = _template_line(exc, folder / name)
        where = f", line {line}" if line else ""
        raise PackageError(f"{shown}{where}: {type(exc).__name__}: {exc}") from exc


def _template_line(exc: BaseException, path: Path) -> int | None:
    """Jinja rewrites tracebacks so template frames carry the template's file and line."""
    target = os.path.normpath(str(path))
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename and os.path.normpath(frame.filename) == target:
            line = frame.lineno
    return line


# ---------------------------------------------------------------------------- secrets
def secret_values(request: TestRequest, extra: Iterable[str] = (), *, environ: Mapping[str, str] | None = None) -> list[str]:
    """Every value this package must not contain."""
    provider = provider_for(request.provider)
    values = set(extra)
    for key, value in request.provider.options.items():
        if key in provider.secret_names or _SECRET_NAME.search(key):
            values.add(value)
    environ = os.environ if environ is None else environ
    for known in PROVIDERS.values():
        for name in known.secret_names:
            if environ.get(name):
                values.add(environ[name])
    return sorted(v for v in values if v and v.strip())


# ---------------------------------------------------------------------------- analysis
def slugify(text: str, max_len: int = 32) -> str:
    words = re.findall(r"[a-z0-9]+", text.lower())
    slug = ""
    for word in words:
        candidate = f"{slug}-{word}" if slug else word
        if len(candidate) > max_len:
            break
        slug = candidate
    return slug or (words[0][:max_len] if words else "agent")


def _module_docstring(code: str) -> str | None:
    try:
        doc = ast.get_docstring(ast.parse(code))
    except SyntaxError:
        return None
    if not doc:
        return None
    return doc.strip().split("\n\n", 1)[0].replace("\n", " ").strip() or None


def _imported_modules(tree: ast.AST) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module.split(".")[0])
    return found


def env_vars_read(code: str) -> list[str]:
    """Names the code reads from the environment with a literal name: os.environ[...],
    os.environ.get(...), os.getenv(...), `... in os.environ` (imported aliases too)."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return []

    def is_environ(node: ast.AST) -> bool:
        return (isinstance(node, ast.Attribute) and node.attr == "environ") or (
            isinstance(node, ast.Name) and node.id == "environ"
        )

    def literal(node: ast.AST | None) -> str | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        return None

    names: list[str] = []
    for node in ast.walk(tree):
        name = None
        if isinstance(node, ast.Subscript) and is_environ(node.value):
            name = literal(node.slice)
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr in ("get", "setdefault", "pop") and is_environ(func.value):
                name = literal(node.args[0])
            elif (isinstance(func, ast.Attribute) and func.attr == "getenv") or (
                isinstance(func, ast.Name) and func.id == "getenv"
            ):
                name = literal(node.args[0])
        elif isinstance(node, ast.Compare) and len(node.ops) == 1 and isinstance(node.ops[0], (ast.In, ast.NotIn)):
            if is_environ(node.comparators[0]):
                name = literal(node.left)
        if name and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) and name not in names:
            names.append(name)
    return names


def _known_versions(test: TestRecord, versions: Mapping[str, str] | None) -> dict[str, str]:
    found: dict[str, str] = {}
    for source in (test.metrics.get("packages"), (test.result or {}).get("packages"), versions):
        if isinstance(source, Mapping):
            found.update({canonicalize_name(str(k)): str(v) for k, v in source.items() if v})
    return found


def requirement_lines(
    request: TestRequest, provider: Provider, versions: Mapping[str, str]
) -> tuple[list[str], list[dict[str, str]]]:
    """(tested lines, pinned where a version is known; provider packages to add)."""
    lines: list[str] = []
    listed: set[str] = set()
    for raw in request.requirements.splitlines():
        line = raw.rstrip()
        body = line.split(" #", 1)[0].strip()
        if not body or body.startswith("#"):
            lines.append(line)
            continue
        try:
            req = Requirement(body)
        except InvalidRequirement:
            lines.append(line)
            continue
        name = canonicalize_name(req.name)
        listed.add(name)
        if not req.specifier and not req.url and name in versions:
            pinned = f"{req.name}{'[' + ','.join(sorted(req.extras)) + ']' if req.extras else ''}=={versions[name]}"
            if req.marker:
                pinned += f"; {req.marker}"
            line = f"{pinned}  # version the test ran with"
        lines.append(line)
    while lines and not lines[-1].strip():
        lines.pop()
    added: list[dict[str, str]] = []
    try:
        imported = {canonicalize_name(m) for m in _imported_modules(ast.parse(request.agent_code))}
    except SyntaxError:
        imported = set()
    for package in provider.python_packages:
        name = canonicalize_name(package)
        if name in imported and name not in listed:
            spec = f"{package}=={versions[name]}" if name in versions else package
            added.append({"line": spec, "why": f"agent.py imports {package} ({provider.title} client)"})
    return lines, added


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


def _as_datetime(now: datetime | float | None) -> datetime:
    if now is None:
        return datetime.now(timezone.utc)
    if isinstance(now, (int, float)):
        return datetime.fromtimestamp(now, tz=timezone.utc)
    return now if now.tzinfo else now.replace(tzinfo=timezone.utc)


def _is_local_url(url: str) -> bool:
    return bool(re.search(r"//(localhost|127\.|0\.0\.0\.0|host\.docker\.internal|\[::1\])", url))


# ---------------------------------------------------------------------------- context
def package_context(
    test: TestRecord,
    *,
    base_image: str,
    base_image_id: str | None,
    now: datetime | float | None = None,
    versions: Mapping[str, str] | None = None,
    redact_text: Callable[[str], str] | None = None,
) -> dict[str, Any]:
    """Everything the templates see. `redact_text` cleans the free text a test produced
    (query, response, error, docstring) before it is placed; every file is scrubbed again
    on output."""
    clean = redact_text or (lambda text: text)
    if test.id is None:
        raise PackageError("the test has no id (was it stored?)")
    if test.status not in PACKAGEABLE:
        raise PackageError(
            f"test {test.id} is {test.status}: a package is made from a finished test "
            "(COMPLETED, FAILED, TIMED_OUT, CANCELLED or ARCHIVED)"
        )
    request = test.request
    provider = provider_for(request.provider)
    description = _module_docstring(request.agent_code)
    description = clean(description) if description else None
    query = clean(request.query)
    slug = slugify(description or query)
    stem = f"agenttui-{test.id}-{slug}"
    known = _known_versions(test, versions)
    req_lines, req_added = requirement_lines(request, provider, known)

    tested_env = container_env(request.provider)
    env_vars = [_env_entry(var, tested_env) for var in provider.env]
    provider_names = {v.name for v in provider.env}
    # Variables agent.py reads itself: the test did not set them, so they stay optional
    # (commented out in .env.example, not set on AWS unless the user adds them).
    agent_vars = []
    for name in env_vars_read(request.agent_code):
        if name in provider_names or name in ENTRYPOINT_VARS or name.startswith("AGENTTUI_"):
            continue
        secret = bool(_SECRET_NAME.search(name))
        agent_vars.append(
            dict(
                name=name,
                description="read by agent.py (not set during the test)",
                secret=secret,
                value="",
                example=f"<your-{name.lower().replace('_', '-')}>" if secret else "",
                comment_out=True,
            )
        )
    all_vars = env_vars + agent_vars

    # On AWS: credentials come from the task role; other secrets from Secrets Manager / SSM;
    # the rest are plain environment values kept in cdk.json's context.
    aws_env: dict[str, str] = {}
    aws_secrets: list[str] = []
    for var in env_vars:
        if var["name"] in AWS_CREDENTIAL_VARS:
            continue
        if var["secret"]:
            aws_secrets.append(var["name"])
        else:
            aws_env[var["name"]] = var["value"]
    aws_warnings = []
    if provider.name == "ollama":
        host = aws_env.get("OLLAMA_HOST", "")
        if not host or _is_local_url(host):
            aws_env["OLLAMA_HOST"] = "http://ollama.example.internal:11434"
            aws_warnings.append(
                "OLLAMA_HOST is a placeholder: set the context value environment.OLLAMA_HOST in "
                "cdk/cdk.json to an Ollama server the task can reach"
            )
    cpu, memory = fargate_size(request.limits.cpus, request.limits.memory_mb)
    finished = test.finished_at
    generated = _as_datetime(now)
    response = clean(test.response) if test.response is not None else None
    return dict(
        test_id=test.id,
        stem=stem,
        slug=slug,
        image_name=stem,
        stack_name=stem,
        secret_prefix=f"agenttui/{stem}",
        description=description,
        query=query,
        status=test.status,
        response=response,
        error=clean(test.error) if test.error else test.error,
        failure_kind=test.failure_kind,
        owner=test.owner_name,
        tested_at=_utc(finished or test.running_at or test.created_at),
        generated_at=generated.strftime("%Y-%m-%d %H:%M:%S UTC"),
        metrics=metric_rows(test.metrics),
        provider=dict(
            name=provider.name,
            title=provider.title,
            docs=provider.docs,
            model_id=request.provider.model_id,
            iam_actions=list(provider.iam_actions),
        ),
        env_vars=env_vars,
        agent_vars=agent_vars,
        all_vars=all_vars,
        aws_env=aws_env,
        aws_secrets=aws_secrets,
        aws_warnings=aws_warnings,
        bedrock_arns=bedrock_model_arns(request.provider.model_id) if provider.name == "bedrock" else [],
        requirements=req_lines,
        requirements_added=req_added,
        has_requirements=any(
            line.split(" #", 1)[0].strip() and not line.strip().startswith("#") for line in req_lines
        )
        or bool(req_added),
        base_image=base_image,
        base_image_id=base_image_id,
        test_image=test.image,
        custom_dockerfile=bool(request.dockerfile.strip()),
        custom_dockerfile_text=request.dockerfile if request.dockerfile.strip() else "",
        limits=dict(cpus=request.limits.cpus, memory_mb=request.limits.memory_mb, pids=request.limits.pids),
        fargate=dict(cpu=cpu, memory=memory),
        timeout_s=request.timeout_s,
        harness_file=RUNNER_FILENAME,
        entrypoint_file=ENTRYPOINT_FILENAME,
        agent_file=AGENT_FILENAME,
        original_agent_filename=request.agent_filename,
        cdk=dict(lib=AWS_CDK_LIB_VERSION, constructs=CONSTRUCTS_SPEC, cli=AWS_CDK_CLI_VERSION),
        local_ollama=provider.name == "ollama",
    )


def _env_entry(var: EnvVar, tested_env: Mapping[str, str]) -> dict[str, Any]:
    if var.secret:
        value = ""  # never the tested value
    elif var.name in tested_env:
        value = tested_env[var.name]  # what the test's container had
    else:
        value = var.example
    return dict(
        name=var.name,
        description=var.description,
        secret=var.secret,
        value=value,
        example=var.example,
        # An empty secret line would set the variable to "" (e.g. a bogus session token).
        comment_out=var.secret and not var.example,
    )


# ---------------------------------------------------------------------------- build
def render_files(context: Mapping[str, Any], agent_code: str) -> dict[str, str]:
    """Package path → text, before scrubbing."""
    files: dict[str, str] = {AGENT_FILENAME: agent_code, RUNNER_FILENAME: runner_source()}
    if context.get("custom_dockerfile_text"):
        files[CUSTOM_DOCKERFILE] = context["custom_dockerfile_text"]
    folder = templates_dir()
    for template, target in TEMPLATES:
        files[target] = render_template(template, context, folder)
    return files


def build_package(
    test: TestRecord,
    out_dir: Path,
    *,
    base_image: str,
    base_image_id: str | None = None,
    now: datetime | float | None = None,
    extra_secrets: Iterable[str] = (),
    versions: Mapping[str, str] | None = None,
) -> PackageResult:
    """Write the deployment package of `test` into `out_dir` and describe it.

    base_image: the image the test ran on (the Dockerfile's default BASE_IMAGE);
    base_image_id: its id/digest, recorded in the README (the caller asks the engine);
    now: generation time (fixed in tests); extra_secrets: more values to scrub (e.g. AWS
    credentials resolved at run time); versions: {distribution: version} known from the test
    environment, used to pin unpinned requirements.
    """
    started = time.perf_counter()
    request = test.request
    secrets = secret_values(request, extra_secrets)
    # Every secret is removed from the text the test produced; the final pass over whole
    # files skips values too short to tell from ordinary words (a dummy key such as
    # "ollama" or "EMPTY" must not mangle the Dockerfile).
    context = package_context(
        test, base_image=base_image, base_image_id=base_image_id, now=now, versions=versions,
        redact_text=Redactor(secrets),
    )
    files = render_files(context, request.agent_code)

    redact = Redactor(v for v in secrets if len(v) >= MIN_FILE_SCRUB_LEN)
    warnings: list[str] = []
    for name, text in files.items():
        clean = _AWS_SECRET_ASSIGNMENT.sub(lambda m: m.group(1) + "[redacted]", redact(text))
        if clean != text:
            files[name] = clean
            warnings.append(f"{name}: secret values were replaced by [redacted] placeholders")
    short = sorted(
        k for k, v in request.provider.options.items() if v in secrets and len(v) < MIN_FILE_SCRUB_LEN
    )
    if short:
        warnings.append(
            f"{', '.join(short)}: values under {MIN_FILE_SCRUB_LEN} characters look like placeholders; "
            "they were removed from the query, response and error only"
        )

    generated = _as_datetime(now)
    stamp = generated.timetuple()[:6]
    if stamp[0] < 1980:  # zip's epoch
        stamp = (1980, 1, 1, 0, 0, 0)
    top = context["stem"]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in _ordered(files):
            info = zipfile.ZipInfo(f"{top}/{name}", date_time=stamp)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = ((0o755 if name in _EXECUTABLE else 0o644) | 0o100000) << 16
            archive.writestr(info, files[name].encode("utf-8"))
    data = buffer.getvalue()

    out_dir = Path(out_dir).expanduser()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{top}.zip"
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    partial.write_bytes(data)
    os.replace(partial, path)
    return PackageResult(
        path=path,
        size=len(data),
        files=_ordered(files),
        elapsed=time.perf_counter() - started,
        top_folder=top,
        image_name=context["image_name"],
        warnings=warnings,
    )


async def lookup_image_id(image: str, *, timeout: float = 5.0) -> str | None:
    """The engine's id of `image` (sha256:…, plus its registry digest when it has one), for
    the README; None when the engine or the image is unavailable. Never raises."""
    import asyncio

    try:
        import aiodocker

        async with aiodocker.Docker() as docker:
            info = await asyncio.wait_for(docker.images.inspect(image), timeout)
    except Exception:
        return None
    image_id = info.get("Id")
    digests = info.get("RepoDigests") or []
    if image_id and digests:
        return f"{image_id} ({digests[0]})"
    return image_id or None


def _ordered(files: Mapping[str, str]) -> list[str]:
    return sorted(files, key=lambda n: (n.count("/"), n))


__all__ = [
    "AWS_CDK_CLI_VERSION",
    "AWS_CDK_LIB_VERSION",
    "PackageError",
    "PackageResult",
    "build_package",
    "lookup_image_id",
    "package_context",
    "render_template",
    "secret_values",
]
