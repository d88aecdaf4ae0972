#!/usr/bin/env bash
# Run the whole test suite against the real components (Docker engine, local base image).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export AGENTTUI_TEST_BASE_IMAGE="$(scripts/dev-docker.sh | tail -n 1)"
exec .venv/bin/pytest "$@"
