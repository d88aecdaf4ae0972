"""An agent that reaches for the Docker socket and for services on the host's loopback.

Only addresses of this very machine are ever targeted: a throwaway TCP service the test
starts on 127.0.0.1, and the engine's usual TCP ports on the host's gateway address.
"""

import json
import socket
import threading

import pytest

from .agents import PROBES_THE_HOST
from .conftest import wait_for, write_agent

pytestmark = pytest.mark.docker


class LoopbackService:
    """A TCP service bound to the host's 127.0.0.1 that counts who connects."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self.accepted += 1
            conn.close()

    def close(self):
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture
def loopback_service():
    service = LoopbackService()
    yield service
    service.close()


def test_no_docker_socket_and_the_hosts_loopback_services_are_refused(server, tmp_path, loopback_service):
    agent = write_agent(tmp_path, PROBES_THE_HOST)
    record = server.submit(agent, query=str(loopback_service.port))
    assert record["status"] == "COMPLETED", record["error"]
    report = json.loads(record["response"])
    # No engine socket is mounted: the agent cannot drive Docker.
    assert report["sockets"] == dict.fromkeys(
        ("/var/run/docker.sock", "/run/docker.sock", "/run/containerd/containerd.sock"), False
    )
    # The host's loopback service is out of reach, by every name the agent could try.
    assert set(report["service"]) == {"127.0.0.1", "localhost", "host.docker.internal"}
    assert "connected" not in report["service"].values(), report
    assert "connected" not in report["engine_tcp"].values(), report
    assert loopback_service.accepted == 0
    # The service was really listening all along: the host itself reaches it.
    with socket.create_connection(("127.0.0.1", loopback_service.port), timeout=5):
        pass
    wait_for(lambda: loopback_service.accepted == 1, 5)
    server.assert_healthy(tmp_path)
