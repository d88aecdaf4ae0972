"""The recorder's readers of model wire formats, fed the bytes of real exchanges cut anywhere."""

import json

import pytest

from agenttui.sandbox.model_formats import ResponseReader, model_api, read_request
from agenttui.sandbox.recorder import ConnectionRecorder


class Sink:
    def __init__(self):
        self.calls = []

    def add(self, call):
        self.calls.append(call)


def ndjson(*objects):
    return b"".join(json.dumps(o).encode() + b"\n" for o in objects)


def sse(*objects, done=True):
    body = b"".join(b"data: " + json.dumps(o).encode() + b"\n\n" for o in objects)
    return body + (b"data: [DONE]\n\n" if done else b"")


OLLAMA_STREAM = ndjson(
    {"model": "llama3.2", "message": {"role": "assistant", "content": "Hel"}, "done": False},
    {"model": "llama3.2", "message": {"role": "assistant", "content": "lo",
                                      "tool_calls": [{"function": {"name": "add", "arguments": {"a": 1}}}]},
     "done": False},
    {"model": "llama3.2", "message": {"role": "assistant", "content": ""}, "done": True,
     "prompt_eval_count": 12, "eval_count": 3},
)
OPENAI_STREAM = sse(
    {"model": "gpt-4o-mini", "choices": [{"index": 0, "delta": {"content": "Hi "}}]},
    {"model": "gpt-4o-mini", "choices": [{"index": 0, "delta": {"tool_calls": [
        {"index": 0, "id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": "{\"q\""}}]}}]},
    {"model": "gpt-4o-mini", "choices": [{"index": 0, "delta": {"tool_calls": [
        {"index": 0, "function": {"arguments": ": \"x\"}"}}]}}]},
    {"model": "gpt-4o-mini", "choices": [{"index": 0, "delta": {"content": "there"}}]},
    {"model": "gpt-4o-mini", "choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 2}},
)


def read_split(family, content_type, body, cut):
    reader = ResponseReader(family, content_type, "")
    reader.feed(body[:cut])
    reader.feed(body[cut:])
    return reader.end()


@pytest.mark.parametrize("cut", range(0, len(OLLAMA_STREAM) + 1, 7))
def test_an_ollama_ndjson_stream_cut_anywhere(cut):
    summary = read_split("ollama", "application/x-ndjson", OLLAMA_STREAM, cut)
    assert (summary.text, summary.tokens_in, summary.tokens_out, summary.model) == ("Hello", 12, 3, "llama3.2")
    assert summary.tool_calls == [{"id": None, "name": "add", "arguments": '{"a":1}'}]


@pytest.mark.parametrize("cut", range(0, len(OPENAI_STREAM) + 1, 5))
def test_an_openai_sse_stream_with_usage_and_a_tool_call_cut_anywhere(cut):
    summary = read_split("openai", "text/event-stream; charset=utf-8", OPENAI_STREAM, cut)
    assert (summary.text, summary.tokens_in, summary.tokens_out) == ("Hi there", 7, 2)
    assert summary.tool_calls == [{"id": "call_1", "name": "lookup", "arguments": '{"q": "x"}'}]


def test_a_stream_without_usage_leaves_tokens_unknown_not_zero():
    summary = read_split("openai", "text/event-stream", sse({"choices": [{"delta": {"content": "x"}}]}), 3)
    assert (summary.text, summary.tokens_in, summary.tokens_out) == ("x", None, None)


