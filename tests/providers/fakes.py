"""Fake model servers speaking the real HTTP APIs, on this machine's loopback only.

FakeOllama: GET /api/tags, POST /api/generate and /api/chat (streaming NDJSON and not).
FakeOpenAI: GET /v1/models, POST /v1/chat/completions (JSON or SSE), with a bearer key check.
Each answers "<model> says: <the prompt upside down>" (FakeOpenAI(random=True): and a random word) and
records what it was sent; `connections` counts the connections it accepted. Given `tls=TestCA(folder)`
(a CA the test makes), a fake serves HTTPS with a certificate of that CA for 127.0.0.1, localhost and
host.docker.internal, and its `url` is https://.

As the real servers do, both report token counts (Ollama's prompt_eval_count / eval_count, OpenAI's
usage: in a stream only when stream_options.include_usage asks) and answer a request that offers
tools with a call of its first tool ({"query": <the prompt>}). With hold_last=True a stream holds
its last chunk until something POSTs to <any path>/release (or 20 s pass); `released_in_time` says
whether the release came first, i.e. the client read the first chunks while the stream was open.
"""

from __future__ import annotations

import datetime
import io
import ipaddress
import json
import re
import secrets
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def answer(model: str, prompt: str) -> str:
    return f"{model} says: {prompt[::-1]}"


def prompt_tokens(prompt: str) -> int:
    """The fakes' token count of a prompt (deterministic, as a test can compute it)."""
    return 3 * len(prompt.split()) + 5


def answer_tokens(text: str) -> int:
    return len(text.split())


HOLD_TIMEOUT_S = 20.0
SERVER_NAMES = ("127.0.0.1", "localhost", "host.docker.internal")


class TestCA:
    """A CA made by a test (files in `folder`): `cert_path` is what a client must trust; `server_context`
    is a TLS server context with a certificate it signed for `names`."""

    __test__ = False  # not a pytest class

    def __init__(self, folder: Path, name: str = "agenttui test CA"):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.cert = (
            x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        self.cert_pem = self.cert.public_bytes(serialization.Encoding.PEM)
        self.cert_path = folder / "test-ca.pem"
        self.cert_path.write_bytes(self.cert_pem)

    def server_context(self, names: tuple[str, ...] = SERVER_NAMES) -> ssl.SSLContext:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        entries = []
        for name in names:
            try:
                entries.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                entries.append(x509.DNSName(name))
        cert = (
            x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(self.cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName(entries), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        chain = self.folder / f"server-{secrets.token_hex(4)}.pem"
        chain.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption()) + cert.public_bytes(serialization.Encoding.PEM))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(chain)
        return context

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cadata=self.cert_pem.decode())


class _Server:
    handler: type[BaseHTTPRequestHandler]

    def __init__(self, host: str = "127.0.0.1", port: int = 0, tls: TestCA | None = None, **config):
        self.config = config
        self.requests: list[dict] = []
        self.release = threading.Event()
        self.released_in_time: list[bool] = []  # one per held stream
        self.connections = 0  # TCP connections accepted
        handler = type("Handler", (self.handler,), {"fake": self})
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self.scheme = "https" if tls is not None else "http"
        if tls is not None:  # the handshake happens in the connection's own thread, at its first read
            self.httpd.socket = tls.server_context().wrap_socket(
                self.httpd.socket, server_side=True, do_handshake_on_connect=False)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self) -> None:
        if self.thread.is_alive():
            self.httpd.shutdown()
        self.httpd.server_close()


class _Handler(BaseHTTPRequestHandler):
    fake: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet
        pass

    def setup(self):
        self.fake.connections += 1
        super().setup()

    def _body(self) -> dict:
        size = int(self.headers.get("Content-Length") or 0)
        data = json.loads(self.rfile.read(size) or b"{}")
        self.fake.requests.append({"path": self.path, "headers": dict(self.headers), "body": data})
        return data

    def _send(self, status: int, payload, content_type="application/json") -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, chunks: list[bytes], content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for index, chunk in enumerate(chunks):
            if index == len(chunks) - 1 and self.fake.config.get("hold_last"):
                self.fake.released_in_time.append(self.fake.release.wait(HOLD_TIMEOUT_S))
            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.flush()
            time.sleep(0.001)  # chunks leave as separate writes, as a model's tokens do
        self.wfile.write(b"0\r\n\r\n")

    def _released(self) -> bool:
        """POST <any path>/release: a held stream may send its last chunk."""
        if not self.path.rstrip("/").endswith("/release"):
            return False
        self.fake.release.set()
        self._send(200, {"released": True})
        return True

    @staticmethod
    def _first_tool(body: dict) -> str | None:
        tools = body.get("tools") or []
        return ((tools[0] or {}).get("function") or {}).get("name") if tools else None


