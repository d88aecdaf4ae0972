#!/usr/bin/env bash
# Make a Docker engine answer and make sure the agenttui base image exists.
# - starts Debian's dockerd when no engine answers (installing docker.io first if needed),
#   clearing a stale pid file left by a killed daemon;
# - builds the base image locally with debootstrap when it is missing (no registry needed);
# - prints the image name as its last line.
# Usage: scripts/dev-docker.sh [IMAGE]   (default: $AGENTTUI_BASE_IMAGE or agenttui-base:bookworm)
set -euo pipefail

IMAGE="${1:-${AGENTTUI_DEV_BASE_IMAGE:-agenttui-base:bookworm}}"
DOCKERD_LOG="${DOCKERD_LOG:-/var/log/agenttui-dockerd.log}"
SUITE="${AGENTTUI_DEV_SUITE:-bookworm}"

log() { echo "dev-docker: $*" >&2; }
need_root() {
  if [ "$(id -u)" != 0 ]; then
    log "$1 needs root; run this script with sudo, or start Docker yourself and re-run."
    exit 1
  fi
}
apt_install() {
  need_root "installing $*"
  if [ -z "${_APT_UPDATED:-}" ]; then apt-get update -q >&2; _APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >&2
}

engine_answers() { timeout 10 docker info >/dev/null 2>&1; }

start_engine() {
  command -v dockerd >/dev/null 2>&1 || apt_install docker.io
  command -v docker >/dev/null 2>&1 || apt_install docker.io
  need_root "starting dockerd"
  # A daemon killed with SIGKILL leaves its pid files behind; dockerd refuses to start
  # while they name a pid, so drop them when that process is gone.
  for pidfile in /var/run/docker.pid /var/run/docker/containerd/containerd.pid; do
    if [ -f "$pidfile" ]; then
      pid=$(cat "$pidfile" 2>/dev/null || true)
      if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then
        log "removing stale $pidfile"
        rm -f "$pidfile"
      fi
    fi
  done
  log "starting dockerd (log: $DOCKERD_LOG)"
  nohup setsid dockerd >>"$DOCKERD_LOG" 2>&1 </dev/null &
  for _ in $(seq 1 60); do
    engine_answers && return 0
    sleep 1
  done
  log "dockerd did not answer within 60 s; last lines of $DOCKERD_LOG:"
  tail -n 20 "$DOCKERD_LOG" >&2 || true
  exit 1
}

build_base_image() {
  command -v debootstrap >/dev/null 2>&1 || apt_install debootstrap
  need_root "debootstrap"
  local dir
  dir=$(mktemp -d /var/tmp/agenttui-rootfs.XXXXXX)
  trap 'rm -rf "$dir"' EXIT
  log "building $IMAGE with debootstrap ($SUITE, about a minute)"
  debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
    "$SUITE" "$dir" >&2
  # Slim the image: apt lists and caches are not needed at run time.
  rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/*.bin "$dir"/var/cache/apt/archives/*.deb
  # Debian marks its Python "externally managed"; images built from this base pip-install
  # requirements system-wide, as python:3.11-slim allows.
  rm -f "$dir"/usr/lib/python3*/EXTERNALLY-MANAGED
  tar -C "$dir" -c . | docker import \
    --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' - "$IMAGE" >&2
  rm -rf "$dir"
  trap - EXIT
}

engine_answers || start_engine
docker image inspect "$IMAGE" >/dev/null 2>&1 || build_base_image
echo "$IMAGE"