def test_whole_json_answers_and_errors():
    body = json.dumps({"model": "m", "choices": [{"message": {"content": "ok", "tool_calls": [
        {"id": "t", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}}],
        "usage": {"prompt_tokens": 4, "completion_tokens": 1}}).encode()
    summary = read_split("openai", "application/json", body, 10)
    assert (summary.text, summary.tokens_in, summary.tokens_out, summary.tool_calls[0]["name"]) == ("ok", 4, 1, "f")
    error = read_split("openai", "application/json", b'{"error": {"message": "Incorrect API key"}}', 5)
    assert error.error == "Incorrect API key"
    generate = read_split("ollama", "application/json", ndjson({"response": "r", "done": True, "eval_count": 2,
                                                                 "prompt_eval_count": 1}).strip(), 4)
    assert (generate.text, generate.tokens_in, generate.tokens_out) == ("r", 1, 2)


def test_requests_and_paths():
    assert model_api("POST", "/v1/chat/completions?x=1") == "openai"
    assert model_api("POST", "/api/generate") == "ollama"
    assert model_api("GET", "/api/tags") is None and model_api("POST", "/api/pull") is None
    chat = read_request("ollama", b'{"model": "llama3.2", "messages": [{"role": "user", "content": "hi"}]}')
    assert (chat.model, chat.stream, chat.messages) == ("llama3.2", True, [{"role": "user", "content": "hi"}])
    assert read_request("openai", b'{"model": "g", "messages": []}').stream is False
    assert read_request("openai", b"not json").model is None


def http_exchange(path, request_body, response_head, response_body, *, chunked=True):
    request = (b"POST %s HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
               % (path.encode(), len(request_body)) + request_body)
    if chunked:
        framed = b"%x\r\n%s\r\n0\r\n\r\n" % (len(response_body), response_body)
        head = response_head + b"Transfer-Encoding: chunked\r\n\r\n"
    else:
        framed = response_body
        head = response_head + b"Content-Length: %d\r\n\r\n" % len(response_body)
    return request, head + framed


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "content-length"])
@pytest.mark.parametrize("cut", [1, 17, 40, 90, 200])
def test_calls_on_one_keep_alive_connection_cut_anywhere(cut, chunked):
    sink = Sink()
    seen = ConnectionRecorder("openai", sink)
    body = json.dumps({"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "q"}]}).encode()
    request, response = http_exchange("/v1/chat/completions", body,
                                      b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n", OPENAI_STREAM,
                                      chunked=chunked)
    for _ in range(3):
        for data in (request[:cut], request[cut:]):
            seen.from_agent(data)
        for data in (response[:cut], response[cut:cut + 150], response[cut + 150:]):  # head, body, end apart
            seen.from_endpoint(data)
    seen.closed()
    assert [c.kind for c in sink.calls] == ["call", "call", "call"]
    call = sink.calls[2]
    assert (call.model, call.status, call.streamed, call.response, call.tokens_in, call.tokens_out) == (
        "gpt-4o-mini", 200, True, "Hi there", 7, 2)
    assert call.request == [{"role": "user", "content": "q"}]
    assert call.first_byte_at is not None and call.ended_at >= call.started_at
    assert call.bytes_up == len(request) and call.bytes_down == len(response)


def test_an_answer_that_comes_before_its_request_has_been_sent_whole_is_still_read():
    sink = Sink()
    seen = ConnectionRecorder("openai", sink)
    request, response = http_exchange("/v1/chat/completions", b'{"model": "g", "messages": []}' + b" " * 5000,
                                      b"HTTP/1.1 413 Payload Too Large\r\n", b'{"error": {"message": "too large"}}',
                                      chunked=False)
    seen.from_agent(request[:200])
    seen.from_endpoint(response[:60])
    seen.from_endpoint(response[60:])
    seen.from_agent(request[200:])
    seen.closed()
    assert [(c.status, c.error) for c in sink.calls] == [(413, "too large")]


def test_not_http_is_bytes_and_timing_and_other_paths_are_not_calls():
    sink = Sink()
    tls = ConnectionRecorder("openai", sink)
    tls.from_agent(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
    tls.from_endpoint(b"\x16\x03\x03\x00\x7a")
    tls.closed()
    assert [(c.kind, c.bytes_up, c.bytes_down) for c in sink.calls] == [("connection", 11, 5)]
    sink.calls.clear()
    probe = ConnectionRecorder("ollama", sink)
    probe.from_agent(b"GET /api/tags HTTP/1.1\r\nHost: h\r\n\r\n")
    probe.from_endpoint(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
    probe.closed()
    assert sink.calls == []


def test_a_response_cut_short_is_an_error_and_a_401_says_why():
    sink = Sink()
    seen = ConnectionRecorder("openai", sink)
    request, response = http_exchange("/v1/chat/completions", b'{"model": "g"}', b"HTTP/1.1 401 Unauthorized\r\n",
                                      b'{"error": {"message": "Incorrect API key provided"}}', chunked=False)
    seen.from_agent(request)
    seen.from_endpoint(response)
    seen.from_agent(request)
    seen.from_endpoint(response[:30])
    seen.closed()
    assert [(c.status, c.error) for c in sink.calls] == [
        (401, "Incorrect API key provided"), (None, "the connection closed before the response ended")]


@pytest.mark.parametrize("family, content_type", [("openai", "text/event-stream"), ("ollama", "application/x-ndjson")])
def test_a_stream_longer_than_the_text_cap_keeps_its_last_events_counts(family, content_type):
    from agenttui.sandbox.model_formats import TEXT_CAP

    words = "w" * 50
    if family == "openai":
        body = sse(*[{"choices": [{"delta": {"content": words}}]}] * 8000,
                   {"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 8000}})
    else:
        body = ndjson(*[{"message": {"content": words}, "done": False}] * 8000,
                      {"message": {"content": ""}, "done": True, "prompt_eval_count": 9, "eval_count": 8000})
    reader = ResponseReader(family, content_type, "")
    for start in range(0, len(body), 4099):  # cuts that fall anywhere in lines and events
        reader.feed(body[start:start + 4099])
    summary = reader.end()
    assert (summary.tokens_in, summary.tokens_out, len(summary.text), summary.unread) == (9, 8000, TEXT_CAP, False)


@pytest.mark.parametrize("family, content_type, separator", [
    ("openai", "text/event-stream", b"\n"), ("openai", "text/event-stream", b"\r\n"),
    ("ollama", "application/x-ndjson", b"\n"),
])
def test_a_stream_longer_than_what_is_kept_still_has_its_counts_from_its_tail(family, content_type, separator):
    from agenttui.sandbox.model_formats import HEAD_BYTES, TAIL_BYTES

    if family == "openai":
        body = sse(*[{"choices": [{"delta": {"content": "w" * 80}}]}] * 30000,
                   {"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 30000}})
        body = body.replace(b"\n", separator)
    else:
        body = ndjson(*[{"message": {"content": "w" * 80}, "done": False}] * 30000,
                      {"message": {"content": ""}, "done": True, "prompt_eval_count": 9, "eval_count": 30000})
    assert len(body) > 2 * (HEAD_BYTES + TAIL_BYTES)
    reader = ResponseReader(family, content_type, "")
    for start in range(0, len(body), 65536):
        reader.feed(body[start:start + 65536])
    summary = reader.end()
    assert (summary.tokens_in, summary.tokens_out, summary.unread) == (9, 30000, False)
    assert summary.text.startswith("w" * 1000)
