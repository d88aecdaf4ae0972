import pytest

from agenttui.core.domain import (
    ALLOWED_TRANSITIONS,
    IllegalTransition,
    InvalidRequest,
    Priority,
    Status,
    TestRequest,
    check_transition,
)

GOOD = dict(agent_code="def run(q):\n    return q\n", query="hello")


def test_valid_request_defaults():
    request = TestRequest.parse(**GOOD)
    assert request.priority is Priority.NORMAL
    assert request.timeout_s == 600
    assert (request.limits.cpus, request.limits.memory_mb, request.limits.pids) == (1.0, 2048, 1000)


@pytest.mark.parametrize(
    "changes, field, fragment",
    [
        ({"query": ""}, "query", "1–2000 characters"),
        ({"query": "x" * 2001}, "query", "it has 2001"),
        ({"agent_code": "   "}, "agent_code", "empty"),
        ({"agent_code": "def run(:\n"}, "agent_code", "not valid Python: line 1"),
        ({"agent_code": "x = 1\n" * 20000}, "agent_code", "under 100 KB"),
        ({"requirements": "requests==2.0\n???bad\n"}, "requirements", "line 2"),
        ({"requirements": "--index-url http://x\n"}, "requirements", "pip options"),
        ({"requirements": "a\n" * 6000}, "requirements", "under 10 KB"),
        ({"dockerfile": "RUN echo\n"}, "dockerfile", "FROM"),
        ({"dockerfile": "FROM x\n" + "#" * 6000}, "dockerfile", "under 5 KB"),
        ({"timeout_s": 5}, "timeout_s", "between 10 s and 600 s"),
        ({"timeout_s": 601}, "timeout_s", "between 10 s and 600 s"),
        ({"priority": "urgent"}, "priority", "high, normal or low"),
        ({"provider": {"name": "skynet"}}, "provider.name", "unknown provider"),
        ({"limits": {"memory_mb": 1}}, "limits.memory_mb", "between 64 MB and 1048576 MB; it is 1 MB"),
        ({"limits": {"memory_mb": 0}}, "limits.memory_mb", "between 64 MB and 1048576 MB; it is 0 MB"),
        ({"limits": {"memory_mb": "lots"}}, "limits.memory_mb", "must be a whole number; it is 'lots'"),
        ({"limits": {"cpus": 0}}, "limits.cpus", "more than 0 and at most 64 CPUs; it is 0"),
        ({"limits": {"pids": 2}}, "limits.pids", "between 16 and 1000000 processes; it is 2"),
        ({"limits": {"gpus": 1}}, "limits.gpus", "is not a field agenttui knows"),
    ],
)
def test_each_rejected_field_is_named_with_its_limit(changes, field, fragment):
    with pytest.raises(InvalidRequest) as info:
        TestRequest.parse(**{**GOOD, **changes})
    assert field in info.value.errors, info.value.errors
    assert fragment in info.value.errors[field]


def test_several_bad_fields_are_all_reported():
    with pytest.raises(InvalidRequest) as info:
        TestRequest.parse(agent_code="", query="", timeout_s=1)
    assert {"agent_code", "query", "timeout_s"} <= set(info.value.errors)


def test_priority_accepts_names_and_numbers():
    assert TestRequest.parse(**GOOD, priority="high").priority is Priority.HIGH
    assert TestRequest.parse(**GOOD, priority=3).priority is Priority.LOW


def test_transition_table_covers_the_life_cycle():
    path = [Status.QUEUED, Status.BUILDING, Status.RUNNING, Status.COMPLETED, Status.ARCHIVED]
    for current, nxt in zip([Status.CREATED, *path], path):
        check_transition(1, current, nxt)
    assert ALLOWED_TRANSITIONS[Status.ARCHIVED] == frozenset()


@pytest.mark.parametrize(
    "current, wanted",
    [
        (Status.COMPLETED, Status.RUNNING),
        (Status.QUEUED, Status.COMPLETED),
        (Status.CANCELLED, Status.QUEUED),
        (Status.CREATED, Status.RUNNING),
    ],
)
def test_illegal_transitions_are_refused(current, wanted):
    with pytest.raises(IllegalTransition, match=f"{current.value} -> {wanted.value}"):
        check_transition(7, current, wanted)


def test_replace_revalidates():
    request = TestRequest.parse(**GOOD)
    assert request.replace(query="other").query == "other"
    with pytest.raises(InvalidRequest):
        request.replace(query="")
