#!/usr/bin/env bash
# Set agenttui up on this machine: a venv with agenttui and its dev tools, a Docker engine,
# and a base image agents can run on. Safe to run again (it only does what is missing).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv" >&2
  "$PYTHON" -m venv .venv
fi
# Installed editable with the dev extras: the same venv runs agenttui and its tests.
if ! .venv/bin/python -c "import agenttui, pytest, moto" 2>/dev/null || [ pyproject.toml -nt .venv/.agenttui-installed ]; then
  echo "setup: installing agenttui and its dependencies into .venv" >&2
  .venv/bin/python -m pip install -q --upgrade pip >&2
  .venv/bin/python -m pip install -q -e '.[dev]' >&2
  touch .venv/.agenttui-installed
fi

image=$(scripts/dev-docker.sh | tail -n 1)

# Agents run on python:3.11-slim by default. Where no registry is reachable, use the locally
# built image instead, recorded in the user's config file (only if no base image is set).
configured=$(.venv/bin/python -c "from agenttui.core.config import load_settings; print(load_settings().base_image)")
if ! docker image inspect "$configured" >/dev/null 2>&1 && ! timeout 60 docker pull -q "$configured" >/dev/null 2>&1; then
  config=$(.venv/bin/python -c "from agenttui.core.config import config_file; print(config_file())")
  if [ -z "${AGENTTUI_BASE_IMAGE:-}" ] && ! grep -qs '^base_image' "$config"; then
    mkdir -p "$(dirname "$config")"
    echo "base_image = \"$image\"" >> "$config"
    echo "setup: $configured cannot be pulled here; using $image (set in $config)" >&2
  fi
fi
echo "setup: ready. Try: .venv/bin/agenttui --submit examples/hello_agent.py --query 'Hello'" >&2