class _OllamaHandler(_Handler):
    def do_GET(self):
        if self.path == "/api/tags":
            models = [{"name": f"{m}:latest", "model": f"{m}:latest"} for m in self.fake.config.get("models", ["llama3.2"])]
            self.fake.requests.append({"path": self.path})
            return self._send(200, {"models": models})
        self._send(404, {"error": "not found"})

    def do_POST(self):
        if self._released():
            return
        body = self._body()
        model = body.get("model", "")
        if self.path == "/api/generate":
            text, key = answer(model, body.get("prompt", "")), "response"
        elif self.path == "/api/chat":
            text, key = answer(model, (body.get("messages") or [{}])[-1].get("content", "")), "message"
        else:
            return self._send(404, {"error": "not found"})

        prompt = body.get("prompt", "") if key == "response" else (body.get("messages") or [{}])[-1].get("content", "")
        tool = self._first_tool(body)

        def piece(part: str, done: bool) -> dict:
            value = part if key == "response" else {"role": "assistant", "content": part}
            if done:
                return {"model": model, key: value, "done": done,
                        "prompt_eval_count": prompt_tokens(prompt), "eval_count": answer_tokens(text)}
            return {"model": model, key: value, "done": done}

        if tool and not body.get("stream", True):
            message = {"role": "assistant", "content": "",
                       "tool_calls": [{"function": {"name": tool, "arguments": {"query": prompt}}}]}
            return self._send(200, {"model": model, "message": message, "done": True, "done_reason": "stop",
                                    "prompt_eval_count": prompt_tokens(prompt), "eval_count": 7})

        if body.get("stream", True):  # Ollama streams unless told not to
            words = text.split(" ")
            parts = [w + (" " if i < len(words) - 1 else "") for i, w in enumerate(words)]
            lines = [json.dumps(piece(p, False)).encode() + b"\n" for p in parts]
            lines.append(json.dumps(piece("", True)).encode() + b"\n")
            return self._stream(lines, "application/x-ndjson")
        self._send(200, piece(text, True))


class FakeOllama(_Server):
    handler = _OllamaHandler


