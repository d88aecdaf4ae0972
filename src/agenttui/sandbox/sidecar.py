"""agenttui sandbox network helper: runs in a test's net sidecar (see agenttui.sandbox.egress).

Copied into the sidecar container, so it uses the standard library only, Python 3.9-compatible
syntax, and never imports agenttui. Usage: python3 sandbox_net.py /agenttui-net/plan.json

For each tunnel of the plan it listens on (listen_host, listen_port) in the sandbox's network
namespace and carries every connection over the Unix socket <folder>/<socket>, served on the
host by agenttui's forwarder. Then it checks each endpoint through its tunnel (the preflight:
an HTTP GET of the probe path, or a TLS handshake) and reports, one JSON object per line:
  {"ready": true}  {"probe": name, "ok": bool, ...}  {"probes_done": true}
and keeps serving until the container is removed.
"""

import json
import os
import socket
import ssl
import sys
import threading
import time

MAX_CONNECTIONS = 48  # per tunnel; each connection costs two threads
MAX_PROBE_BODY = 20000


def emit(record):
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()


def pipe(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def handle(conn, path, slots):
    upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        upstream.connect(path)
        other = threading.Thread(target=pipe, args=(upstream, conn), daemon=True)
        other.start()
        pipe(conn, upstream)
        other.join()
    except OSError:
        pass
    finally:
        for sock in (conn, upstream):
            try:
                sock.close()
            except OSError:
                pass
        slots.release()


def serve(listener, path):
    slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            time.sleep(0.1)
            continue
        if not slots.acquire(False):
            conn.close()
            continue
        threading.Thread(target=handle, args=(conn, path, slots), daemon=True).start()


def probe(tunnel, timeout):
    result = {"probe": tunnel["name"], "ok": False}
    host, port = tunnel["listen_host"], tunnel["listen_port"]
    try:
        conn = socket.create_connection((host, port), timeout=timeout)
        conn.settimeout(timeout)
        if tunnel["scheme"] == "https":
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE  # only "does a TLS server answer"
            conn = context.wrap_socket(conn, server_hostname=tunnel["container_host"])
        if not tunnel.get("probe_path"):
            if tunnel["scheme"] != "https":
                # Nothing to ask: the first byte or the close tells whether the far side is there.
                conn.settimeout(0.5)
                try:
                    if conn.recv(1) == b"":
                        raise ConnectionError("the connection was closed without an answer")
                except socket.timeout:
                    pass
            result.update(ok=True, detail="answers")
            conn.close()
            return result
        request = "GET %s HTTP/1.0\r\nHost: %s:%d\r\nUser-Agent: agenttui-preflight\r\nConnection: close\r\n\r\n" % (
            tunnel["probe_path"], tunnel["container_host"], port)
        conn.sendall(request.encode("ascii"))
        data = b""
        while len(data) < MAX_PROBE_BODY + 4096:
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
        conn.close()
        if not data.startswith(b"HTTP/"):
            result["detail"] = "the connection was closed without an HTTP answer" if not data else "not an HTTP answer"
            return result
        head, _, body = data.partition(b"\r\n\r\n")
        status = head.split(b"\r\n", 1)[0].split()
        result.update(ok=True, status=int(status[1]) if len(status) > 1 and status[1].isdigit() else 0,
                      body=body[:MAX_PROBE_BODY].decode("utf-8", "replace"))
    except socket.timeout:
        result["detail"] = "no answer within %.0f s" % timeout
    except Exception as exc:  # refused, reset, TLS failure: all mean "not usable"
        result["detail"] = "%s: %s" % (type(exc).__name__, exc)
    return result


def main():
    plan_path = sys.argv[1]
    folder = os.path.dirname(plan_path)
    with open(plan_path) as handle_:
        plan = json.load(handle_)
    for tunnel in plan["tunnels"]:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((tunnel["listen_host"], tunnel["listen_port"]))
        listener.listen(64)
        path = os.path.join(folder, tunnel["socket"])
        threading.Thread(target=serve, args=(listener, path), daemon=True).start()
    emit({"ready": True})
    if plan.get("preflight"):
        for tunnel in plan["tunnels"]:
            emit(probe(tunnel, float(plan.get("timeout", 10))))
    emit({"probes_done": True})
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
