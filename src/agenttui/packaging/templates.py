"""The package's Jinja2 templates (top-level `templates/package/`): which file each renders, the
filters they use, and rendering with errors that name the template and line. StrictUndefined: a
missing value is an error, never an empty string. The compiled environment is cached per process."""

from __future__ import annotations

import json
import os
import re
import traceback
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2

from agenttui.core.resources import resource_dir
from agenttui.packaging.result import PackageError

AGENT_FILENAME = "agent.py"
ENTRYPOINT_FILENAME = "entrypoint.py"
CUSTOM_DOCKERFILE = "Dockerfile.tested"  # the test's own Dockerfile, kept for reference

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
EXECUTABLE = frozenset({ENTRYPOINT_FILENAME, "cdk/app.py"})


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
