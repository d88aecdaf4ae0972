#!/usr/bin/env bash
# Make a local PostgreSQL answer on 127.0.0.1:5432 for the store tests (installing Debian's
# `postgresql` when missing), with a role that may create and drop databases.
# Prints the SQLAlchemy URL of its maintenance database as the last line.
set -euo pipefail

ROLE="${AGENTTUI_PG_ROLE:-agenttui}"
PASSWORD="${AGENTTUI_PG_PASSWORD:-agenttui}"
PORT="${AGENTTUI_PG_PORT:-5432}"
log() { echo "dev-postgres: $*" >&2; }

# A client (psql) alone is not enough: look for a server binary and a cluster.
if ! command -v pg_ctlcluster >/dev/null 2>&1 || ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 \
   || [ -z "$(ls /etc/postgresql 2>/dev/null)" ]; then
  [ "$(id -u)" = 0 ] || { log "installing postgresql needs root"; exit 1; }
  log "installing postgresql"
  apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >&2
fi

answers() { pg_isready -q -h 127.0.0.1 -p "$PORT" 2>/dev/null; }
if ! answers; then
  version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)
  if [ -z "$version" ]; then log "no PostgreSQL cluster found"; exit 1; fi
  # A server killed without a clean shutdown leaves postmaster.pid; pg_ctlcluster checks the pid.
  log "starting PostgreSQL $version"
  pg_ctlcluster "$version" main start >&2 || true
  for _ in $(seq 1 30); do answers && break; sleep 1; done
  answers || { log "PostgreSQL did not answer on 127.0.0.1:$PORT"; exit 1; }
fi

runuser -u postgres -- psql -q -p "$PORT" -v ON_ERROR_STOP=1 >/dev/null <<SQL
SET client_min_messages = warning;
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$ROLE') THEN
    CREATE ROLE $ROLE LOGIN CREATEDB PASSWORD '$PASSWORD';
  END IF;
END \$\$;
-- DROP DATABASE ... WITH (FORCE) after a test must also end an autovacuum worker busy in that
-- database, which only a member of pg_signal_backend may do.
GRANT pg_signal_backend TO $ROLE;
SQL
echo "postgresql+asyncpg://$ROLE:$PASSWORD@127.0.0.1:$PORT/postgres"
