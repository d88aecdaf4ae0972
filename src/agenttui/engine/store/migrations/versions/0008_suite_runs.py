"""suite runs: a run of a suite, its case × repeat → test rows, and each suite's baseline

Three new tables (docs/suites.md). A run's id is never reused (AUTOINCREMENT on SQLite; a
PostgreSQL sequence never goes back). Stores written before have no runs.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05
"""

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    text = sqlmodel.sql.sqltypes.AutoString()
    op.create_table(
        'suite_runs',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', text, nullable=False),
        sa.Column('suite_digest', text, nullable=False),
        sa.Column('agent_digest', text, nullable=False),
        sa.Column('created_at', sa.Float(), nullable=False),
        sa.Column('owner_uid', sa.Integer(), nullable=False),
        sa.Column('owner_name', text, nullable=False),
        sa.Column('repeat', sa.Integer(), nullable=False),
        sa.Column('suite_json', text, nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sqlite_autoincrement=True,
    )
    op.create_index('ix_suite_runs_name', 'suite_runs', ['name', 'id'])
    op.create_index('ix_suite_runs_owner_uid', 'suite_runs', ['owner_uid'])
    op.create_table(
        'suite_tests',
        sa.Column('run_id', sa.Integer(), nullable=False),
        sa.Column('case_id', text, nullable=False),
        sa.Column('repeat', sa.Integer(), nullable=False),
        sa.Column('test_id', sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint('run_id', 'case_id', 'repeat'),
    )
    op.create_table(
        'suite_baselines',
        sa.Column('name', text, nullable=False),
        sa.Column('run_id', sa.Integer(), nullable=False),
        sa.Column('blessed_at', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('name'),
    )


def downgrade() -> None:
    op.drop_table('suite_baselines')
    op.drop_table('suite_tests')
    op.drop_index('ix_suite_runs_owner_uid', table_name='suite_runs')
    op.drop_index('ix_suite_runs_name', table_name='suite_runs')
    op.drop_table('suite_runs')
