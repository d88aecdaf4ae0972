"""indexes for the claim's per-user reads (waiting users, each user's line, last served)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from alembic import op


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('tests', schema=None) as batch_op:
        batch_op.create_index('ix_tests_status_owner', ['status', 'owner_uid'], unique=False)
        batch_op.create_index('ix_tests_owner_queue', ['owner_uid', 'status', 'priority', 'queued_at', 'id'], unique=False)
        batch_op.create_index('ix_tests_owner_claimed', ['owner_uid', 'claimed_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('tests', schema=None) as batch_op:
        batch_op.drop_index('ix_tests_owner_claimed')
        batch_op.drop_index('ix_tests_owner_queue')
        batch_op.drop_index('ix_tests_status_owner')
