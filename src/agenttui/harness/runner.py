"""agenttui in-container runner: load the agent, call it with the query, report the result.

This file is copied into containers whose Python may be old, so it uses the standard
library only, Python 3.9-compatible syntax, and never imports agenttui.

Environment:
  AGENTTUI_QUERY         the query passed to the agent
  AGENTTUI_AGENT_PATH    the agent's file (default: agent.py next to this runner)
  AGENTTUI_RESULT_NONCE  random token proving the result record comes from this runner
  AGENTTUI_ENTRYPOINT    optional name (or dotted path) of the callable to use
  AGENTTUI_JOB_PIPE, AGENTTUI_JOB_WAIT_S
                         a container started ahead of its test: read the job from the pipe first

  AGENTTUI_SCORERS       a suite case's Python scorers (JSON: name, filename, source, function)
  AGENTTUI_RUBRICS       a suite case's rubrics for a judge model (JSON: rubric, provider, model)

The result is reported as the last line of the original stdout:
  @@agenttui-result <nonce> <json>
With scorers or rubrics, the record is reported again once they have run, with their verdicts in
"scores" (the host keeps the last record): the agent's result is stored before any of them runs.
Exit codes: 0 success, 1 the agent failed (raised, exited), 2 no agent/entry point to call.
"""

import json
import os
import signal
import sys
import threading
import time
import traceback
import types



def _wait_for_job():
    """A container started ahead of its test (agenttui's warm pool) waits here, printing
    nothing, until the host writes the job into a named pipe: {"env": the test's environment},
    secrets included (never written to a file). Runs before anything reads the environment."""
    pipe_path = os.environ.get("AGENTTUI_JOB_PIPE")
    if not pipe_path:
        return
    # No test within this long: the server that started us is gone (it replaces us sooner).
    signal.signal(signal.SIGALRM, lambda signum, frame: os._exit(0))
    signal.alarm(max(1, int(float(os.environ.get("AGENTTUI_JOB_WAIT_S", "600")))))
    job = b""
    while not job:  # the host also opens the pipe without writing, to see us waiting
        with open(pipe_path, "rb") as pipe:  # blocks until the host opens the other end
            job = pipe.read()  # to the end: until the host closes it
    signal.alarm(0)
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    try:
        env = json.loads(job.decode("utf-8"))["env"]
        os.environ.update(env)
    except (ValueError, KeyError, TypeError) as exc:
        # The host stopped half-way (it died): run nothing rather than a test without its settings.
        sys.stderr.write("[agenttui] the job from the host was cut short (%d bytes: %s); nothing ran\n" % (len(job), exc))
        sys.stderr.flush()
        os._exit(2)


_wait_for_job()
# Taken out of the environment before the agent runs: the agent is not handed its grader.
_SCORERS_JSON = os.environ.pop("AGENTTUI_SCORERS", "")
_RUBRICS_JSON = os.environ.pop("AGENTTUI_RUBRICS", "")
# The judge reaches its model as the agent does: read now, before the agent can change them.
_PROVIDER_ENV = {name: os.environ.get(name) for name in ("OLLAMA_HOST", "OPENAI_BASE_URL", "OPENAI_API_KEY")}

RESULT_TAG = "@@agenttui-result"
EXIT_OK = 0
EXIT_AGENT_FAILED = 1
EXIT_NO_ENTRYPOINT = 2
# Conventional "killed by SIGTERM" status, so a stop shows as such.
EXIT_TERMINATED = 128 + signal.SIGTERM
# A response bigger than this is cut: the record must stay one manageable log line.
MAX_RESPONSE_CHARS = int(os.environ.get("AGENTTUI_MAX_RESPONSE_CHARS", "200000"))
# After the record is out, give interpreter shutdown (agent threads, atexit hooks) this
# long before exiting anyway: the test's result is known when the agent returns, so a stray
# non-daemon thread or a slow atexit hook must not delay its end (docs/agents.md).
EXIT_GRACE_S = float(os.environ.get("AGENTTUI_EXIT_GRACE_S", "0.5"))
DEFAULT_NAMES = ("run", "agent", "handler", "main")

# The original stdout, duplicated before the agent can replace sys.stdout or close fd 1.
_result_fd = os.dup(1)


class NoEntryPoint(Exception):
    """The agent module has nothing the runner knows how to call."""


class Terminated(BaseException):
    """SIGTERM arrived (stop/cancel): unwinds the agent so a record still gets out."""


# Small stand-ins for `inspect` (same definitions as CPython's): inspect, and asyncio, cost
# ~100 ms of a 1-CPU container's start-up before the agent's first line; asyncio is imported
# only for an async agent.
def _isclass(value):
    return isinstance(value, type)


