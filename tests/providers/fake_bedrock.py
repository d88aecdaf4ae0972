"""A fake Bedrock runtime over HTTPS, on this machine's loopback only, that checks every request's
SigV4 signature with botocore's own signer, as AWS does.

    with TestCA(tmp_path) as ca, FakeBedrock(ca, credentials={"AKIDEXAMPLE": "secret"}) as fake:
        client = boto3.client("bedrock-runtime", endpoint_url=fake.url, verify=str(ca.bundle), ...)

Serves POST /model/{modelId}/converse, /converse-stream (the AWS binary event stream, encoded here:
prelude, headers, payload, CRC32s), /invoke and /invoke-with-response-stream (Anthropic messages,
Amazon Titan text and Meta Llama bodies, chosen by the model id). A request whose signature does
not verify, or whose access key is unknown, is answered 403 in Bedrock's error shape
(`x-amzn-ErrorType` and `{"message": ...}`), which botocore raises as a ClientError.

Answers follow tests/providers/fakes.py: "<model> says: <the prompt upside down>" (random=True: and
a random word), token counts from fakes.prompt_tokens / answer_tokens, and a request that offers
tools gets a call of its first tool with {"query": <the prompt>} after its text. `connections`
counts the TLS connections accepted; `requests` keeps what each request sent (path, headers, body).
"""

from __future__ import annotations

import base64
import datetime
import hmac
import ipaddress
import json
import re
import secrets
import ssl
import struct
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.providers.fakes import answer, answer_tokens, prompt_tokens

EVENTSTREAM = "application/vnd.amazon.eventstream"
_PATH = re.compile(r"^/model/(?P<model>[^/]+)/(?P<op>converse|converse-stream|invoke|invoke-with-response-stream)$")
_AUTH = re.compile(r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)"
                   r"/aws4_request, ?SignedHeaders=(?P<signed>[^,]+), ?Signature=(?P<signature>[0-9a-f]{64})$")


class TestCA:
    """A CA made for one test, and a server certificate it signed for loopback names."""

    __test__ = False  # not a pytest class

    def __init__(self, folder: Path, names: tuple[str, ...] = ("localhost", "127.0.0.1")):
        folder.mkdir(parents=True, exist_ok=True)
        now = datetime.datetime.now(datetime.timezone.utc)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "agenttui fake Bedrock test CA")])
        ca_cert = (
            x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        key = ec.generate_private_key(ec.SECP256R1())
        alt: list[x509.GeneralName] = []
        for name in names:
            try:
                alt.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                alt.append(x509.DNSName(name))
        cert = (
            x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        self.bundle = folder / "fake-bedrock-ca.pem"  # what a client trusts
        self.bundle.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
        self.cert_file = folder / "fake-bedrock-server.pem"
        self.cert_file.write_bytes(
            cert.public_bytes(serialization.Encoding.PEM)
            + key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()))
        self.cert_file.chmod(0o600)

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_file)
        return context


# ------------------------------------------------------------------ the AWS event stream


def _header(name: str, value: str) -> bytes:
    raw_name, raw_value = name.encode(), value.encode()
    return struct.pack(">B", len(raw_name)) + raw_name + struct.pack(">BH", 7, len(raw_value)) + raw_value  # 7: string


def event_message(headers: dict[str, str], payload: bytes) -> bytes:
    """One event-stream message: prelude (total length, headers length, CRC32 of the two),
    headers, payload, and the CRC32 of everything before it."""
    raw_headers = b"".join(_header(name, value) for name, value in headers.items())
    total = 12 + len(raw_headers) + len(payload) + 4
    prelude = struct.pack(">II", total, len(raw_headers))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    message = prelude + raw_headers + payload
    return message + struct.pack(">I", zlib.crc32(message))


def event(event_type: str, payload: dict) -> bytes:
    return event_message({":event-type": event_type, ":content-type": "application/json", ":message-type": "event"},
                         json.dumps(payload).encode())


def exception_event(exception_type: str, message: str) -> bytes:
    return event_message({":exception-type": exception_type, ":content-type": "application/json",
                          ":message-type": "exception"}, json.dumps({"message": message}).encode())


# ------------------------------------------------------------------ the server


class FakeBedrock:
    def __init__(self, ca: TestCA, credentials: dict[str, str], host: str = "127.0.0.1", port: int = 0, **config):
        self.ca = ca
        self.credentials = credentials  # access key id → secret key
        self.config = config  # random=True; tool_text=False: a tool call without text; stream_error="..."
        self.requests: list[dict] = []
        self.rejected: list[str] = []  # why each refused request was refused
        self.connections = 0
        self.counting = threading.Lock()  # connections are accepted on many threads
        context = ca.server_context()
        handler = type("Handler", (_BedrockHandler,), {"fake": self})
        self.httpd = _TLSServer((host, port), handler, context)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self) -> None:
        if self.thread.is_alive():
            self.httpd.shutdown()
        self.httpd.server_close()


