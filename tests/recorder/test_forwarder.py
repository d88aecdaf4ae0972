"""The forwarder with a call sink attached: the bytes pass unchanged, each model call is recorded,
and a tunnel with no sink records nothing (real Unix sockets, a fake Ollama on loopback)."""

import asyncio
import json

from agenttui.core.domain import Egress
from agenttui.sandbox import recorder
from agenttui.sandbox.egress import NetworkPlan, Tunnel
from agenttui.sandbox.forwarder import TunnelHost
from tests.providers.fakes import FakeOllama


class Sink:
    def __init__(self):
        self.calls = []

    def add(self, call):
        self.calls.append(call)


def plan_for(port: int) -> NetworkPlan:
    tunnel = Tunnel("ollama", "0.sock", "127.0.0.2", port, "host.docker.internal", "127.0.0.1", port, "http",
                    "/api/tags", f"http://127.0.0.1:{port}", f"http://host.docker.internal:{port}")
    return NetworkPlan(Egress.PROVIDER_ONLY, (tunnel,))


def request(body: dict) -> bytes:
    data = json.dumps(body).encode()
    return b"POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(data), data)


async def exchange(path, raw: bytes) -> bytes:
    reader, writer = await asyncio.open_unix_connection(str(path))
    writer.write(raw)
    answer = await reader.read()
    writer.close()
    return answer


def test_calls_through_the_tunnel_are_recorded_and_pass_unchanged(tmp_path):
    body = {"model": "llama3.2", "messages": [{"role": "user", "content": "abc"}]}

    async def main(port):
        direct_reader, direct_writer = await asyncio.open_connection("127.0.0.1", port)
        direct_writer.write(request(body))
        direct = await direct_reader.read()
        direct_writer.close()
        sink = Sink()
        recorder.attach("t1", sink)
        host = TunnelHost(tmp_path, plan_for(port), "t1")
        await host.start()
        try:
            tunneled = await exchange(tmp_path / "0.sock", request(body))
            await asyncio.sleep(0.05)
        finally:
            await host.close()
            recorder.detach("t1", sink)
        plain = TunnelHost(tmp_path, plan_for(port), "nobody-attached")
        await plain.start()
        try:
            unrecorded = await exchange(tmp_path / "0.sock", request(body))
        finally:
            await plain.close()
        return direct, tunneled, unrecorded, sink.calls

    with FakeOllama() as fake:
        direct, tunneled, unrecorded, calls = asyncio.run(main(fake.port))
    strip = lambda b: b.split(b"\r\n\r\n", 1)[1]  # noqa: E731 (the Date header differs)
    assert strip(tunneled) == strip(direct) == strip(unrecorded)
    assert len(calls) == 1
    call = calls[0]
    assert (call.provider, call.model, call.status, call.streamed) == ("ollama", "llama3.2", 200, True)
    assert call.response == "llama3.2 says: cba"
    assert call.request == body["messages"]
