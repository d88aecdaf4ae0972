"""issue 14, point 4: a client trusts only a server that is who it must be.

Another user who pre-creates the victim's runtime folder (`/tmp/agenttui-<uid>`, guessable), or
gets a socket of theirs where the victim's server should be, or owns a shared socket's folder, is
sent nothing; a pid in a forged health answer is never signalled; a tunnel's socket lets in its
sidecar's user alone. Real users (useradd), real sockets, a forged server run by the attacker.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from .unix_users import AGENTTUI, unix_users, user_env  # noqa: F401  (unix_users is a fixture)

# The attacker's server: answers every request with a health whose pid is the victim's process
# and whose build differs (the trigger for "replace your outdated personal server"), and notes
# each request line in its record.
FORGED_SERVER = r"""
import json, os, socket, sys
path, record, pid = sys.argv[1], sys.argv[2], int(sys.argv[3])
server = socket.socket(socket.AF_UNIX)
server.bind(path)
os.chmod(path, 0o777)
server.listen(16)
health = json.dumps({"ok": True, "version": "0", "build": "forged", "pid": pid}).encode()
while True:
    conn, _ = server.accept()
    conn.settimeout(2)
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
    except OSError:
        pass
    if data:
        with open(record, "ab") as out:
            out.write(data.split(b"\r\n", 1)[0] + b"\n")
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
        conn.sendall(head + b"Content-Length: %d\r\n\r\n" % len(health) + health)
    conn.close()
"""


@pytest.fixture
def attack(unix_users, tmp_path):  # noqa: F811
    """A victim with a process of theirs asleep, and an attacker who can serve forged sockets."""
    victim, attacker = unix_users.user("vic"), unix_users.user("mal")
    sleeper = unix_users.start(victim, ["sleep", "300"])
    record = Path(attacker.pw_dir) / "requests.log"

    def serve(socket_path: Path) -> Path:
        forged = [sys.executable, "-c", FORGED_SERVER, str(socket_path), str(record), str(sleeper.pid)]
        unix_users.start(attacker, forged)
        deadline = time.monotonic() + 10
        while not socket_path.exists():
            assert time.monotonic() < deadline, "the forged server did not start"
            time.sleep(0.05)
        return socket_path

    def victim_runs(*args: str, **env: str) -> subprocess.CompletedProcess:
        agent = Path(victim.pw_dir) / "agent.py"
        agent.write_text("def run(q):\n    return q\n")
        os.chown(agent, victim.pw_uid, victim.pw_gid)
        return unix_users.run(victim, [*AGENTTUI, *args], user_env(victim, AGENTTUI_BACKEND="noop", **env),
                              cwd=victim.pw_dir, timeout=60)

    lair = Path(f"/tmp/att-lair-{attacker.pw_name}")  # in /tmp: its sockets can be moved to the victim's
    yield SimpleNamespace(
        victim=victim, attacker=attacker, sleeper=sleeper, record=record, serve=serve, victim_runs=victim_runs,
        lair=lair, as_attacker=lambda command: unix_users.run(attacker, command, os.environ.copy(), check=True),
    )
    subprocess.run(["rm", "-rf", f"/tmp/agenttui-{victim.pw_uid}", str(lair)])


def _untouched(attack) -> None:
    time.sleep(0.3)  # a SIGTERM sent by the client would have landed by now
    assert attack.sleeper.poll() is None, "the victim's own client signalled a pid the forged server gave it"
    sent = attack.record.read_text() if attack.record.exists() else ""
    assert sent == "", f"the client sent the forged server: {sent}"


@pytest.mark.parametrize("mode", ["777", "755"])
def test_a_runtime_folder_another_user_made_is_refused(attack, mode):
    folder = Path(f"/tmp/agenttui-{attack.victim.pw_uid}")
    attack.as_attacker(["mkdir", "-m", mode, str(folder)])
    attack.serve(folder / "agenttui.sock")

    queue = attack.victim_runs("queue", "--json")
    _untouched(attack)

    assert queue.returncode == 2, queue.stdout + queue.stderr
    assert f"the runtime folder {folder} belongs to {attack.attacker.pw_name}" in queue.stderr
    assert "remove it" in queue.stderr.lower() and "XDG_RUNTIME_DIR" in queue.stderr
    assert "Traceback" not in queue.stderr


def test_a_socket_in_the_victims_own_folder_served_by_another_user_is_refused(attack, tmp_path):
    # The victim's runtime folder is theirs (0700), but the server behind the socket in it is
    # the attacker's: only the kernel's peer credentials can tell.
    runtime = Path(f"/tmp/agenttui-{attack.victim.pw_uid}")
    runtime.mkdir(mode=0o700)
    os.chown(runtime, attack.victim.pw_uid, attack.victim.pw_gid)
    attack.as_attacker(["mkdir", str(attack.lair)])
    forged = attack.serve(attack.lair / "s.sock")
    placed = runtime / "agenttui.sock"
    os.rename(forged, placed)  # a bound socket keeps its listener when moved
    os.lchown(placed, attack.victim.pw_uid, attack.victim.pw_gid)

    queue = attack.victim_runs("queue", "--json")
    _untouched(attack)

    assert queue.returncode == 2, queue.stdout + queue.stderr
    assert f"is served by {attack.attacker.pw_name} (uid {attack.attacker.pw_uid}), not by you" in queue.stderr


def test_a_shared_socket_in_a_folder_another_user_owns_is_refused(attack):
    attack.as_attacker(["mkdir", "-m", "755", str(attack.lair)])
    socket_path = attack.serve(attack.lair / "agenttui.sock")

    submit = attack.victim_runs("submit", "agent.py", "--query", "my secret question", "--no-wait",
                                AGENTTUI_SOCKET_PATH=str(socket_path))
    _untouched(attack)

    assert submit.returncode == 2, submit.stdout + submit.stderr
    assert f"{attack.lair} belongs to {attack.attacker.pw_name} (uid {attack.attacker.pw_uid}) in /tmp" in submit.stderr


def test_only_the_servers_own_user_or_an_admin_may_stop_it(shared_server, unix_users):  # noqa: F811
    curl = shared_server(backend="noop")
    other = unix_users.user("oth")
    status, body = curl(other.pw_name, "POST", "/shutdown")
    assert status == 403 and body["kind"] == "access_denied", body
    assert curl(other.pw_name, "GET", "/health")[0] == 200  # still serving
    status, _ = curl("root", "POST", "/shutdown")
    assert status == 200
    deadline = time.monotonic() + 15
    while curl.socket_path.exists():
        assert time.monotonic() < deadline, "the server did not stop when its own user asked"
        time.sleep(0.05)


TUNNEL_MODES = r"""
import asyncio, json, os, sys
from pathlib import Path
from agenttui.core.domain import Egress
from agenttui.sandbox.egress import NetworkPlan, Tunnel
from agenttui.sandbox.forwarder import TunnelHost

