#!/usr/bin/env python3
"""agenttui's generic ECS runner: fetch the test's bundle from S3, install its requirements,
run the harness, and relay its output to CloudWatch Logs (through the awslogs driver).

Standard library only, Python >= 3.9 (it runs in the runner image, see Dockerfile here).

Environment (set by agenttui's RunTask container overrides):
  AGENTTUI_BUNDLE_URL   presigned HTTPS URL of the bundle zip: agent.py, requirements.txt,
                        agenttui_harness.py and env.json (the test's environment)
  AGENTTUI_WORKDIR      where the bundle is unpacked (default /tmp/agenttui)

Log lines are limited in size on their way to CloudWatch (the awslogs driver splits a line at
16 KiB in non-blocking mode, at 256 KiB otherwise), so the harness's result record, which can
be long, is relayed as numbered base64 parts: `@@agenttui-part <i>/<n> <base64>`; agenttui
joins them back into the record. Every other byte of output passes through unchanged.

Exit codes: the harness's own (0 ok, 1 agent failed, 2 no entry point, 143 stopped), or
3 the requirements could not be installed, 4 the bundle could not be fetched or read.
"""

import base64
import io
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import zipfile

RESULT_TAG = b"@@agenttui-result"
PART_TAG = "@@agenttui-part"
PART_CHARS = 8000  # base64 characters per part: far below every splitting limit
MAX_HELD_BYTES = 64 * 1024 * 1024
EXIT_REQUIREMENTS = 3
EXIT_BUNDLE = 4
FETCH_ATTEMPTS = 5

_out = sys.stdout.buffer


def say(message):
    sys.stderr.write("[agenttui-runner] %s\n" % message)
    sys.stderr.flush()


def write(data):
    _out.write(data)
    _out.flush()


def fetch(url):
    delay = 1.0
    for attempt in range(1, FETCH_ATTEMPTS + 1):
        try:
            with urllib.request.urlopen(url, timeout=60) as response:
                return response.read()
        except Exception as exc:  # network hiccup, S3 503, ...
            if attempt == FETCH_ATTEMPTS:
                raise
            say("fetching the bundle failed (%s); retrying in %.0f s" % (exc, delay))
            time.sleep(delay)
            delay *= 2
    raise RuntimeError("unreachable")


def has_requirements(path):
    try:
        with open(path, encoding="utf-8") as handle:
            lines = [line.split("#", 1)[0].strip() for line in handle]
    except OSError:
        return False
    return any(lines)


def emit_record(line):
    """Relay one result record line, in parts when it is long."""
    text = line.rstrip(b"\r\n")
    if len(text) <= PART_CHARS:
        write(text + b"\n")
        return
    encoded = base64.b64encode(text).decode("ascii")
    parts = [encoded[i : i + PART_CHARS] for i in range(0, len(encoded), PART_CHARS)]
    for number, part in enumerate(parts, 1):
        write(("%s %d/%d %s\n" % (PART_TAG, number, len(parts), part)).encode("ascii"))


def relay(fd):
    """Copy the harness's stdout to ours as it comes, holding back only a line that may be a
    result record until it is complete."""
    at_line_start = True
    held = b""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except InterruptedError:
            continue
        if not chunk:
            break
        pos = 0
        while pos < len(chunk):
            newline = chunk.find(b"\n", pos)
            piece = chunk[pos : newline + 1] if newline >= 0 else chunk[pos:]
            pos += len(piece)
            complete = piece.endswith(b"\n")
            if at_line_start or held:
                candidate = held + piece
                head = candidate[: len(RESULT_TAG)]
                if candidate.startswith(RESULT_TAG) or (not complete and RESULT_TAG.startswith(head)):
                    if complete:
                        emit_record(candidate)
                        held = b""
                        at_line_start = True
                    elif len(candidate) > MAX_HELD_BYTES:
                        write(candidate)
                        held = b""
                        at_line_start = False
                    else:
                        held = candidate
                    continue
                held = b""
                piece = candidate
            write(piece)
            at_line_start = complete
    if held:
        if held.startswith(RESULT_TAG):
            emit_record(held)
        else:
            write(held)


def main():
    url = os.environ.get("AGENTTUI_BUNDLE_URL", "")
    workdir = os.environ.get("AGENTTUI_WORKDIR", "/tmp/agenttui")
    if not url:
        say("AGENTTUI_BUNDLE_URL is not set: this image runs tests started by agenttui")
        return EXIT_BUNDLE
    say("fetching the test bundle")
    try:
        data = fetch(url)
        with zipfile.ZipFile(io.BytesIO(data)) as bundle:
            bundle.extractall(workdir)
        with open(os.path.join(workdir, "env.json"), encoding="utf-8") as handle:
            test_env = json.load(handle)
    except Exception as exc:
        say("cannot fetch or read the bundle: %s: %s" % (type(exc).__name__, exc))
        return EXIT_BUNDLE

    env = {k: v for k, v in os.environ.items() if k != "AGENTTUI_BUNDLE_URL"}
    env.update({str(k): str(v) for k, v in test_env.items()})
    env["AGENTTUI_AGENT_PATH"] = os.path.join(workdir, "agent.py")
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.setdefault("HOME", "/tmp")

    requirements = os.path.join(workdir, "requirements.txt")
    if has_requirements(requirements):
        site = os.path.join(workdir, "site")
        say("installing requirements")
        started = time.monotonic()
        pip = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--no-input", "--disable-pip-version-check",
             "--no-warn-script-location", "--target", site, "-r", requirements],
            stdout=sys.stderr, stderr=sys.stderr, env=env,
        )
        if pip.returncode != 0:
            say("pip could not install the requirements (exit %d)" % pip.returncode)
            return EXIT_REQUIREMENTS
        say("requirements installed in %.1f s" % (time.monotonic() - started))
        env["PYTHONPATH"] = site + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")

    child = subprocess.Popen(
        [sys.executable, os.path.join(workdir, "agenttui_harness.py")],
        stdout=subprocess.PIPE, env=env, cwd=workdir,
    )

    def forward(signum, frame):
        try:
            child.send_signal(signum)
        except OSError:
            pass

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, forward)
    relay(child.stdout.fileno())
    code = child.wait()
    return 128 - code if code < 0 else code


if __name__ == "__main__":
    sys.exit(main())
