"""The ecs backend's pure parts: outcome mapping, overrides limit, log cursor, result parts."""

from __future__ import annotations

import base64
import importlib.machinery
import importlib.util
import json
import os
import threading

import pytest

from agenttui.backends.base import InfraError, LogLine
from agenttui.backends.ecs.description import exit_info_from_task
from agenttui.backends.ecs.logs import LogCursor, PartJoiner
from agenttui.backends.ecs.task import OVERRIDES_MAX_CHARS, OverridesTooLarge, check_overrides, started_by
from agenttui.harness import parse_result_line

from .conftest import ENTRYPOINT


def task(exit_code=0, container_reason=None, stop_code="EssentialContainerExited",
         stopped_reason="Essential container in task exited"):
    container = {"name": "agent", "lastStatus": "STOPPED"}
    if exit_code is not None:
        container["exitCode"] = exit_code
    if container_reason:
        container["reason"] = container_reason
    return {
        "taskArn": "arn:aws:ecs:us-east-1:1:task/c/abc",
        "lastStatus": "STOPPED",
        "stopCode": stop_code,
        "stoppedReason": stopped_reason,
        "containers": [container],
    }


def test_completed_and_agent_failure_map_to_their_exit_codes():
    assert exit_info_from_task(task(0), "agent").exit_code == 0
    failed = exit_info_from_task(task(1), "agent")
    assert failed.exit_code == 1 and not failed.oom_killed


def test_out_of_memory_is_oom():
    info = exit_info_from_task(task(137, "OutOfMemoryError: Container killed due to memory usage"), "agent")
    assert info.oom_killed and info.exit_code == 137


def test_a_bare_sigkill_is_not_called_oom_but_explained():
    info = exit_info_from_task(task(137), "agent")
    assert not info.oom_killed and "SIGKILL" in info.reason


@pytest.mark.parametrize(
    "stop_code, reason",
    [
        ("TaskFailedToStart", "CannotPullContainerError: pull image manifest has been retried 5 time(s)"),
        ("TaskFailedToStart", "ResourceInitializationError: unable to pull secrets or registry auth"),
        ("EssentialContainerExited", "CannotStartContainerError: Error response from daemon"),
        ("SpotInterruption", "Your Spot Task was interrupted."),
    ],
)
def test_failures_to_start_are_infrastructure_failures(stop_code, reason):
    with pytest.raises(InfraError, match=reason.split(":")[0]):
        exit_info_from_task(task(None, reason, stop_code=stop_code, stopped_reason=reason), "agent")


def test_no_exit_code_is_never_a_success():
    with pytest.raises(InfraError, match="without an exit code"):
        exit_info_from_task(task(None), "agent")


def test_our_own_stop_returns_what_ecs_reports():
    stopped = task(143, stop_code="UserInitiated", stopped_reason="agenttui: cancelled by request")
    assert exit_info_from_task(stopped, "agent").exit_code == 143
    # Even if the task failed to start: we stopped it, the orchestrator knows why.
    early = task(None, stop_code="UserInitiated", stopped_reason="agenttui: timeout of 10 s reached")
    assert exit_info_from_task(early, "agent").exit_code is None


def test_a_stop_from_outside_is_said_so():
    info = exit_info_from_task(task(143, stop_code="UserInitiated", stopped_reason="console"), "agent")
    assert "stopped outside agenttui: console" in info.reason


def test_runner_exit_codes_for_bundle_and_requirements():
    with pytest.raises(InfraError, match="bundle"):
        exit_info_from_task(task(4), "agent")
    failed = exit_info_from_task(task(3), "agent")
    assert failed.exit_code == 3 and "pip could not install the requirements" in failed.reason


def test_overrides_are_checked_against_the_8192_character_limit():
    small = {"containerOverrides": [{"name": "agent", "environment": [{"name": "U", "value": "x" * 100}]}]}
    assert check_overrides(small) < OVERRIDES_MAX_CHARS
    big = {"containerOverrides": [{"name": "agent", "environment": [{"name": "U", "value": "x" * 8200}]}]}
    with pytest.raises(OverridesTooLarge, match="8192"):
        check_overrides(big)


def test_started_by_fits_ecs_36_characters():
    assert started_by("agenttui-0123456789ab-12-a1") == "agenttui-0123456789ab-12-a1"
    long = started_by("agenttui-0123456789ab-123456789-a10")
    assert len(long) <= 36 and long != started_by("agenttui-0123456789ab-123456788-a10")


def test_log_cursor_round_trips_and_tolerates_junk():
    cursor = LogCursor("f/0001", 3)
    assert LogCursor.load(cursor.dump()) == cursor
    assert LogCursor.load(None) == LogCursor() == LogCursor.load("not json")


def parts_of(record_line: str, size: int = 10) -> list[str]:
    encoded = base64.b64encode(record_line.encode()).decode()
    chunks = [encoded[i : i + size] for i in range(0, len(encoded), size)]
    return [f"@@agenttui-part {i}/{len(chunks)} {c}" for i, c in enumerate(chunks, 1)]


