"""test ids are never reused: AUTOINCREMENT on SQLite's tests table

SQLite's plain INTEGER PRIMARY KEY gives the highest deleted id again; AUTOINCREMENT keeps
the highest id ever given (sqlite_sequence). A test's id names its containers, so a reused id
could meet an earlier test's container. PostgreSQL's sequences never go back: nothing to do.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

from alembic import op


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    # SQLite cannot alter a key: the table is rebuilt (rows, indexes and ids kept).
    with op.batch_alter_table('tests', recreate='always', table_kwargs={'sqlite_autoincrement': True}):
        pass


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table('tests', recreate='always', table_kwargs={'sqlite_autoincrement': False}):
        pass
