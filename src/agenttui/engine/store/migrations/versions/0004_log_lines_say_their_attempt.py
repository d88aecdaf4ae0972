"""log lines say which attempt wrote them

A test retried after an infrastructure failure keeps the failed attempt's lines: each line now
carries its attempt, so readers can tell the attempts apart. Lines stored before have 0.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('log_lines', sa.Column('attempt', sa.Integer(), nullable=False, server_default='0'))


def downgrade() -> None:
    with op.batch_alter_table('log_lines', schema=None) as batch_op:
        batch_op.drop_column('attempt')