async def main(folder):
    tunnel = Tunnel("ollama", "ollama.sock", "127.0.0.1", 11434, "ollama", "127.0.0.1", 9, "http", None,
                    "http://127.0.0.1:9", "http://ollama:11434")
    host = TunnelHost(folder, NetworkPlan(Egress.PROVIDER_ONLY, (tunnel,)))
    await host.start()
    info = os.stat(folder / "ollama.sock")
    print(json.dumps({"uid": info.st_uid, "gid": info.st_gid, "mode": info.st_mode & 0o7777}))
    await host.close()

asyncio.run(main(Path(sys.argv[1])))
"""


def _tunnel_socket(unix_users, user, folder: Path) -> dict:  # noqa: F811
    command = [sys.executable, "-c", TUNNEL_MODES, str(folder)]
    done = unix_users.run(user, command, os.environ.copy()) if user else subprocess.run(
        command, capture_output=True, text=True, timeout=60, umask=0o022)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_tunnel_sockets_let_in_the_sidecars_user_alone(unix_users, tmp_path):  # noqa: F811
    nobody = 65534
    # A root server gives each socket to nobody, the user its sidecar runs as.
    as_root = _tunnel_socket(unix_users, None, tmp_path)
    assert as_root == {"uid": nobody, "gid": nobody, "mode": 0o600}
    # A service user cannot give it away: it keeps it, and its sidecar runs as that user.
    service = unix_users.user("svc")
    folder = Path(service.pw_dir) / "net"
    folder.mkdir()
    os.chown(folder, service.pw_uid, service.pw_gid)
    as_service = _tunnel_socket(unix_users, service, folder)
    assert as_service == {"uid": service.pw_uid, "gid": service.pw_gid, "mode": 0o600}
    from agenttui.sandbox.forwarder import sidecar_user

    assert sidecar_user() == (nobody, nobody)  # the sidecar's "User" (network.py) for this root process



MODEL_CALLER = '''
import json, os, urllib.request

def run(query):
    body = json.dumps({"model": os.environ["MODEL_ID"], "messages": [{"role": "user", "content": query}]}).encode()
    request = urllib.request.Request(os.environ["OPENAI_BASE_URL"] + "/chat/completions", body, {
        "Content-Type": "application/json", "Authorization": "Bearer " + os.environ["OPENAI_API_KEY"]})
    return json.loads(urllib.request.urlopen(request, timeout=20).read())["choices"][0]["message"]["content"]
'''


@pytest.mark.docker
def test_a_service_users_sandbox_reaches_its_model_through_its_own_tunnel(unix_users):  # noqa: F811
    from ..providers.fakes import FakeOpenAI

    # Not root: the tunnel's socket stays the service user's (0600) and its sidecar runs as it.
    service = unix_users.user("svc", "docker")
    home = Path(service.pw_dir)
    (home / "agent.py").write_text(MODEL_CALLER)
    socket_path = home / "agenttui.sock"
    env = user_env(service, AGENTTUI_SOCKET_PATH=str(socket_path), OPENAI_API_KEY="sk-tunnel-" + "y" * 20)
    try:
        unix_users.serve(service, socket_path, env)
        with FakeOpenAI(api_key=env["OPENAI_API_KEY"]) as endpoint:
            submit = unix_users.run(service, [
                *AGENTTUI, "submit", "agent.py", "--query", "through the tunnel", "--provider", "openai", "--model",
                "m", "--option", f"OPENAI_BASE_URL={endpoint.url}/v1", "--egress", "provider-only", "--json",
            ], env, cwd=home, timeout=180)
        assert submit.returncode == 0, submit.stdout + submit.stderr
        assert endpoint.requests, "the model endpoint was never reached"
    finally:
        unix_users.cleanup()
        subprocess.run(["rm", "-rf", f"/tmp/agenttui-{service.pw_uid}"])
