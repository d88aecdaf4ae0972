#!/usr/bin/env bash
# Run the whole test suite against the real components (Docker engine, local base image).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# The end-to-end tests drive the real binary in tmux and talk to the server's socket with curl;
# the suites' HTML report is opened in Debian's headless chromium.
missing=""
for tool in tmux curl chromium; do command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"; done
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing >&2
  else
    echo "test.sh: please install:$missing" >&2
  fi
fi
export AGENTTUI_TEST_BASE_IMAGE="$(scripts/dev-docker.sh | tail -n 1)"
# The store suite also runs against PostgreSQL (R-28): a local server, a database per test.
export AGENTTUI_TEST_PG_URL="$(scripts/dev-postgres.sh | tail -n 1)"
# The whole suite includes `cdk synth` of a generated package (installs aws-cdk-lib and the
# aws-cdk CLI from the registries, about 2 minutes); AGENTTUI_TEST_CDK=0 leaves it out locally.
export AGENTTUI_TEST_CDK="${AGENTTUI_TEST_CDK:-1}"
# Two workers (most tests wait on containers, builds and servers, not on a core); a test file's
# tests stay together on one worker, with its module fixtures. The tests marked `alone` (they time
# the app or watch the host's disk) run after them, one at a time. AGENTTUI_TEST_WORKERS=0: the
# whole suite in one process.
workers="${AGENTTUI_TEST_WORKERS:-2}"
if [ "$workers" = 0 ]; then
  exec .venv/bin/pytest "$@"
fi
pytest_phase() {  # pytest's exit code, with 5 (nothing selected in this phase) as success
  local code=0
  .venv/bin/pytest "$@" || code=$?
  [ "$code" = 5 ] && code=0
  return "$code"
}
status=0
pytest_phase -n "$workers" --dist loadfile -m "not alone" "$@" || status=$?
pytest_phase -m alone "$@" || status=$?
exit "$status"