def _isroutine(value):
    if isinstance(value, (types.BuiltinFunctionType, types.FunctionType, types.MethodType)):
        return True
    if _isclass(value):
        return False
    kind = type(value)
    return hasattr(kind, "__get__") and not hasattr(kind, "__set__")  # a method descriptor


def _isawaitable(value):
    from collections.abc import Awaitable

    return (
        isinstance(value, types.CoroutineType)
        or (isinstance(value, types.GeneratorType) and bool(value.gi_code.co_flags & 0x100))
        or isinstance(value, Awaitable)
    )


def progress(message):
    try:
        sys.stderr.write("[agenttui] %s\n" % message)
        sys.stderr.flush()
    except Exception:  # the agent may have closed or replaced stderr
        pass


def _on_sigterm(signum, frame):
    raise Terminated("received SIGTERM (the test was stopped)")


def _unbuffer_std_streams():
    # The agent's output must reach the log as it is printed, not at exit.
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(line_buffering=True, write_through=True)
        except Exception:
            pass


def load_agent(path):
    """Import the agent from its file, with its directory on sys.path for local imports."""
    import importlib.util

    path = os.path.abspath(path)
    if not os.path.isfile(path):
        raise NoEntryPoint("agent file %s does not exist" % path)
    agent_dir = os.path.dirname(path)
    if agent_dir not in sys.path:
        sys.path.insert(0, agent_dir)
    module_name = os.path.splitext(os.path.basename(path))[0] or "agent"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise NoEntryPoint("cannot import %s as a Python module" % path)
    module = importlib.util.module_from_spec(spec)
    # Registered before executing so the agent can import itself or pickle its classes.
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def _defines_call(value):
    """True for an instance whose class (not just `type`/`object`) defines __call__."""
    if _isclass(value) or _isroutine(value) or isinstance(value, types.ModuleType):
        return False
    for klass in type(value).__mro__:
        if klass is object:
            return False
        if "__call__" in vars(klass):
            # typing's special forms are callable objects imported at module level.
            return klass.__module__ != "typing"
    return False


# Framework adapters, as data: an object is recognised by its class's (or a base class's)
# top-level module and name, read from type(obj).__mro__ so no framework is ever imported here;
# "call" says how its docs call it with the query, "result" how the final text is read.
ADAPTERS = (
    {"framework": "Strands", "module": "strands", "classes": ("Agent",),
     "call": "call", "result": "str"},
    {"framework": "LangChain/LangGraph", "module": "langgraph",
     "classes": ("CompiledStateGraph", "CompiledGraph", "Pregel"),
     "call": "invoke_messages", "result": "last_message"},
    {"framework": "LangChain", "module": "langchain", "classes": ("AgentExecutor",),
     "call": "invoke_input", "result": "output_key"},
    {"framework": "pydantic-ai", "module": "pydantic_ai", "classes": ("Agent", "AbstractAgent"),
     "call": "run_sync", "result": "output"},
    {"framework": "smolagents", "module": "smolagents", "classes": ("MultiStepAgent",),
     "call": "run", "result": "str"},
    {"framework": "OpenAI Agents SDK", "module": "agents", "classes": ("Agent",),
     "call": "runner_run_sync", "result": "final_output"},
    {"framework": "CrewAI", "module": "crewai", "classes": ("Crew",),
     "call": "kickoff", "result": "raw"},
    {"framework": "LlamaIndex", "module": "llama_index",
     "classes": ("BaseWorkflowAgent", "AgentWorkflow"), "call": "run_user_msg", "result": "str"},
    {"framework": "LlamaIndex", "module": "llama_index", "classes": ("AgentRunner", "BaseAgent"),
     "call": "chat", "result": "response"},
)
def adapter_for(value):
    """The ADAPTERS entry that recognises `value`, or None."""
    if _isclass(value) or isinstance(value, types.ModuleType):
        return None
    for klass in type(value).__mro__:
        top = (getattr(klass, "__module__", None) or "").split(".")[0]
        for adapter in ADAPTERS:
            if top == adapter["module"] and klass.__name__ in adapter["classes"]:
                return adapter
    return None


async def _await_llama_index_run(agent, query):
    # Its workflow agents schedule tasks on the running loop as soon as run() is called.
    return await agent.run(user_msg=query)


