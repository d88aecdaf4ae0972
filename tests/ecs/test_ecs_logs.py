"""CloudWatch log following against moto: exact resume from every cursor the backend hands out."""

from __future__ import annotations

import base64
import json
import time

from agenttui.backends.ecs.backend import EcsBackend
from agenttui.core.config import load_settings

from .conftest import CLUSTER, CONTAINER, LOG_GROUP, STREAM_PREFIX, TASK_FAMILY, client


def start_stopped_task(world) -> str:
    ecs = client("ecs", world.url)
    arn = ecs.run_task(
        cluster=CLUSTER, taskDefinition=TASK_FAMILY, launchType="FARGATE",
        networkConfiguration={"awsvpcConfiguration": {"subnets": [world.subnet], "securityGroups": [world.security_group]}},
    )["tasks"][0]["taskArn"]
    task = world.tasks()[arn]
    task.containers[0].exitCode = 0
    task.stop_code = "EssentialContainerExited"
    task.last_status = "STOPPED"
    return arn.rsplit("/", 1)[-1]


async def collect(backend: EcsBackend, task_id: str, cursor: str | None) -> list[tuple[list[str], str]]:
    return [
        ([line.text for line in batch.lines if line.stream != "system"], batch.cursor)
        async for batch in backend.logs(task_id, cursor)
    ]


async def test_every_cursor_resumes_exactly_even_inside_a_record_split_in_parts(world):
    task_id = start_stopped_task(world)
    record = "@@agenttui-result n " + json.dumps({"success": True, "response": "x" * 200, "error": None})
    encoded = base64.b64encode(record.encode()).decode()
    chunks = [encoded[i : i + 60] for i in range(0, len(encoded), 60)]
    parts = [f"@@agenttui-part {i}/{len(chunks)} {c}" for i, c in enumerate(chunks, 1)]
    assert len(parts) >= 4
    stream_lines = ["one", "two", parts[0], "meanwhile on stderr", *parts[1:], "after 1", "after 2"]
    logs = client("logs", world.url)
    stream = f"{STREAM_PREFIX}/{CONTAINER}/{task_id}"
    logs.create_log_stream(logGroupName=LOG_GROUP, logStreamName=stream)
    now = int(time.time() * 1000)
    logs.put_log_events(
        logGroupName=LOG_GROUP, logStreamName=stream,
        logEvents=[{"timestamp": now, "message": text} for text in stream_lines],
    )
    expected = ["one", "two", record, "meanwhile on stderr", "after 1", "after 2"]

    backend = EcsBackend(load_settings(ecs_poll_s=0.05))
    backend.log_page_limit = 3  # pages end inside the record's parts
    try:
        batches = await collect(backend, task_id, None)
        assert [text for lines, _ in batches for text in lines] == expected
        held = [json.loads(c) for _, c in batches]
        assert any(c["s"] > 0 for c in held), held  # a cursor pointing inside a page
        # A reader that died after any batch resumes from its cursor: no duplicate, no gap.
        for k, (_, cursor) in enumerate(batches):
            done = [text for lines, _ in batches[: k + 1] for text in lines]
            rest = [text for lines, _ in await collect(backend, task_id, cursor) for text in lines]
            assert done + rest == expected, (k, cursor, rest)
    finally:
        await backend.close()


async def test_a_missing_stream_means_not_started_yet_and_phases_stay_in_order(world):
    task_id = start_stopped_task(world)
    task = next(iter(world.tasks().values()))
    task.last_status = "PENDING"
    backend = EcsBackend(load_settings(ecs_poll_s=0.05))
    try:
        reader = backend.logs(task_id, None)
        first = await reader.__anext__()  # notes only: no stream yet, and no error
        assert all(line.stream == "system" for line in first.lines)
        logs = client("logs", world.url)
        stream = f"{STREAM_PREFIX}/{CONTAINER}/{task_id}"
        logs.create_log_stream(logGroupName=LOG_GROUP, logStreamName=stream)
        logs.put_log_events(logGroupName=LOG_GROUP, logStreamName=stream,
                            logEvents=[{"timestamp": int(time.time() * 1000), "message": "finally"}])
        task.last_status = "STOPPED"  # no poll saw RUNNING: the task was quicker than the poll
        rest = [line.text async for batch in reader for line in batch.lines]
        phases = [text.rsplit(": ", 1)[-1] for text in rest if text.startswith("[agenttui] ECS task")]
        # The lines say the container ran; STOPPED comes after the last of them.
        assert phases == ["RUNNING", "STOPPED"], rest
        assert rest.index("finally") == rest.index(next(t for t in rest if t.endswith(": RUNNING"))) + 1, rest
        assert rest[-1].endswith(": STOPPED"), rest
    finally:
        await backend.close()
