"""Deployment packages (R-21, R-22, R-18): a finished test → a zip that deploys its agent.

`build_package(test, out_dir, base_image=...)` renders the Jinja2 templates in the top-level
`templates/package/` folder and writes `agenttui-<id>-<slug>.zip` holding one top folder with:

    agent.py             the tested code, unchanged (except secrets, see below)
    agenttui_harness.py  the harness the test ran (entry-point discovery is shared)
    entrypoint.py        what the container runs: query in → response on stdout
    requirements.txt     the tested requirements (+ the provider's client if agent.py imports it)
    Dockerfile           ARG BASE_IMAGE (the test's base), non-root, deps before code
    .dockerignore  .env.example  docker-compose.yml  README.md  certs/README.md
    cdk/                 app.py, agent_stack.py, cdk.json, requirements.txt (ECS Fargate)

Secrets are scrubbed from every file (agenttui.packaging.scrub); the result records which
files needed it. `.env.example` only ever holds placeholders.

Rendering is pure (no Docker, no network) and takes a few milliseconds once the templates
are compiled. The modules: source (what packaging reads of a test: a Protocol the engine's
TestRecord meets), analysis (the tested code), aws (the CDK app's sizes and versions),
context (the templates' typed context), templates, scrub, build, images, result.
"""

from __future__ import annotations

from agenttui.packaging.analysis import env_vars_read, requirement_lines, slugify
from agenttui.packaging.aws import (
    AWS_CDK_CLI_VERSION,
    AWS_CDK_LIB_VERSION,
    CONSTRUCTS_SPEC,
    bedrock_model_arns,
    fargate_size,
)
from agenttui.packaging.build import build_package, render_files
from agenttui.packaging.context import PackageContext, metric_rows, package_context
from agenttui.packaging.images import lookup_image_id
from agenttui.packaging.result import PackageError, PackageResult
from agenttui.packaging.scrub import secret_values
from agenttui.packaging.source import FinishedTest
from agenttui.packaging.templates import TEMPLATES, render_template, templates_dir

__all__ = [
    "AWS_CDK_CLI_VERSION",
    "AWS_CDK_LIB_VERSION",
    "CONSTRUCTS_SPEC",
    "TEMPLATES",
    "FinishedTest",
    "PackageContext",
    "PackageError",
    "PackageResult",
    "bedrock_model_arns",
    "build_package",
    "env_vars_read",
    "fargate_size",
    "lookup_image_id",
    "metric_rows",
    "package_context",
    "render_files",
    "render_template",
    "requirement_lines",
    "secret_values",
    "slugify",
    "templates_dir",
]
