"""A suite's Python scorers (`type = "scorer"`, `value = "check.py:grade"`): the file read and
checked when the suite is (so a missing file or function queues nothing), and the verdict the
harness reported from the test's own sandbox turned into an assertion's reason. The scorer itself
never runs here nor in the server: agenttui.harness.runner.run_scorer calls it in the container,
after the agent's result is out, and the orchestrator keeps its verdicts in the test's metrics
("scores"). docs/suites.md."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

DEFAULT_THRESHOLD = 0.5


def split_reference(value: Any) -> tuple[str, str]:
    """("check.py", "grade") from "check.py:grade"; ValueError says what to write."""
    if not isinstance(value, str) or value.count(":") != 1:
        raise ValueError(f"must be FILE.py:FUNCTION (e.g. \"check.py:grade\"); it is {value!r}")
    path, function = (part.strip() for part in value.split(":"))
    if not path.endswith(".py") or not function.isidentifier():
        raise ValueError(f"must be FILE.py:FUNCTION (e.g. \"check.py:grade\"); it is {value!r}")
    return path, function


def _top_level_names(tree: ast.Module) -> list[str]:
    names: list[str] = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.append(node.name)
        elif isinstance(node, ast.Assign):
            names.extend(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)) and isinstance(node.target, ast.Name):
            names.append(node.target.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.extend((a.asname or a.name).split(".")[0] for a in node.names)
    return names


def load_scorer(base: Path, value: Any) -> dict[str, Any]:
    """The scorer `value` names, relative to the suite file's folder `base`, as the request's
    `scorers` entry (name, filename, source, function). ValueError names the file and the fix."""
    relative, function = split_reference(value)
    path = (base / relative).resolve()
    try:
        source = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(f"no such file: {path} (the scorer's path is relative to the suite file)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        tree = ast.parse(source, filename=str(path))
    except SyntaxError as exc:
        raise ValueError(f"{path.name} is not valid Python: line {exc.lineno}: {exc.msg}") from None
    names = _top_level_names(tree)
    if function not in names:
        defined = ", ".join(n for n in names if not n.startswith("_")) or "nothing"
        raise ValueError(f"{path.name} has no function {function} (it defines: {defined})")
    return {"name": value.strip(), "filename": path.name, "source": source, "function": function}


def parse_spec(spec: dict[str, Any]) -> None:
    """The assertion's keys: `value` (FILE.py:FUNCTION) and `threshold` (a number)."""
    split_reference(spec.get("value"))
    spec["value"] = spec["value"].strip()
    threshold = spec.setdefault("threshold", DEFAULT_THRESHOLD)
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
        raise ValueError(f"threshold: give the lowest passing score (a number); it is {threshold!r}")


def check(spec: dict[str, Any], scores: list[dict[str, Any]] | None, status: str) -> str | None:
    """None when the scorer passed; else the reason, naming the scorer."""
    name = spec["value"]
    verdict = next((s for s in scores or [] if s.get("name") == name), None)
    if verdict is None:
        if status == "COMPLETED" or status == "FAILED":
            return f"scorer {name}: no verdict was reported (the test's harness did not run it)"
        return f"scorer {name}: no verdict (the test ended {status.lower()} before its scorer ran)"
    if verdict.get("error"):
        error = str(verdict["error"])
        return f"scorer {name} {error}" if error.startswith("raised ") else f"scorer {name}: {error}"
    threshold = spec["threshold"]
    passed, score, because = _decide(verdict, threshold)
    if passed:
        return None
    if verdict.get("passed") is None and score is not None:
        return f"scorer {name}: score {score:.4g} < threshold {threshold:g}{because}"
    return f"scorer {name}: failed{because}" + (f" (score {score:.4g})" if score is not None and because else "")


def _decide(verdict: dict[str, Any], threshold: float) -> tuple[bool, float | None, str]:
    """An explicit pass/fail decides, else the score against the threshold; and ": reason" or ""."""
    passed, score, reason = verdict.get("passed"), verdict.get("score"), verdict.get("reason")
    if passed is None:
        passed = score is not None and score >= threshold
    return bool(passed), score, f": {reason}" if reason else ""


# ---------------------------------------------------------------- model-graded rubrics
RUBRIC_SHOWN_CHARS = 60
JUDGE_KEYS = {"provider", "model"}
JUDGE_PROVIDERS = ("ollama", "openai")  # the chat APIs the harness's judge speaks