def test_parts_are_joined_and_lines_in_between_are_held_in_order():
    record = '@@agenttui-result n0nce {"success": true, "response": "r", "error": null}'
    parts = parts_of(record)
    joiner = PartJoiner()
    out = []
    for i, text in enumerate(["before", parts[0], "stderr meanwhile", *parts[1:], "after"]):
        out += joiner.feed(LogLine(float(i), "stdout", text), LogCursor("t", i))
        if 0 < i <= len(parts):  # from the first part until the last one completes
            assert joiner.holding and joiner.hold_cursor == LogCursor("t", 1)
    assert [line.text for line in out] == ["before", record, "stderr meanwhile", "after"]
    assert parse_result_line(out[1].text, "n0nce")["response"] == "r"


def test_broken_parts_are_given_back_as_they_were():
    parts = parts_of("@@agenttui-result x {}")
    joiner = PartJoiner()
    out = []
    for text in [parts[0], parts[2], "tail"]:  # part 2 went missing
        out += joiner.feed(LogLine(0, "stdout", text), LogCursor())
    out += joiner.release()
    assert [line.text for line in out] == [parts[0], parts[2], "tail"]


def load_entrypoint():
    # The script has no .py suffix (so installs do not byte-compile a template): name the loader.
    loader = importlib.machinery.SourceFileLoader("agenttui_ecs_entrypoint", str(ENTRYPOINT))
    spec = importlib.util.spec_from_loader("agenttui_ecs_entrypoint", loader)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def relay_through(module, data_chunks: list[bytes]) -> bytes:
    """Run the entry point's relay on a pipe fed with `data_chunks`; return what it wrote."""
    read_in, write_in = os.pipe()
    read_out, write_out = os.pipe()
    collected = bytearray()

    def feed():
        for chunk in data_chunks:
            os.write(write_in, chunk)
        os.close(write_in)

    def drain():
        while True:
            block = os.read(read_out, 65536)
            if not block:
                return
            collected.extend(block)

    writer, reader = threading.Thread(target=feed), threading.Thread(target=drain)
    writer.start()
    reader.start()
    module._out = os.fdopen(write_out, "wb")
    module.relay(read_in)
    module._out.close()
    writer.join()
    reader.join()
    os.close(read_in)
    os.close(read_out)
    return bytes(collected)


def test_the_runner_relays_output_unchanged_and_a_long_record_in_parts():
    module = load_entrypoint()
    record = "@@agenttui-result nonce " + json.dumps({"success": True, "response": "é" * 20000, "error": None})
    chunks = [b"hello", b" world\n", b"@@agent", b"tui-not-a-record\n", b"partial line no newline",
              b"\n" + record.encode()[:5000], record.encode()[5000:] + b"\n", b"bye\n"]
    out = relay_through(module, chunks).decode().splitlines()
    assert out[:3] == ["hello world", "@@agenttui-not-a-record", "partial line no newline"]
    assert out[-1] == "bye"
    parts = out[3:-1]
    assert len(parts) > 1 and all(p.startswith("@@agenttui-part ") and len(p) < 8100 for p in parts)
    joiner = PartJoiner()
    joined = []
    for text in parts:
        joined += joiner.feed(LogLine(0, "stdout", text), LogCursor())
    assert [line.text for line in joined] == [record]
    assert parse_result_line(joined[0].text, "nonce")["response"] == "é" * 20000


def test_a_short_record_passes_as_it_is():
    module = load_entrypoint()
    record = b'@@agenttui-result nonce {"success": true, "response": "ok", "error": null}\n'
    assert relay_through(module, [b"x\n", record]) == b"x\n" + record


def test_a_task_gets_endpoint_urls_as_configured_not_the_docker_tunnels():
    from agenttui.backends.base import RunSpec
    from agenttui.backends.ecs.bundles import task_env
    from agenttui.core.domain import Egress, ProviderConfig, TestRequest
    from agenttui.sandbox.egress import plan_network
    from agenttui.core.providers import container_env, endpoints

    config = ProviderConfig(name="openai", model_id="m", options={"OPENAI_BASE_URL": "http://10.1.2.3:8000/v1"})
    plan, urls = plan_network(Egress.PROVIDER_ONLY, endpoints(config, ollama_url="http://127.0.0.1:11434"))
    env = container_env(config, urls=urls)
    assert env["OPENAI_BASE_URL"] != "http://10.1.2.3:8000/v1"  # the sandbox's tunnel address
    request = TestRequest.parse(agent_code="def run(q):\n    return q\n", query="q", provider=config)
    spec = RunSpec(test_id=1, attempt=1, store_id="s" * 32, request=request, env=env, network=plan)
    assert task_env(spec)["OPENAI_BASE_URL"] == "http://10.1.2.3:8000/v1"
    assert task_env(spec)["MODEL_ID"] == "m"
