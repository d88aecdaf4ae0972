"""What the package learns from the tested code: a name, a description, the environment
variables it reads, and its requirements pinned to the versions the test ran with."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Mapping

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from agenttui.core.domain import TestRequest
from agenttui.core.providers import Provider
from agenttui.packaging.source import FinishedTest


def slugify(text: str, max_len: int = 32) -> str:
    words = re.findall(r"[a-z0-9]+", text.lower())
    slug = ""
    for word in words:
        candidate = f"{slug}-{word}" if slug else word
        if len(candidate) > max_len:
            break
        slug = candidate
    return slug or (words[0][:max_len] if words else "agent")


def module_docstring(code: str) -> str | None:
    """The first paragraph of the module's docstring, on one line."""
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


def _is_environ(node: ast.AST) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr == "environ") or (
        isinstance(node, ast.Name) and node.id == "environ"
    )


def _literal(node: ast.AST | None) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def _environ_name(node: ast.AST) -> str | None:
    """The literal variable name `node` reads from the environment, if it is such a read."""
    if isinstance(node, ast.Subscript) and _is_environ(node.value):
        return _literal(node.slice)
    if isinstance(node, ast.Call) and node.args:
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr in ("get", "setdefault", "pop") and _is_environ(func.value):
            return _literal(node.args[0])
        if (isinstance(func, ast.Attribute) and func.attr == "getenv") or (
            isinstance(func, ast.Name) and func.id == "getenv"
        ):
            return _literal(node.args[0])
    elif isinstance(node, ast.Compare) and len(node.ops) == 1 and isinstance(node.ops[0], (ast.In, ast.NotIn)):
        if _is_environ(node.comparators[0]):
            return _literal(node.left)
    return None


def env_vars_read(code: str) -> list[str]:
    """Names the code reads from the environment with a literal name: os.environ[...],
    os.environ.get(...), os.getenv(...), `... in os.environ` (imported aliases too)."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return []
    names: list[str] = []
    for node in ast.walk(tree):
        name = _environ_name(node)
        if name and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) and name not in names:
            names.append(name)
    return names


def known_versions(test: FinishedTest, versions: Mapping[str, str] | None) -> dict[str, str]:
    """{canonical distribution name: version} the test ran with, as far as anyone recorded."""
    found: dict[str, str] = {}
    # "installed": what the test image's build installed (pip freeze), recorded by the engine.
    for source in (test.metrics.get("installed"), test.metrics.get("packages"), (test.result or {}).get("packages"),
                   versions):
        if isinstance(source, Mapping):
            found.update({canonicalize_name(str(k)): str(v) for k, v in source.items() if v})
    return found


def _pinned_lines(requirements: str, versions: Mapping[str, str]) -> tuple[list[str], set[str]]:
    """(the tested lines, an unpinned requirement pinned where its version is known; the
    canonical names listed)."""
    lines: list[str] = []
    listed: set[str] = set()
    for raw in requirements.splitlines():
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
    return lines, listed


def installed_pins(test: FinishedTest, requirements: str, also_listed: Iterable[str] = ()) -> list[str]:
    """`name==version` of everything the test image's build installed beyond the listed
    requirements (their dependencies), so the package installs what was tested."""
    installed = test.metrics.get("installed")
    if not isinstance(installed, Mapping):
        return []
    _, listed = _pinned_lines("\n".join([requirements, *also_listed]), {})
    return [f"{name}=={version}" for name, version in sorted(installed.items()) if canonicalize_name(name) not in listed]


def requirement_lines(
    request: TestRequest, provider: Provider, versions: Mapping[str, str]
) -> tuple[list[str], list[dict[str, str]]]:
    """(tested lines, pinned where a version is known; provider packages to add)."""
    lines, listed = _pinned_lines(request.requirements, versions)
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
