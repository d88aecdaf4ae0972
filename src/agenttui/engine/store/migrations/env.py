"""Alembic environment: migrations run on the connection Store.open hands over."""

from alembic import context
from sqlmodel import SQLModel

import agenttui.engine.store.tables  # noqa: F401  (registers the tables on SQLModel.metadata)

config = context.config
connection = config.attributes["connection"]
context.configure(connection=connection, target_metadata=SQLModel.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
