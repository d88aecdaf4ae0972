"""history, the queue's active tests and the ETA read by index, newest first

The (status) and (status, owner_uid) indexes gain the id as their last column: within one
status (and one owner's), tests come out newest first from the index, so a page of history
reads only its rows however long the history is (SQLite's indexes end with the rowid already;
PostgreSQL's did not).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

from alembic import op


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index('ix_tests_status', table_name='tests')
    op.create_index('ix_tests_status', 'tests', ['status', 'id'], unique=False)
    op.drop_index('ix_tests_status_owner', table_name='tests')
    op.create_index('ix_tests_status_owner', 'tests', ['status', 'owner_uid', 'id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_tests_status_owner', table_name='tests')
    op.create_index('ix_tests_status_owner', 'tests', ['status', 'owner_uid'], unique=False)
    op.drop_index('ix_tests_status', table_name='tests')
    op.create_index('ix_tests_status', 'tests', ['status'], unique=False)
