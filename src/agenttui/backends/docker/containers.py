"""An agent's container as the engine sees it: its locked-down configuration, the labels that
say whose it is, and its exit read back from the engine's state.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from agenttui.backends.base import ExitInfo, RunSpec
from agenttui.backends.docker.logstream import epoch_or_none
from agenttui.backends.docker.staging import (
    AGENT_FILENAME,
    CA_FILENAME,
    JOB_PIPE,
    MOUNT_POINT,
    TLS_BUNDLE_FILENAME,
)
from agenttui.core.config import Settings
from agenttui.harness import RUNNER_FILENAME

PROJECT_LABEL = "agenttui"
NOBODY = "65534:65534"
ROOT_NAMES = ("", "root", "0")  # an image's USER that means root (empty: the default)
PASSWD_LIMIT = 1 << 20  # a bigger /etc/passwd is not read
# Where Debian, Ubuntu and Alpine keep the system CA bundle (curl, OpenSSL's tools, non-Python clients).
SYSTEM_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
# The variables Python's ssl (and httpx, aiohttp, urllib3), requests and botocore take their CAs from.
CA_VARIABLES = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "AWS_CA_BUNDLE")

# A custom image whose configuration cannot start (the user's Dockerfile, not retried).
USER_IMAGE_START_FAILURES = (
    "executable file not found",
    "no such file or directory",
    "unable to find user",
    "unable to find group",
)


def identity_labels(spec: RunSpec) -> dict[str, str]:
    """The labels that say which test attempt a container belongs to."""
    return {
        PROJECT_LABEL: "1",
        "agenttui.store": spec.store_id,
        "agenttui.test_id": str(spec.test_id),
        "agenttui.attempt": str(spec.attempt),
        **({"agenttui.attempt_mark": spec.attempt_mark} if spec.attempt_mark else {}),
    }


def container_labels(settings: Settings, spec: RunSpec) -> dict[str, str]:
    # The identity labels win: extra labels cannot disguise whose container it is.
    return {**settings.extra_labels, **spec.labels, **identity_labels(spec)}


def is_ours(info: dict[str, Any], spec: RunSpec) -> bool:
    """Whether an inspected container carries the identity labels of `spec`'s attempt."""
    labels = info.get("Config", {}).get("Labels") or {}
    return all(labels.get(key) == value for key, value in identity_labels(spec).items())


def exit_info(state: dict[str, Any]) -> ExitInfo:
    """The exit of a stopped container, from its inspect record's State."""
    return ExitInfo(
        exit_code=state.get("ExitCode"),
        oom_killed=bool(state.get("OOMKilled")),
        reason=state.get("Error") or "",
        started_at=epoch_or_none(state.get("StartedAt")),
        finished_at=epoch_or_none(state.get("FinishedAt")),
    )


