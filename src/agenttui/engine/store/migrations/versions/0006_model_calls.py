"""model calls: what a test's agent asked its model and got (the recorder, docs/recorder.md)

A new table, one row a call (or a connection the recorder could not read), keyed by test and seq.
Stores written before have no calls.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    text = sqlmodel.sql.sqltypes.AutoString()
    op.create_table(
        'model_calls',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('test_id', sa.Integer(), nullable=False),
        sa.Column('seq', sa.Integer(), nullable=False),
        sa.Column('attempt', sa.Integer(), nullable=False),
        sa.Column('kind', text, nullable=False),
        sa.Column('provider', text, nullable=False),
        sa.Column('method', text, nullable=True),
        sa.Column('path', text, nullable=True),
        sa.Column('model', text, nullable=True),
        sa.Column('status', sa.Integer(), nullable=True),
        sa.Column('streamed', sa.Boolean(), nullable=False),
        sa.Column('started_at', sa.Float(), nullable=False),
        sa.Column('first_byte_s', sa.Float(), nullable=True),
        sa.Column('ended_at', sa.Float(), nullable=False),
        sa.Column('tokens_in', sa.Integer(), nullable=True),
        sa.Column('tokens_out', sa.Integer(), nullable=True),
        sa.Column('cost_usd', sa.Float(), nullable=True),
        sa.Column('tool_calls_json', text, nullable=True),
        sa.Column('request_text', text, nullable=True),
        sa.Column('response_text', text, nullable=True),
        sa.Column('error', text, nullable=True),
        sa.Column('bytes_up', sa.Integer(), nullable=False),
        sa.Column('bytes_down', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ux_model_calls_test_seq', 'model_calls', ['test_id', 'seq'], unique=True)


def downgrade() -> None:
    op.drop_index('ux_model_calls_test_seq', table_name='model_calls')
    op.drop_table('model_calls')