def _call_framework(adapter, agent, query):
    how = adapter["call"]
    if how == "call":
        return agent(query)
    if how == "invoke_messages":
        return agent.invoke({"messages": [{"role": "user", "content": query}]})
    if how == "invoke_input":
        return agent.invoke({"input": query})
    if how == "run_sync":
        return agent.run_sync(query)
    if how == "run":
        return agent.run(query)
    if how == "runner_run_sync":
        import importlib

        return importlib.import_module(adapter["module"]).Runner.run_sync(agent, query)
    if how == "kickoff":
        return agent.kickoff(inputs={"query": query})
    if how == "run_user_msg":
        import asyncio

        return asyncio.run(_await_llama_index_run(agent, query))
    return agent.chat(query)


def _content_text(content):
    """A chat message's content as text: a string, or the text parts of a list of blocks."""
    if isinstance(content, list):
        parts = [block.get("text", "") if isinstance(block, dict) else str(block) for block in content]
        return "".join(part for part in parts if isinstance(part, str))
    return content


def _framework_text(adapter, result):
    how = adapter["result"]
    if how == "last_message":
        messages = result.get("messages") if isinstance(result, dict) else None
        if not messages:
            return result
        last = messages[-1]
        return _content_text(last.get("content") if isinstance(last, dict) else getattr(last, "content", last))
    if how == "output_key":
        return result.get("output", result) if isinstance(result, dict) else result
    if how == "output":  # pydantic-ai before 0.1 called it `data`
        return getattr(result, "output", getattr(result, "data", result))
    if how in ("final_output", "raw", "response"):
        return getattr(result, how, result)
    return None if result is None else str(result)


def _adapted(name, value, adapter):
    """(name, callable(query)) calling a framework object the way its docs do."""

    def call_agent(query):
        return _framework_text(adapter, _call_framework(adapter, value, query))

    call_agent.agenttui_call = "%s (%s %s, %s)" % (name, adapter["framework"], type(value).__name__, adapter["call"])
    return name, call_agent


def _usable(name, value):
    """(name, callable) for a framework object or a plain function/callable, else None."""
    adapter = adapter_for(value)
    if adapter is not None:
        return _adapted(name, value, adapter)
    if value is not None and callable(value) and not _isclass(value):
        return name, value
    return None


def _looked_for():
    frameworks = []
    for adapter in ADAPTERS:
        for klass in adapter["classes"]:
            frameworks.append("%s.%s" % (adapter["module"], klass))
    return (
        "a function `run(query)`, an `agent` object, a `handler` or `main` function, a module-level "
        "framework object (%s), or a module-level object with __call__; or name it with --entrypoint "
        "(AGENTTUI_ENTRYPOINT)" % ", ".join(frameworks)
    )


def _explicit_entrypoint(module, explicit):
    target = module
    for part in explicit.split("."):
        target = getattr(target, part, None)
        if target is None:
            break
    found = _usable(explicit, target)
    if found is None:
        raise NoEntryPoint(
            "--entrypoint (AGENTTUI_ENTRYPOINT) is %r, but the agent module has no callable or "
            "framework object of that name; agenttui looks for %s" % (explicit, _looked_for())
        )
    return found


def find_entrypoint(module, explicit=None):
    """Return (name, callable(query)) following the agent contract (R-3) and ADAPTERS."""
    if explicit:
        return _explicit_entrypoint(module, explicit)
    for name in DEFAULT_NAMES:
        found = _usable(name, getattr(module, name, None))
        if found is not None:
            return found
    public = [(name, value) for name, value in vars(module).items() if not name.startswith("_")]
    # A module-level framework object (`graph = builder.compile()`): the last one defined, as
    # the agent that composes the others is built after them.
    frameworks = [(name, value, adapter_for(value)) for name, value in public]
    frameworks = [entry for entry in frameworks if entry[2] is not None]
    if frameworks:
        return _adapted(*frameworks[-1])
    # Last resort: a module-level object with __call__, preferring ones whose class the
    # agent itself defines over callables it imported.
    candidates = [(name, value) for name, value in public if _defines_call(value)]
    own = [c for c in candidates if getattr(type(c[1]), "__module__", None) == module.__name__]
    if own or candidates:
        return (own or candidates)[0]
    raise NoEntryPoint("no entry point found in the agent: agenttui looks for %s" % _looked_for())


async def _collect_async_iterator(iterator):
    chunks = []
    async for chunk in iterator:
        chunks.append(_chunk_text(chunk))
    return "".join(chunks)


async def _await(awaitable):
    return await awaitable


def _chunk_text(chunk):
    if isinstance(chunk, bytes):
        return chunk.decode("utf-8", "replace")
    return chunk if isinstance(chunk, str) else str(chunk)


