"""agenttui's grading in the container: a suite case's Python scorers and its judge model's rubrics,
run by the runner (agenttui_harness.py, `harness` below) once the agent's result is reported.

Copied beside the runner, so like it this file uses the standard library only, Python
3.9-compatible syntax, and never imports agenttui. The runner hands itself over as `harness`
(its progress lines, its settings from the environment): run as a script, it is `__main__`, and
importing it by name would run it again.
"""

import json
import os
import signal
import traceback
import types


def grade(harness, record, exit_code, query):
    """The verdicts of the case's scorers, then of its rubrics, on the agent's answer."""
    return (run_scorers(harness, record, exit_code) or []) + run_rubrics(harness, record, query)


# A scorer gets this long (it runs inside the test's own timeout, after the agent's answer is out).
SCORER_TIMEOUT_S = float(os.environ.get("AGENTTUI_SCORER_TIMEOUT_S", "60"))


class ScorerTimeout(BaseException):
    """A scorer ran too long (a BaseException: a scorer's `except Exception` cannot swallow it)."""


class BadVerdict(Exception):
    """A scorer returned something that is not a verdict."""


def _scorer_record(harness, record, exit_code):
    """What a scorer is given besides the response: the test as the sandbox knows it. The model
    calls are counted by agenttui's recorder outside the sandbox: None here."""
    durations = [record.get("load_s"), record.get("run_s")]
    return {
        "outcome": "completed" if exit_code == harness.EXIT_OK else "failed",
        "exit_code": exit_code,
        "response": record.get("response"),
        "error": record.get("error"),
        "error_type": record.get("error_type"),
        "duration_s": round(sum(d for d in durations if d is not None), 6),
        "model_calls": None,
    }


def _where_in(exc, filename):
    """' (check.py line 4)': the scorer file's deepest line in the traceback, if any."""
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == filename:
            line = frame.lineno
    return " (%s line %d)" % (filename, line) if line is not None else ""


def _verdict(value):
    """A scorer's answer as {passed, score, reason}; BadVerdict says what it returned instead."""
    if isinstance(value, bool):
        return {"passed": value, "score": None, "reason": None}
    if isinstance(value, (int, float)) and value == value and abs(value) != float("inf"):
        return {"passed": None, "score": float(value), "reason": None}
    if isinstance(value, (tuple, list)) and len(value) == 2 and isinstance(value[0], (bool, int, float)) \
            and isinstance(value[1], str):  # (score, reason) or (passed, reason)
        return dict(_verdict(value[0]), reason=value[1])
    if isinstance(value, dict) and set(value) <= {"score", "reason", "passed"} and value:
        passed, reason = value.get("passed"), value.get("reason")
        if (passed is None or isinstance(passed, bool)) and (reason is None or isinstance(reason, str)):
            if "score" in value:
                verdict = _verdict(value["score"]) if not isinstance(value["score"], bool) else None
                if verdict is not None and verdict["passed"] is None:
                    return dict(verdict, passed=passed, reason=reason)
            elif passed is not None:
                return {"passed": passed, "score": None, "reason": reason}
    shown = repr(value)
    raise BadVerdict("it returned %s; return True/False, a (score, reason) or (passed, reason) "
                     "pair, or a dict {score, reason, passed}" % (shown[:150] + ("..." if len(shown) > 150 else "")))


def run_scorer(harness, scorer, response, test_record):
    """One scorer's verdict: {name, passed, score, reason} or {name, error}. Never raises."""
    name = scorer.get("name") or "scorer"
    filename = scorer.get("filename") or "scorer.py"
    alarm = hasattr(signal, "SIGALRM")
    try:
        if alarm:
            def _too_long(signum, frame):
                raise ScorerTimeout("it took more than %g s" % SCORER_TIMEOUT_S)

            signal.signal(signal.SIGALRM, _too_long)
            signal.setitimer(signal.ITIMER_REAL, SCORER_TIMEOUT_S)
        module = types.ModuleType(os.path.splitext(filename)[0] or "scorer")
        module.__file__ = filename
        exec(compile(scorer["source"], filename, "exec"), module.__dict__)
        function = getattr(module, scorer["function"], None)
        if not callable(function):
            raise NameError("%s defines no function %s" % (filename, scorer["function"]))
        value = function(response, dict(test_record))
        if harness._isawaitable(value):
            import asyncio

            value = asyncio.run(value if isinstance(value, types.CoroutineType) else harness._await(value))
        return dict(_verdict(value), name=name)
    except BaseException as exc:  # a scorer's failure is its assertion's, never the test's
        if isinstance(exc, (ScorerTimeout, BadVerdict)):
            error = str(exc)
        else:
            error = "".join(traceback.format_exception_only(type(exc), exc)).strip().splitlines()[-1]
            error = "raised %s%s" % (error, _where_in(exc, filename))
        return {"name": name, "error": error}
    finally:
        if alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, signal.SIG_DFL)


def run_scorers(harness, record, exit_code):
    """The verdicts of the suite's scorers on this answer (None: the case has none)."""
    if not harness._SCORERS_JSON:
        return None
    try:
        scorers = json.loads(harness._SCORERS_JSON)
    except ValueError as exc:
        return [{"name": "scorers", "error": "the scorers could not be read (%s)" % exc}]
    test_record = _scorer_record(harness, record, exit_code)
    verdicts = []
    for scorer in scorers:
        harness.progress("scoring with %s" % scorer.get("name"))
        verdicts.append(run_scorer(harness, scorer, record.get("response"), test_record))
    return verdicts


