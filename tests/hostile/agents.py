"""The hostile agents: each does one bad thing an untrusted, unfinished agent may do.

Shared by the one-behaviour tests and by the "ten at once" test.
"""

FORK_BOMB = """
import os

def run(query):
    while True:  # every copy forks forever: only the PID limit stops it
        os.fork()
"""

MEMORY_BOMB = """
def run(query):
    hog = []
    while True:  # 64 MB a step: dead before a single stats sample
        hog.append(b"\\x01" * (64 << 20))
"""

CPU_SPIN = """
import os

def run(query):
    print("spinning", flush=True)
    if os.fork() == 0:  # a spinning child too
        while True:
            pass
    while True:
        pass
"""

IGNORES_SIGTERM = """
import signal, subprocess, sys, time

def run(query):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    subprocess.Popen([sys.executable, "-c",
                      "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(3600)"])
    print("ignoring SIGTERM", flush=True)
    while True:
        time.sleep(0.1)
"""


def log_flood(total_bytes: int) -> str:
    """Lines of 16,000 chars written 1 MB at a time (large writes: the fastest honest flood)."""
    return f"""
import os, time

def run(query):
    block = (b"x" * 16000 + b"\\n") * 64
    written = 0
    started = time.time()
    while written < {total_bytes}:
        os.write(1, block)
        written += len(block)
    return "flooded %d bytes in %.1f s" % (written, time.time() - started)
"""


LONG_LINE_PREFIX = "start of a long line "
LONG_LINE_MB = 50
LONG_LINE = f"""
import os

def run(query):
    os.write(1, {LONG_LINE_PREFIX!r}.encode())
    chunk = b"y" * (1 << 20)
    for _ in range({LONG_LINE_MB}):  # one line, no newline
        os.write(1, chunk)
    return "survived"
"""

JUNK_OUTPUT = """
import sys

def run(query):
    out = sys.stdout.buffer
    out.write(b"bad utf8: \\xff\\xfe \\xc3\\x28 \\xed\\xa0\\x80 \\xf0\\x28\\x8c\\x28 end\\n")
    out.write(b"nul:\\x00: bell:\\x07: bs:\\x08: del:\\x7f:\\n")
    out.write(b"clear:\\x1b[2J\\x1b[H home\\n")
    out.write(b"title:\\x1b]0;pwned\\x07 clipboard:\\x1b]52;c;cHduZWQ=\\x07\\n")
    out.write("c1 csi:\\u009b31m red\\n".encode())
    out.write(b"cr overwrite: secret\\rXXXXXX\\n")
    out.write(b"alt screen:\\x1b[?1049h hide cursor:\\x1b[?25l\\n")
    out.flush()
    sys.stderr.buffer.write(b"stderr \\x1b[31mred\\x1b[0m \\xff\\n")
    sys.stderr.flush()
    return "response \\x1b[2J\\x1b]0;t\\x07 \\u009b done"
"""

LEAVES_CHILDREN = """
import os, subprocess, sys, time

def zombies():
    found = 0
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open("/proc/%s/stat" % pid) as f:
                    state = f.read().rsplit(")", 1)[1].split()[0]
            except (OSError, IndexError):
                continue
            found += state == "Z"
    return found

def run(query):
    # 20 orphans: each child forks a grandchild and exits at once; the grandchildren,
    # re-parented to PID 1, exit half a second later and must be reaped by it.
    for _ in range(20):
        pid = os.fork()
        if pid == 0:
            if os.fork() == 0:
                time.sleep(0.5)
                os._exit(0)
            os._exit(0)
        os.waitpid(pid, 0)
    # Daemons in their own sessions, deaf to SIGTERM/SIGHUP, meant to outlive the agent.
    for _ in range(5):
        subprocess.Popen([sys.executable, "-c",
                          "import signal, time\\n"
                          "signal.signal(signal.SIGTERM, signal.SIG_IGN)\\n"
                          "signal.signal(signal.SIGHUP, signal.SIG_IGN)\\n"
                          "time.sleep(3600)\\n"], start_new_session=True)
    time.sleep(1.5)
    count = zombies()
    print("orphans gone, zombies inside: %d" % count, flush=True)
    time.sleep(3)  # a window for the host to look (docker top)
    return "zombies=%d" % count
"""

FILLS_THE_DISK = """
import errno, json, os, time

TARGETS = ("/tmp/fill", "/fill", "/var/tmp/fill", "/home/fill", "/agenttui/fill", "/etc/hosts", "/dev/shm/fill")

def fill(path, limit_mb):
    written = 0
    try:
        with open(path, "ab") as f:  # append: never truncate an existing file
            chunk = b"\\0" * (1 << 20)
            while written < limit_mb:
                f.write(chunk)
                f.flush()
                written += 1
        return {"written_mb": written, "error": None}
    except OSError as exc:
        return {"written_mb": written, "error": errno.errorcode.get(exc.errno, str(exc.errno))}

def run(query):
    report = {target: fill(target, 1024) for target in TARGETS}  # try 1 GB everywhere
    report["mounts"] = {fields[1]: fields[2] for fields in (l.split() for l in open("/proc/mounts"))
                        if fields[1] in ("/", "/tmp", "/dev/shm", "/agenttui")}
    print("filled", flush=True)
    time.sleep(float(query))  # a window for the host to look at the container
    return json.dumps(report)
"""

PROBES_THE_HOST = """
import json, os, socket

def attempt(host, port):
    try:
        with socket.create_connection((host, port), timeout=3) as s:
            s.sendall(b"hello from the container\\n")
            return "connected"
    except OSError as exc:
        return type(exc).__name__

def run(query):
    port = int(query)
    report = {"sockets": {p: os.path.exists(p) for p in
                          ("/var/run/docker.sock", "/run/docker.sock", "/run/containerd/containerd.sock")}}
    # Only addresses of this very machine: its loopback service, and the engine's ports.
    report["service"] = {host: attempt(host, port) for host in ("127.0.0.1", "localhost", "host.docker.internal")}
    report["engine_tcp"] = {str(p): attempt("host.docker.internal", p) for p in (2375, 2376)}
    return json.dumps(report)
"""