def parse_rubric_spec(spec: dict[str, Any]) -> None:
    """The assertion's keys: `value` (the rubric) and `threshold` (for a judge that scores)."""
    from agenttui.core.domain import MAX_RUBRIC_CHARS

    rubric = spec.get("value")
    if not isinstance(rubric, str) or not rubric.strip():
        raise ValueError("value: give the rubric the judge grades the response against (text)")
    if len(rubric) > MAX_RUBRIC_CHARS:
        raise ValueError(f"value: must be at most {MAX_RUBRIC_CHARS} characters; it has {len(rubric)}")
    threshold = spec.setdefault("threshold", DEFAULT_THRESHOLD)
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
        raise ValueError(f"threshold: give the lowest passing score (a number); it is {threshold!r}")


def parse_judge(table: Any) -> tuple[dict[str, str] | None, list[str]]:
    """The suite's `[judge]` table → ({provider?, model}, problems)."""
    from agenttui.core.providers import KNOWN_PROVIDERS

    if not isinstance(table, dict):
        return None, ["judge: write it as a table: [judge] with model = \"...\" (and provider = \"...\")"]
    problems = [f"judge {key}: not a judge key agenttui knows (it takes model, provider)"
                for key in sorted(set(table) - JUDGE_KEYS)]
    judge: dict[str, str] = {}
    model = table.get("model")
    if not isinstance(model, str) or not model.strip():
        problems.append("judge model: give the judge's model (e.g. model = \"gpt-4o-mini\")")
    else:
        judge["model"] = model.strip()
    if "provider" in table:
        provider = table["provider"]
        name = provider.strip().lower() if isinstance(provider, str) else ""
        if name not in KNOWN_PROVIDERS:
            problems.append(f"judge provider: must be one of {', '.join(KNOWN_PROVIDERS)}; it is {provider!r}")
        elif name not in JUDGE_PROVIDERS:
            problems.append(f"judge provider: a judge on {name} is not supported yet (use {' or '.join(JUDGE_PROVIDERS)})")
        else:
            judge["provider"] = name
    return (judge if not problems else None), problems


def rubrics_for(judge: dict[str, str] | None, rubrics: list[tuple[int, str]], request: dict[str, Any],
                where: str, problems: list[str]) -> list[dict[str, str]]:
    """The request's `rubrics` for a case's rubric assertions ((expect number, rubric)); the
    problems (no judge, another provider than the case's, no way out) named by case and field."""
    if not rubrics:
        return []
    if judge is None:
        problems.extend(f"{where}expect[{number}] rubric: no judge: add a [judge] table at the top of the suite "
                        "(model = \"...\", and provider = \"...\" if not the case's)" for number, _ in rubrics)
        return []
    case_provider = str((request.get("provider") or {}).get("name") or "ollama").strip().lower()
    provider = judge.get("provider", case_provider)
    if provider != case_provider:
        problems.append(f"{where}provider: the judge's provider ({provider}) must be the case's ({case_provider}): "
                        "the judge reaches its model through the case's own provider endpoint")
        return []
    if provider not in JUDGE_PROVIDERS:
        problems.append(f"{where}provider: a judge on {provider} is not supported yet "
                        f"(use {' or '.join(JUDGE_PROVIDERS)})")
        return []
    if str(request.get("egress") or "").strip().lower() == "none":
        problems.append(f"{where}egress: a rubric's judge reaches its model from the sandbox: use provider-only "
                        "or full (it is none)")
        return []
    texts = list(dict.fromkeys(text for _, text in rubrics))
    return [{"rubric": text, "provider": provider, "model": judge["model"]} for text in texts]


def check_rubric(spec: dict[str, Any], scores: list[dict[str, Any]] | None, status: str) -> str | None:
    """None when the judge passed the response; else the reason, naming the rubric and the judge."""
    rubric = spec["value"]
    name = repr(rubric if len(rubric) <= RUBRIC_SHOWN_CHARS else rubric[:RUBRIC_SHOWN_CHARS] + "…")
    verdict = next((s for s in scores or [] if s.get("kind") == "rubric" and s.get("rubric") == rubric), None)
    if verdict is None:
        if status in ("COMPLETED", "FAILED"):
            return f"rubric {name}: no verdict was reported (the test's harness did not ask the judge)"
        return f"rubric {name}: no verdict (the test ended {status.lower()} before its judge ran)"
    judge = verdict.get("judge") or "the judge"
    if verdict.get("error"):
        return f"rubric {name}: {verdict['error']} (judge {judge})"
    threshold = spec["threshold"]
    passed, score, because = _decide(verdict, threshold)
    if passed:
        return None
    if verdict.get("passed") is None and score is not None:
        return f"rubric {name}: the judge ({judge}) scored {score:.4g} < threshold {threshold:g}{because}"
    return f"rubric {name}: the judge ({judge}) said FAIL{because}"