class _OpenAIHandler(_Handler):
    def _authorized(self) -> bool:
        expected = self.fake.config.get("api_key")
        if expected and self.headers.get("Authorization") != f"Bearer {expected}":
            self._send(401, {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}})
            return False
        return True

    def do_GET(self):
        if self.path.rstrip("/").endswith("/v1/models"):
            self.fake.requests.append({"path": self.path, "headers": dict(self.headers)})
            if self._authorized():
                self._send(200, {"object": "list", "data": [{"id": "gpt-fake", "object": "model"}]})
            return
        self._send(404, {"error": {"message": "not found"}})

    def do_POST(self):
        if self._released():
            return
        body = self._body()
        if not self.path.rstrip("/").endswith("/v1/chat/completions"):
            return self._send(404, {"error": {"message": "not found"}})
        if not self._authorized():
            return
        model = body.get("model", "")
        prompt = (body.get("messages") or [{}])[-1].get("content", "")
        text = answer(model, prompt)
        if self.fake.config.get("random"):  # a model that never answers the same twice
            text += " " + secrets.token_hex(6)
        usage = {"prompt_tokens": prompt_tokens(prompt), "completion_tokens": answer_tokens(text),
                 "total_tokens": prompt_tokens(prompt) + answer_tokens(text)}
        tool = self._first_tool(body)
        if tool and not body.get("stream"):
            call = {"id": "call_1", "type": "function",
                    "function": {"name": tool, "arguments": json.dumps({"query": prompt})}}
            usage = {"prompt_tokens": prompt_tokens(prompt), "completion_tokens": 7,
                     "total_tokens": prompt_tokens(prompt) + 7}
            return self._send(200, {
                "id": "c1", "object": "chat.completion", "created": 1, "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": None, "tool_calls": [call]},
                             "finish_reason": "tool_calls"}],
                "usage": usage,
            })
        if body.get("stream"):
            chunks = [
                {"id": "c1", "object": "chat.completion.chunk", "model": model,
                 "choices": [{"index": 0, "delta": {"content": word + " "}, "finish_reason": None}]}
                for word in text.split(" ")
            ]
            if (body.get("stream_options") or {}).get("include_usage"):
                chunks.append({"id": "c1", "object": "chat.completion.chunk", "model": model, "choices": [],
                               "usage": usage})
            data = [b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks] + [b"data: [DONE]\n\n"]
            return self._stream(data, "text/event-stream")
        self._send(200, {
            "id": "c1", "object": "chat.completion", "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        })


class FakeOpenAI(_Server):
    handler = _OpenAIHandler


# ---------------------------------------------------------------- judges (suite rubrics, issue 20)
# FakeOllama / FakeOpenAI answering agenttui's judge prompt (docs/suites.md) deterministically: a
# rubric's "double-quoted" words must all be in the answer. Any other request is answered as they do.
JUDGE_MARK = "You are agenttui's judge."  # the first words of agenttui's judge prompt (agenttui.harness)


def judge_answer(rubric: str, answer_text: str) -> str:
    """PASS / FAIL by the rubric's quoted words (case-insensitive); a rubric that asks for a score
    gets `SCORE: found/quoted`; one that says "ramble" gets an answer without a verdict."""
    wanted = re.findall(r'"([^"]+)"', rubric)
    found = [w for w in wanted if w.casefold() in answer_text.casefold()]
    if "ramble" in rubric.casefold():
        return "Well, it depends on how you look at it."
    if "score" in rubric.casefold():
        return f"SCORE: {len(found) / max(1, len(wanted)):g}\nThe answer mentions {len(found)} of {len(wanted)}."
    missing = [w for w in wanted if w not in found]
    if missing:
        return f"FAIL: the answer does not mention {', '.join(missing)}"
    return f"PASS\nThe answer mentions {', '.join(found) or 'everything asked'}."


def judge_prompt_parts(messages: list) -> tuple[str, str] | None:
    """(rubric, answer) of agenttui's judge prompt, or None for any other request."""
    if not messages or not str((messages[0] or {}).get("content", "")).startswith(JUDGE_MARK):
        return None
    text = str(messages[-1].get("content", ""))
    rubric = text.split("RUBRIC:\n", 1)[-1].split("\n\nQUESTION:\n", 1)[0]
    return rubric, text.split("\n\nANSWER:\n", 1)[-1]


def _judged(handler) -> tuple[dict, tuple[str, str]] | None:
    """The request's body and its judge prompt's parts; None (the body put back for the parent
    handler) when it is not a judge prompt."""
    raw = handler.rfile.read(int(handler.headers.get("Content-Length") or 0)) or b"{}"
    body = json.loads(raw)
    parts = judge_prompt_parts(body.get("messages") or [])
    if parts is None:
        handler.rfile = io.BytesIO(raw)
        return None
    handler.fake.requests.append({"path": handler.path, "headers": dict(handler.headers), "body": body})
    handler.fake.judged.append(parts)
    return body, parts


class _JudgingOllamaHandler(_OllamaHandler):
    def do_POST(self):
        judged = _judged(self) if self.path == "/api/chat" else None
        if judged is None:
            return super().do_POST()
        body, parts = judged
        text, prompt = judge_answer(*parts), body["messages"][-1]["content"]
        self._send(200, {"model": body.get("model"), "message": {"role": "assistant", "content": text},
                         "done": True, "done_reason": "stop",
                         "prompt_eval_count": prompt_tokens(prompt), "eval_count": answer_tokens(text)})


class JudgingOllama(FakeOllama):
    """FakeOllama that answers the judge prompt; `judged` lists the (rubric, answer) pairs graded."""

    handler = _JudgingOllamaHandler

    def __init__(self, *args, **config):
        super().__init__(*args, **config)
        self.judged: list[tuple[str, str]] = []


class _JudgingOpenAIHandler(_OpenAIHandler):
    def do_POST(self):
        judged = _judged(self) if self.path.rstrip("/").endswith("/v1/chat/completions") else None
        if judged is None:
            return super().do_POST()
        if not self._authorized():
            return
        body, parts = judged
        text, prompt = judge_answer(*parts), body["messages"][-1]["content"]
        self._send(200, {
            "id": "j1", "object": "chat.completion", "model": body.get("model"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt_tokens(prompt), "completion_tokens": answer_tokens(text),
                      "total_tokens": prompt_tokens(prompt) + answer_tokens(text)},
        })


class JudgingOpenAI(FakeOpenAI):
    """FakeOpenAI (its bearer key check included) that answers the judge prompt."""

    handler = _JudgingOpenAIHandler

    def __init__(self, *args, **config):
        super().__init__(*args, **config)
        self.judged: list[tuple[str, str]] = []