def to_response(result):
    """Turn whatever the entry point returned into the response text (None stays None)."""
    if _isawaitable(result):
        import asyncio

        coroutine = result if isinstance(result, types.CoroutineType) else _await(result)
        result = asyncio.run(coroutine)
    if hasattr(result, "__aiter__") and hasattr(result, "__anext__"):
        import asyncio

        return asyncio.run(_collect_async_iterator(result))
    if result is None or isinstance(result, str):
        return result
    if isinstance(result, (bytes, bytearray)):
        return bytes(result).decode("utf-8", "replace")
    if isinstance(result, (dict, list, tuple)):
        return json.dumps(result, ensure_ascii=False, default=str)
    if isinstance(result, types.GeneratorType) or (
        hasattr(result, "__next__") and hasattr(result, "__iter__")
    ):
        return "".join(_chunk_text(chunk) for chunk in result)
    return str(result)


def _read_first_int(path):
    try:
        with open(path) as handle:
            return int(handle.read().split()[0])
    except Exception:
        return None


def _read_cpu_stat_usec(path):
    try:
        with open(path) as handle:
            for line in handle:
                key, _, value = line.partition(" ")
                if key == "usage_usec":
                    return int(value)
    except Exception:
        pass
    return None


def cgroup_usage():
    """(peak_memory_bytes, cpu_s) of this container's own cgroup; None when unreadable."""
    root = "/sys/fs/cgroup"
    if os.path.exists(os.path.join(root, "cgroup.controllers")):  # cgroup v2
        peak = _read_first_int(os.path.join(root, "memory.peak"))
        usec = _read_cpu_stat_usec(os.path.join(root, "cpu.stat"))
        cpu_s = usec / 1e6 if usec is not None else None
    else:  # cgroup v1
        peak = _read_first_int(os.path.join(root, "memory", "memory.max_usage_in_bytes"))
        nsec = _read_first_int(os.path.join(root, "cpuacct", "cpuacct.usage"))
        cpu_s = nsec / 1e9 if nsec is not None else None
    if cpu_s is None:
        try:
            import resource

            own = resource.getrusage(resource.RUSAGE_SELF)
            children = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu_s = own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
        except Exception:
            cpu_s = None
    return peak, cpu_s


def process_limit_reached():
    """The container's process limit if it refused a process or thread at least once (the
    pids cgroup counts each refusal in pids.events), else None."""
    root = "/sys/fs/cgroup"
    for folder in (root, os.path.join(root, "pids")):  # cgroup v2, then v1
        try:
            with open(os.path.join(folder, "pids.events")) as handle:
                refusals = 0
                for line in handle:
                    key, _, value = line.partition(" ")
                    if key == "max":
                        refusals = int(value)
            if refusals <= 0:
                return None
            with open(os.path.join(folder, "pids.max")) as handle:
                return handle.read().strip()
        except Exception:
            continue
    return None


def _write_all(fd, data):
    while data:
        written = os.write(fd, data)
        data = data[written:]


def report(nonce, record):
    """Write the record as the last line of the original stdout."""
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            stream.flush()
        except Exception:
            pass
    # ensure_ascii keeps the record one plain line whatever the response holds.
    payload = json.dumps(record, ensure_ascii=True, default=str)
    # The leading newline ends any partial line the agent left, so the record starts a line.
    line = "\n%s %s %s\n" % (RESULT_TAG, nonce, payload)
    try:
        _write_all(_result_fd, line.encode("ascii"))
    except OSError as exc:
        progress("could not write the result record: %s" % exc)


def _flush_and_exit(code):
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    os._exit(code)


def _exit_within_grace(code):
    """The record is out: the agent's leftover threads and atexit hooks get EXIT_GRACE_S in all,
    then the process exits without interpreter shutdown (which would wait for them unbounded,
    and tears down a big framework's modules slowly)."""
    deadline = time.monotonic() + EXIT_GRACE_S
    for thread in threading.enumerate():
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join(max(0.0, deadline - time.monotonic()))
    try:
        import atexit

        hooks = threading.Thread(target=atexit._run_exitfuncs, daemon=True)
        hooks.start()
        hooks.join(max(0.0, deadline - time.monotonic()))
    except RuntimeError:  # no thread left under the process limit: the hooks do not run
        pass
    _flush_and_exit(code)


def describe(exc):
    return "%s: %s" % (type(exc).__name__, exc) if str(exc) else type(exc).__name__


def _agent_path():
    return os.environ.get("AGENTTUI_AGENT_PATH") or os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "agent.py"
    )


def _set_sigterm(handler):
    try:
        signal.signal(signal.SIGTERM, handler)
    except (ValueError, OSError):
        pass