class _TLSServer(ThreadingHTTPServer):
    def __init__(self, address, handler, context: ssl.SSLContext):
        super().__init__(address, handler)
        self.context = context

    def get_request(self):
        sock, address = super().get_request()
        # The handshake runs in the connection's own thread (setup), never in the accepting one.
        return self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), address


class _BedrockHandler(BaseHTTPRequestHandler):
    fake: FakeBedrock
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet
        pass

    def setup(self):
        with self.fake.counting:
            self.fake.connections += 1
        self.request.do_handshake()
        super().setup()

    def handle(self):
        try:
            super().handle()
        except (ssl.SSLError, ConnectionError):
            pass

    # -- replies

    def _send(self, status: int, payload: dict, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-amzn-RequestId", secrets.token_hex(8))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, error_type: str, message: str) -> None:
        self._send(status, {"message": message}, {"x-amzn-ErrorType": f"{error_type}:http://internal.amazon.com/"})

    def _stream(self, messages: list[bytes]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", EVENTSTREAM)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("x-amzn-RequestId", secrets.token_hex(8))
        self.end_headers()
        for message in messages:  # one HTTP chunk a message, as Bedrock sends them
            self.wfile.write(b"%x\r\n%s\r\n" % (len(message), message))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")

    # -- the signature

    def _signature_problem(self, body: bytes) -> tuple[str, str] | None:
        """(error type, message) when the request is not signed by a known key, else None."""
        found = _AUTH.match(self.headers.get("Authorization", ""))
        if not found:
            return "MissingAuthenticationTokenException", "Missing Authentication Token"
        secret = self.fake.credentials.get(found["key"])
        if secret is None:
            return "UnrecognizedClientException", "The security token included in the request is invalid."
        signed = found["signed"].split(";")
        headers = {name: self.headers.get(name, "") for name in signed}
        request = AWSRequest(method=self.command, url=f"https://{self.headers.get('Host', '')}{self.path}",
                             headers=headers, data=body)
        request.context["timestamp"] = self.headers.get("X-Amz-Date", "")
        signer = SigV4Auth(Credentials(found["key"], secret, self.headers.get("X-Amz-Security-Token")),
                           found["service"], found["region"])
        canonical = signer.canonical_request(request)
        expected = signer.signature(signer.string_to_sign(request, canonical), request)
        if found["service"] != "bedrock" or not hmac.compare_digest(expected, found["signature"]):
            return ("InvalidSignatureException",
                    "The request signature we calculated does not match the signature you provided. "
                    "Check your AWS Secret Access Key and signing method.")
        return None

    # -- requests

    def do_GET(self):
        self._error(404, "UnknownOperationException", "not found")

    def do_POST(self):
        size = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(size)
        problem = self._signature_problem(raw)
        if problem:
            self.fake.rejected.append(problem[0])
            return self._error(403, *problem)
        route = _PATH.match(self.path.split("?", 1)[0])
        if not route:
            return self._error(404, "UnknownOperationException", f"no such operation: {self.path}")
        body = json.loads(raw or b"{}")
        model, operation = unquote(route["model"]), route["op"]
        self.fake.requests.append({"path": self.path, "model": model, "operation": operation,
                                   "headers": dict(self.headers), "body": body})
        if operation in ("converse", "converse-stream"):
            return self._converse(model, body, operation == "converse-stream")
        return self._invoke(model, body, operation == "invoke-with-response-stream")

    def _text(self, model: str, prompt: str) -> str:
        text = answer(model, prompt)
        if self.fake.config.get("random"):  # a model that never answers the same twice
            text += " " + secrets.token_hex(6)
        return text

    # Converse: {"messages": [{"role", "content": [{"text"}, ...]}], "toolConfig": {"tools": [{"toolSpec"}]}}
    def _converse(self, model: str, body: dict, stream: bool) -> None:
        last = (body.get("messages") or [{}])[-1]
        prompt = " ".join(block.get("text", "") for block in last.get("content") or [] if "text" in block)
        text = self._text(model, prompt)
        tools = (body.get("toolConfig") or {}).get("tools") or []
        tool = ((tools[0] or {}).get("toolSpec") or {}).get("name") if tools else None
        usage = {"inputTokens": prompt_tokens(prompt), "outputTokens": answer_tokens(text) + (7 if tool else 0)}
        usage["totalTokens"] = usage["inputTokens"] + usage["outputTokens"]
        stop = "tool_use" if tool else "end_turn"
        if not stream:
            content: list[dict] = [{"text": text}]
            if tool:
                content.append({"toolUse": {"toolUseId": "tooluse_1", "name": tool, "input": {"query": prompt}}})
            return self._send(200, {"output": {"message": {"role": "assistant", "content": content}},
                                    "stopReason": stop, "usage": usage, "metrics": {"latencyMs": 12}})
        words = text.split(" ")
        messages = [event("messageStart", {"role": "assistant"})]
        messages += [event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": w + (" " if i < len(words) - 1 else "")}})
                     for i, w in enumerate(words)]
        messages.append(event("contentBlockStop", {"contentBlockIndex": 0}))
        if tool:
            arguments = json.dumps({"query": prompt})
            half = len(arguments) // 2
            messages += [
                event("contentBlockStart", {"contentBlockIndex": 1, "start": {"toolUse": {"toolUseId": "tooluse_1", "name": tool}}}),
                event("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"toolUse": {"input": arguments[:half]}}}),
                event("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"toolUse": {"input": arguments[half:]}}}),
                event("contentBlockStop", {"contentBlockIndex": 1}),
            ]
        if self.fake.config.get("stream_error"):
            messages.append(exception_event("throttlingException", self.fake.config["stream_error"]))
            return self._stream(messages)
        messages.append(event("messageStop", {"stopReason": stop}))
        messages.append(event("metadata", {"usage": usage, "metrics": {"latencyMs": 12}}))
        self._stream(messages)

    # InvokeModel: the model's own body, chosen by its id's vendor.
    def _invoke(self, model: str, body: dict, stream: bool) -> None:
        vendor = model.split(".")[-2] if model.count(".") >= 2 else model.split(".")[0]  # us.anthropic.… → anthropic
        if vendor == "anthropic":
            last = (body.get("messages") or [{}])[-1]
            content = last.get("content")
            prompt = content if isinstance(content, str) else " ".join(
                b.get("text", "") for b in content or [] if b.get("type") == "text")
        elif vendor == "amazon":
            prompt = body.get("inputText", "")
        elif vendor == "meta":
            prompt = body.get("prompt", "")
        else:
            return self._error(400, "ValidationException", f"The fake knows no body shape for {model}")
        text = self._text(model, prompt)
        tokens_in, tokens_out = prompt_tokens(prompt), answer_tokens(text)
        counts = {"X-Amzn-Bedrock-Input-Token-Count": str(tokens_in),
                  "X-Amzn-Bedrock-Output-Token-Count": str(tokens_out)}
        metrics = {"amazon-bedrock-invocationMetrics": {"inputTokenCount": tokens_in, "outputTokenCount": tokens_out,
                                                        "invocationLatency": 12, "firstByteLatency": 5}}
        tools = body.get("tools") or []
        if vendor == "anthropic":
            blocks: list[dict] = [{"type": "text", "text": text}]
            if tools:
                blocks.append({"type": "tool_use", "id": "toolu_1", "name": tools[0].get("name"), "input": {"query": prompt}})
            if not stream:
                return self._send(200, {
                    "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-fake", "content": blocks,
                    "stop_reason": "tool_use" if tools else "end_turn",
                    "usage": {"input_tokens": tokens_in, "output_tokens": tokens_out}}, counts)
            pieces = [{"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant",
                                                             "content": [], "usage": {"input_tokens": tokens_in, "output_tokens": 1}}},
                      {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}]
            pieces += [{"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": w + " "}}
                       for w in text.split(" ")]
            pieces.append({"type": "content_block_stop", "index": 0})
            if tools:
                pieces += [{"type": "content_block_start", "index": 1,
                            "content_block": {"type": "tool_use", "id": "toolu_1", "name": tools[0].get("name"), "input": {}}},
                           {"type": "content_block_delta", "index": 1,
                            "delta": {"type": "input_json_delta", "partial_json": json.dumps({"query": prompt})}},
                           {"type": "content_block_stop", "index": 1}]
            pieces += [{"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": tokens_out}},
                       {"type": "message_stop", **metrics}]
        elif vendor == "amazon":
            if not stream:
                return self._send(200, {"inputTextTokenCount": tokens_in, "results": [
                    {"tokenCount": tokens_out, "outputText": text, "completionReason": "FINISH"}]}, counts)
            words = text.split(" ")
            pieces = [{"outputText": w + (" " if i < len(words) - 1 else ""), "index": 0,
                       "totalOutputTextTokenCount": None, "completionReason": None, "inputTextTokenCount": tokens_in if i == 0 else None}
                      for i, w in enumerate(words)]
            pieces[-1].update({"totalOutputTextTokenCount": tokens_out, "completionReason": "FINISH", **metrics})
        else:
            if not stream:
                return self._send(200, {"generation": text, "prompt_token_count": tokens_in,
                                        "generation_token_count": tokens_out, "stop_reason": "stop"}, counts)
            pieces = [{"generation": w + " ", "prompt_token_count": None, "generation_token_count": 1, "stop_reason": None}
                      for w in text.split(" ")]
            pieces[-1].update({"prompt_token_count": tokens_in, "generation_token_count": tokens_out, "stop_reason": "stop", **metrics})
        self._stream([event("chunk", {"bytes": base64.b64encode(json.dumps(p).encode()).decode()}) for p in pieces])
