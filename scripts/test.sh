#!/usr/bin/env bash
# Run the whole test suite against the real components (Docker engine, local base image).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export AGENTTUI_TEST_BASE_IMAGE="$(scripts/dev-docker.sh | tail -n 1)"
# The store suite also runs against PostgreSQL (R-28): a local server, a database per test.
export AGENTTUI_TEST_PG_URL="$(scripts/dev-postgres.sh | tail -n 1)"
# The whole suite includes `cdk synth` of a generated package (installs aws-cdk-lib and the
# aws-cdk CLI from the registries, about 2 minutes); AGENTTUI_TEST_CDK=0 leaves it out locally.
export AGENTTUI_TEST_CDK="${AGENTTUI_TEST_CDK:-1}"
exec .venv/bin/pytest "$@"