def container_config(
    settings: Settings,
    spec: RunSpec,
    image: str,
    staging: Path,
    network: dict[str, Any],
    *,
    waiting_labels: dict[str, str] | None = None,
    image_user: str = "",
) -> dict[str, Any]:
    """The container of `spec`; with `waiting_labels`, a warm-pool container of its kind
    instead: no test's environment, and a runner that waits for its job (pool.py).
    `network` holds its HostConfig network entries (network.py); `image_user` is a custom
    image's USER."""
    trusts_ca = (staging / CA_FILENAME).exists()
    env = _environment(settings, spec, waiting=waiting_labels is not None, trusts_ca=trusts_ca)
    host_config = _host_config(settings, spec, staging, network)
    if (staging / TLS_BUNDLE_FILENAME).exists():
        # Its https endpoints are intercepted (network.py): every client library trusts agenttui's CA.
        env.update(dict.fromkeys(CA_VARIABLES, f"{MOUNT_POINT}/{TLS_BUNDLE_FILENAME}"))
        host_config["Mounts"].append({"Type": "bind", "Source": str(staging / TLS_BUNDLE_FILENAME),
                                      "Target": SYSTEM_BUNDLE, "ReadOnly": True})
    config: dict[str, Any] = {
        "Image": image,
        "Labels": container_labels(settings, spec) if waiting_labels is None else waiting_labels,
        "AttachStdout": True,
        "AttachStderr": True,
        "Tty": False,  # keeps stdout and stderr apart in the log stream
        "OpenStdin": False,
        "HostConfig": host_config,
    }
    # Every image alike: a read-only root, and /tmp the only place to write, capped.
    host_config["ReadonlyRootfs"] = True
    host_config["Tmpfs"] = {"/tmp": f"rw,nosuid,nodev,size={settings.scratch_mb}m,mode=1777"}
    if spec.request.dockerfile.strip():
        # The user's image runs its own CMD, as its own USER unless that is root: then as
        # nobody, like the generated images (a USER naming root otherwise is refused at start).
        if image_user.split(":", 1)[0] in ROOT_NAMES:
            config["User"] = NOBODY
            env["HOME"] = "/tmp"
    else:
        env["HOME"] = "/tmp"
        env["AGENTTUI_AGENT_PATH"] = f"{MOUNT_POINT}/{AGENT_FILENAME}"
        config["User"] = NOBODY
        config["WorkingDir"] = "/tmp"
        # Set as the entrypoint so a base image's own ENTRYPOINT/CMD cannot interfere.
        config["Entrypoint"] = ["python3", f"{MOUNT_POINT}/{RUNNER_FILENAME}"]
        config["Cmd"] = []
    config["Env"] = [f"{key}={value}" for key, value in env.items()]
    return config


def _environment(settings: Settings, spec: RunSpec, waiting: bool, trusts_ca: bool) -> dict[str, str]:
    if not waiting:
        env = dict(spec.env)
        env.setdefault("AGENTTUI_QUERY", spec.request.query)
    else:
        env = {
            "AGENTTUI_JOB_PIPE": f"{MOUNT_POINT}/{JOB_PIPE}",
            "AGENTTUI_JOB_WAIT_S": str(int(settings.warm_pool_idle_s)),
        }
    if trusts_ca:  # staged: the host pip's CA bundle and extra_ca_bundle's (host_trust.py)
        env.setdefault("SSL_CERT_FILE", f"{MOUNT_POINT}/{CA_FILENAME}")
        env.setdefault("REQUESTS_CA_BUNDLE", f"{MOUNT_POINT}/{CA_FILENAME}")
    env.update(PYTHONUNBUFFERED="1", PYTHONDONTWRITEBYTECODE="1")
    return env


def _host_config(settings: Settings, spec: RunSpec, staging: Path, network: dict[str, Any]) -> dict[str, Any]:
    limits = spec.request.limits
    memory = limits.memory_mb * 1024 * 1024
    log_file_mb = max(1, math.ceil(settings.log_max_bytes / 1_000_000))
    return {
        "NanoCpus": int(limits.cpus * 1e9),
        "Memory": memory,
        "MemorySwap": memory,  # equal to Memory: no swap
        "PidsLimit": limits.pids,
        "Init": True,  # reaps zombies and forwards signals to the agent
        "Privileged": False,
        "CapDrop": ["ALL"],
        "SecurityOpt": ["no-new-privileges:true"],
        # Egress policy (network.py): no network, the net sidecar's, or the bridge.
        **network,
        "Mounts": [
            {"Type": "bind", "Source": str(staging), "Target": MOUNT_POINT, "ReadOnly": True}
        ],
        # Bounded on disk: a flooding agent cannot fill it (the store caps what it keeps).
        "LogConfig": {
            "Type": "json-file",
            "Config": {"max-size": f"{log_file_mb}m", "max-file": "3"},
        },
    }


def root_alias(passwd: bytes, user: str) -> bool:
    """Whether `user` (an image's USER, name[:group]) is uid 0 under another name in `passwd`."""
    name = user.split(":", 1)[0]
    for line in passwd.decode("utf-8", "replace").splitlines():
        fields = line.split(":")
        if len(fields) > 2 and fields[0] == name and fields[2].strip() == "0":
            return True
    return False
