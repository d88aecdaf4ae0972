"""Schema upgrades on open (Alembic, scripts in migrations/)."""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy import Connection, inspect, text

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
BASELINE_REVISION = "0001"  # the first released schema
MIGRATION_LOCK_KEY = 0x61676E75  # "agnu": the advisory lock schema upgrades take on PostgreSQL


def migrate(conn: Connection) -> None:
    """Bring the schema to the newest version, saying so when it changes anything. A store
    made before versioning started has the baseline schema: it is stamped, not rebuilt."""
    from alembic import command
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    if conn.dialect.name == "postgresql":
        # Servers starting together must not run the same migration twice.
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = conn
    head = ScriptDirectory.from_config(config).get_current_head()
    current = MigrationContext.configure(conn).get_current_revision()
    if current is None and inspect(conn).has_table("tests"):
        command.stamp(config, BASELINE_REVISION)
        current = BASELINE_REVISION
    if current != head:
        if current is None:
            log.info("creating the store schema (version %s)", head)
        else:
            log.warning("upgrading the store schema from version %s to %s", current, head)
        command.upgrade(config, "head")
