"""TLS interception at the forwarder (real Unix sockets, real TLS on both sides, the HTTPS fake of
tests/providers/fakes.py with a CA this test makes): the CA's key is private; a call through an
https tunnel reaches the endpoint byte for byte and is recorded like plain HTTP, a stream chunk by
chunk; an endpoint whose certificate the host does not trust is refused with the fix; with no
interceptor TLS passes through and the connection is recorded as bytes and timing."""

import asyncio
import json
import ssl
import stat

from agenttui.core.domain import Egress
from agenttui.sandbox import recorder
from agenttui.sandbox.egress import NetworkPlan, Tunnel
from agenttui.sandbox.forwarder import TunnelHost
from agenttui.sandbox.interception import CertificateAuthority, Interceptor
from tests.providers.fakes import FakeOpenAI, TestCA, answer, answer_tokens, prompt_tokens

from .test_forwarder import Sink

SANDBOX_NAME = "host.docker.internal"


def https_plan(port: int) -> NetworkPlan:
    tunnel = Tunnel("openai", "0.sock", "127.0.0.2", port, SANDBOX_NAME, "127.0.0.1", port, "https",
                    "/v1/models", f"https://127.0.0.1:{port}/v1", f"https://{SANDBOX_NAME}:{port}/v1")
    return NetworkPlan(Egress.PROVIDER_ONLY, (tunnel,))


def chat(body: dict, extra: bytes = b"") -> bytes:
    data = json.dumps(body).encode()
    return (b"POST /v1/chat/completions HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n%s"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (SANDBOX_NAME.encode(), extra, len(data), data))


async def through_tunnel(path, raw: bytes, trust: ssl.SSLContext, release: bool = False) -> bytes:
    """Send `raw` over TLS through the tunnel's socket as the agent would; its answer. With
    `release`, once the stream's first event is here, POST /release through the tunnel too (the
    fake holds its last chunk until then)."""
    reader, writer = await asyncio.open_unix_connection(str(path), ssl=trust, server_hostname=SANDBOX_NAME)
    writer.write(raw)
    answer_bytes = b""
    while chunk := await reader.read(65536):
        answer_bytes += chunk
        if release and b"data: " in answer_bytes:
            release = False
            await through_tunnel(path, b"POST /v1/release HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
                                       b"Connection: close\r\n\r\n", trust)
    writer.close()
    return answer_bytes


def test_the_ca_key_is_private_and_made_once(tmp_path):
    folder = tmp_path / "state" / "tls-ca"
    first = CertificateAuthority(folder)
    pem = first.cert_pem
    assert stat.S_IMODE(first.key_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert b"PRIVATE KEY" not in pem and b"BEGIN CERTIFICATE" in pem
    assert CertificateAuthority(folder).cert_pem == pem  # another process of the server's reads the same CA
    first.server_context(SANDBOX_NAME)
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == ["ca-key.pem", "ca.pem"]


def test_an_https_call_is_read_inside_tls_and_reaches_the_endpoint_unchanged(tmp_path):
    test_ca = TestCA(tmp_path / "test-ca")
    ca = CertificateAuthority(tmp_path / "tls-ca")
    agent_trust = ssl.create_default_context(cadata=ca.cert_pem.decode())
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "abc def"}], "stream": True,
            "stream_options": {"include_usage": True}}
    signed = b"Authorization: AWS4-HMAC-SHA256 Credential=K/20260101/us-east-1/bedrock/aws4_request, Signature=ab12\r\n"

    async def main(port):
        sink = Sink()
        recorder.attach("t-https", sink)
        host = TunnelHost(tmp_path, https_plan(port), "t-https", Interceptor(ca, test_ca.cert_pem))
        await host.start()
        try:
            tunneled = await through_tunnel(tmp_path / "0.sock", chat(body, signed), agent_trust, release=True)
            await recorder.settled()
            await asyncio.sleep(0.05)
        finally:
            await host.close()
            recorder.detach("t-https", sink)
        return tunneled, sink.calls

    with FakeOpenAI(tls=test_ca, hold_last=True) as fake:
        assert fake.url.startswith("https://")
        tunneled, calls = asyncio.run(main(fake.port))
        received = fake.requests[0]
        assert fake.released_in_time == [True], "the stream's first chunk passed while the fake held its last"
    text = answer("gpt-4o-mini", "abc def")
    assert b"200 OK" in tunneled.split(b"\r\n", 1)[0] and b"data: [DONE]" in tunneled
    assert received["body"] == body and received["headers"]["Authorization"] == signed.split(b": ", 1)[1].strip().decode()
    assert received["headers"]["Host"] == SANDBOX_NAME
    assert len(calls) == 1
    call = calls[0]
    assert (call.kind, call.provider, call.model, call.status, call.streamed) == ("call", "openai", "gpt-4o-mini", 200, True)
    assert (call.tokens_in, call.tokens_out) == (prompt_tokens("abc def"), answer_tokens(text))
    assert call.response.split() == text.split()