def _empty_record():
    return {
        "success": False,
        "response": None,
        "error": None,
        "error_type": None,
        "entrypoint": None,
        "load_s": None,
        "run_s": None,
        "peak_memory_bytes": None,
        "cpu_s": None,
    }


def _since(started):
    return round(time.monotonic() - started, 6)


def _set_response(record, response):
    if response is not None and len(response) > MAX_RESPONSE_CHARS:
        record["response_truncated_chars"] = len(response) - MAX_RESPONSE_CHARS
        response = response[:MAX_RESPONSE_CHARS]
    record["success"] = True
    record["response"] = response


def _record_failure(record, exc, phase):
    """Say in the record why the agent did not answer; the exit code that tells the same.
    Called while `exc` is being handled (the traceback printed is its own)."""
    if isinstance(exc, NoEntryPoint):
        record["error"] = str(exc)
        record["error_type"] = "NoEntryPoint"
        progress(str(exc))
        return EXIT_NO_ENTRYPOINT
    if isinstance(exc, Terminated):
        record["error"] = describe(exc)
        record["error_type"] = "Terminated"
        progress("stopped by SIGTERM")
        return EXIT_TERMINATED
    if isinstance(exc, SystemExit):
        # An agent calling sys.exit() never returned a response.
        record["error"] = "SystemExit: the agent called sys.exit(%r) during %s" % (exc.code, phase)
        record["error_type"] = "SystemExit"
        progress(record["error"])
        return EXIT_AGENT_FAILED
    record["error"] = describe(exc)
    record["error_type"] = type(exc).__name__
    try:
        sys.stderr.write("[agenttui] the agent raised during %s:\n" % phase)
        traceback.print_exc(file=sys.stderr)
        sys.stderr.flush()
    except Exception:
        os.write(2, traceback.format_exc().encode("utf-8", "replace"))
    return EXIT_AGENT_FAILED


def run_agent(record, agent_path, explicit, query):
    """Load the agent, call its entry point with the query, and fill in `record`; the exit code."""
    phase = "load"
    started = time.monotonic()
    try:
        progress("loading %s" % os.path.basename(agent_path))
        module = load_agent(agent_path)
        name, entrypoint = find_entrypoint(module, explicit)
        record["entrypoint"] = name
        record["load_s"] = _since(started)
        phase = "run"
        progress("calling %s" % getattr(entrypoint, "agenttui_call", name + "(query)"))
        started = time.monotonic()
        response = to_response(entrypoint(query))
        record["run_s"] = _since(started)
        _set_response(record, response)
        exit_code = EXIT_OK
        progress("%s returned in %.3f s" % (name, record["run_s"]))
    except BaseException as exc:  # KeyboardInterrupt too: always report
        exit_code = _record_failure(record, exc, phase)
    if record[phase + "_s"] is None:  # the phase that failed: how long it ran
        record[phase + "_s"] = _since(started)
    return exit_code


def _add_resource_use(record):
    record["peak_memory_bytes"], record["cpu_s"] = cgroup_usage()
    if not record["success"]:
        limit = process_limit_reached()
        if limit is not None:
            # A fork bomb fails with a bare "Resource temporarily unavailable": say why.
            record["process_limit"] = limit
            record["error"] = "%s (the container reached its limit of %s processes and threads; " \
                "raise the limit (--pids) or start fewer)" % (record["error"], limit)


def main():
    _unbuffer_std_streams()
    nonce = os.environ.get("AGENTTUI_RESULT_NONCE") or "-"
    query = os.environ.get("AGENTTUI_QUERY", "")
    agent_path = _agent_path()
    explicit = os.environ.get("AGENTTUI_ENTRYPOINT", "").strip() or None
    _set_sigterm(_on_sigterm)
    record = _empty_record()
    exit_code = run_agent(record, agent_path, explicit, query)
    # A late SIGTERM must not cut the record in half; the exit follows right after.
    _set_sigterm(signal.SIG_IGN)
    _add_resource_use(record)
    record["finished_at"] = round(time.time(), 6)  # when the agent's answer was known
    report(nonce, record)
    if (_SCORERS_JSON or _RUBRICS_JSON) and exit_code != EXIT_TERMINATED:
        # The agent's result is out (and stored); a stop now ends the scoring at once.
        _set_sigterm(lambda signum, frame: _flush_and_exit(EXIT_TERMINATED))
        import agenttui_grading  # beside this file (agenttui.harness.GRADING_FILENAME): only suites need it

        record["scores"] = agenttui_grading.grade(sys.modules[__name__], record, exit_code, query)
        _set_sigterm(signal.SIG_IGN)
        report(nonce, record)
    _exit_within_grace(exit_code)


if __name__ == "__main__":
    sys.exit(main())