# The first words of the judge's system prompt: agenttui's recorder stores a call that opens with
# them as kind "judge" (its own cost, apart from the agent's calls). Must match agenttui.harness.JUDGE_MARK.
JUDGE_MARK = "You are agenttui's judge."
JUDGE_PROMPT = JUDGE_MARK + (
    " You grade an AI agent's answer to a question against a rubric. Reply with PASS or FAIL on the"
    " first line (or, when the rubric asks for a score, SCORE: a number from 0 to 1), then one short"
    " sentence saying why.")
JUDGE_TIMEOUT_S = float(os.environ.get("AGENTTUI_JUDGE_TIMEOUT_S", "120"))
JUDGE_ANSWER_CHARS = 20000  # of the agent's response shown to the judge


def judge_messages(rubric, query, response):
    answer = "(no answer)" if response is None else response
    if len(answer) > JUDGE_ANSWER_CHARS:
        answer = answer[:JUDGE_ANSWER_CHARS] + "\n[... %d more characters]" % (len(answer) - JUDGE_ANSWER_CHARS)
    text = "RUBRIC:\n%s\n\nQUESTION:\n%s\n\nANSWER:\n%s" % (rubric, query, answer)
    return [{"role": "system", "content": JUDGE_PROMPT}, {"role": "user", "content": text}]


def _post_json(url, body, headers):
    import urllib.request

    request = urllib.request.Request(url, data=json.dumps(body).encode("utf-8"),
                                     headers=dict({"Content-Type": "application/json"}, **headers))
    with urllib.request.urlopen(request, timeout=JUDGE_TIMEOUT_S) as answer:
        return json.loads(answer.read().decode("utf-8"))


def ask_judge(harness, provider, model, messages):
    """(the judge's text, tokens in, tokens out) from the provider's chat API."""
    if provider == "ollama":
        host = harness._PROVIDER_ENV.get("OLLAMA_HOST") or "http://127.0.0.1:11434"
        host = host if "://" in host else "http://" + host
        got = _post_json(host.rstrip("/") + "/api/chat", {
            "model": model, "messages": messages, "stream": False, "options": {"temperature": 0}}, {})
        return (got.get("message") or {}).get("content") or "", got.get("prompt_eval_count"), got.get("eval_count")
    if provider == "openai":
        base = (harness._PROVIDER_ENV.get("OPENAI_BASE_URL") or "https://api.openai.com/v1").rstrip("/")
        key = harness._PROVIDER_ENV.get("OPENAI_API_KEY")
        got = _post_json(base + "/chat/completions", {"model": model, "messages": messages, "temperature": 0},
                         {"Authorization": "Bearer " + key} if key else {})
        usage = got.get("usage") or {}
        text = ((got.get("choices") or [{}])[0].get("message") or {}).get("content") or ""
        return text, usage.get("prompt_tokens"), usage.get("completion_tokens")
    raise ValueError("a judge on %s is not supported (ollama or openai)" % provider)


def parse_judgement(text):
    """{passed, score, reason} from the judge's answer; BadVerdict when it holds no verdict."""
    import re

    lines = [line.strip().strip("*#`>_ ").strip() for line in (text or "").strip().splitlines()]
    lines = [line for line in lines if line]
    first = lines[0] if lines else ""
    rest = " ".join(lines[1:2])
    found = re.match(r"(?i)^(?:verdict\s*[:=]\s*)?(PASS|FAIL)(?:ED)?\b[\s:.,*-]*(.*)$", first)
    if found:
        reason = (found.group(2).strip() or rest)[:300] or None
        return {"passed": found.group(1).upper() == "PASS", "score": None, "reason": reason}
    found = re.match(r"(?i)^SCORE\s*[:=]?\s*(\d*\.?\d+)\s*(?:/\s*(\d*\.?\d+))?[\s:.,*-]*(.*)$", first)
    if found:
        score = float(found.group(1)) / (float(found.group(2)) if found.group(2) else 1.0)
        return {"passed": None, "score": round(score, 6), "reason": (found.group(3).strip() or rest)[:300] or None}
    shown = repr(text or "")
    raise BadVerdict("the judge's answer has no PASS, FAIL or SCORE on its first line: %s"
                     % (shown[:200] + ("..." if len(shown) > 200 else "")))


def run_rubric(harness, rubric, query, response):
    """One rubric's verdict: {kind, rubric, judge, passed, score, reason, tokens} or {.., error}."""
    verdict = {"kind": "rubric", "rubric": rubric.get("rubric"),
               "judge": "%s %s" % (rubric.get("provider"), rubric.get("model"))}
    try:
        text, tokens_in, tokens_out = ask_judge(harness, rubric.get("provider"), rubric.get("model"),
                                                judge_messages(rubric.get("rubric"), query, response))
        verdict.update(parse_judgement(text), tokens_in=tokens_in, tokens_out=tokens_out)
    except BadVerdict as exc:
        verdict["error"] = str(exc)
    except Exception as exc:  # the judge's failure is its assertion's, never the test's
        reason = getattr(exc, "reason", None)
        verdict["error"] = "the judge did not answer: %s" % harness.describe(reason if isinstance(reason, Exception) else exc)
    return verdict


def run_rubrics(harness, record, query):
    if not harness._RUBRICS_JSON:
        return []
    try:
        rubrics = json.loads(harness._RUBRICS_JSON)
    except ValueError as exc:
        return [{"kind": "rubric", "rubric": None, "error": "the rubrics could not be read (%s)" % exc}]
    verdicts = []
    for rubric in rubrics:
        harness.progress("asking the judge (%s %s)" % (rubric.get("provider"), rubric.get("model")))
        verdicts.append(run_rubric(harness, rubric, query, record.get("response")))
    return verdicts