def test_an_endpoint_the_host_does_not_trust_is_refused_with_the_fix(tmp_path):
    test_ca = TestCA(tmp_path / "test-ca")
    ca = CertificateAuthority(tmp_path / "tls-ca")

    async def main(port):
        sink = Sink()
        recorder.attach("t-untrusted", sink)
        host = TunnelHost(tmp_path, https_plan(port), "t-untrusted", Interceptor(ca, None))  # no test CA
        await host.start()
        try:
            reader, writer = await asyncio.open_unix_connection(str(tmp_path / "0.sock"))
            closed = await reader.read() == b""  # closed before any TLS: the agent's call fails at once
            writer.close()
        finally:
            await host.close()
            recorder.detach("t-untrusted", sink)
        return closed, host.last_error, sink.calls

    with FakeOpenAI(tls=test_ca) as fake:
        closed, errors, calls = asyncio.run(main(fake.port))
    assert closed
    assert "not trusted" in errors["openai"] and "extra_ca_bundle" in errors["openai"]
    assert [(c.kind, "extra_ca_bundle" in (c.error or "")) for c in calls] == [("connection", True)]


def test_without_interception_tls_passes_through_as_bytes_and_timing(tmp_path):
    test_ca = TestCA(tmp_path / "test-ca")
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "abc"}]}

    async def main(port):
        sink = Sink()
        recorder.attach("t-plain", sink)
        host = TunnelHost(tmp_path, https_plan(port), "t-plain")
        await host.start()
        try:
            tunneled = await through_tunnel(tmp_path / "0.sock", chat(body), test_ca.client_context())
            await asyncio.sleep(0.05)
        finally:
            await host.close()
            recorder.detach("t-plain", sink)
        return tunneled, sink.calls

    with FakeOpenAI(tls=test_ca) as fake:
        tunneled, calls = asyncio.run(main(fake.port))
    assert b"gpt-4o-mini says: cba" in tunneled  # the endpoint's own certificate, end to end
    assert len(calls) == 1
    call = calls[0]
    assert (call.kind, call.model, call.tokens_in) == ("connection", None, None)
    assert call.bytes_up > len(chat(body)) and call.bytes_down > 0 and call.ended_at >= call.started_at
    assert call.first_byte_at is not None


def test_only_a_test_with_an_https_endpoint_is_staged_the_bundle_and_its_container_trusts_it(tmp_path):
    from agenttui.backends.base import RunSpec
    from agenttui.backends.docker.containers import container_config
    from agenttui.backends.docker.network import SandboxNetwork, interception_folder
    from agenttui.backends.docker.staging import MOUNT_POINT, TLS_BUNDLE_FILENAME, Staging
    from agenttui.core.config import load_settings
    from agenttui.core.domain import ProviderConfig, TestRequest
    from agenttui.core.providers import endpoints
    from agenttui.sandbox.egress import plan_network

    def spec_for(base_url: str, test_id: int) -> RunSpec:
        config = ProviderConfig(name="openai", model_id="m", options={"OPENAI_BASE_URL": base_url})
        plan, _ = plan_network(Egress.PROVIDER_ONLY, endpoints(config))
        request = TestRequest.parse(agent_code="def run(q):\n    return q\n", query="q", provider=config)
        return RunSpec(test_id=test_id, attempt=1, store_id="s" * 32, request=request, env={}, network=plan)

    settings = load_settings()
    staging, network = Staging(settings), SandboxNetwork(None, settings)  # no engine: nothing is started
    secure, plain = spec_for("https://127.0.0.1:8443/v1", 1), spec_for("http://127.0.0.1:8000/v1", 2)
    secure_folder = staging.stage(secure, network.tls_bundle(secure))
    plain_folder = staging.stage(plain, network.tls_bundle(plain))
    ca_pem = (interception_folder() / "ca.pem").read_bytes()
    bundle = (secure_folder / TLS_BUNDLE_FILENAME).read_bytes()
    assert bundle.endswith(ca_pem) and b"PRIVATE KEY" not in bundle
    assert stat.S_IMODE((secure_folder / TLS_BUNDLE_FILENAME).stat().st_mode) & 0o022 == 0  # nobody else writes it
    assert not (plain_folder / TLS_BUNDLE_FILENAME).exists()
    assert stat.S_IMODE((interception_folder() / "ca-key.pem").stat().st_mode) == 0o600
    assert not str(interception_folder()).startswith(str(settings.staging_dir))

    secure_config = container_config(settings, secure, "image", secure_folder, {})
    env = dict(item.split("=", 1) for item in secure_config["Env"])
    assert {env[name] for name in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "AWS_CA_BUNDLE")} == {
        f"{MOUNT_POINT}/{TLS_BUNDLE_FILENAME}"}
    mounts = secure_config["HostConfig"]["Mounts"]
    assert {(m["Source"], m["Target"], m["ReadOnly"]) for m in mounts} == {
        (str(secure_folder), MOUNT_POINT, True),
        (str(secure_folder / TLS_BUNDLE_FILENAME), "/etc/ssl/certs/ca-certificates.crt", True)}
    plain_config = container_config(settings, plain, "image", plain_folder, {})
    assert "AWS_CA_BUNDLE" not in " ".join(plain_config["Env"]) and len(plain_config["HostConfig"]["Mounts"]) == 1

    off = SandboxNetwork(None, load_settings(tls_interception=False))
    assert off.tls_bundle(secure) is None and off.interceptor is None
