"""baseline: the first released schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-21
"""

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table('claims',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('test_id', sa.Integer(), nullable=False),
    sa.Column('owner', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('active_after', sa.Integer(), nullable=False),
    sa.Column('cap', sa.Integer(), nullable=False),
    sa.Column('ts', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('log_lines',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('test_id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('ts', sa.Float(), nullable=False),
    sa.Column('stream', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('text', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('log_lines', schema=None) as batch_op:
        batch_op.create_index('ux_log_lines_test_seq', ['test_id', 'seq'], unique=True)

    op.create_table('packages',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('test_id', sa.Integer(), nullable=False),
    sa.Column('owner_uid', sa.Integer(), nullable=False),
    sa.Column('path', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.Column('s3_key', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('url_expires_at', sa.Float(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('packages', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_packages_test_id'), ['test_id'], unique=False)

    op.create_table('store_meta',
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('value', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.PrimaryKeyConstraint('key')
    )
    op.create_table('test_secrets',
    sa.Column('test_id', sa.Integer(), nullable=False),
    sa.Column('sealed', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.PrimaryKeyConstraint('test_id')
    )
    op.create_table('tests',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('request_json', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('query', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('priority', sa.Integer(), nullable=False),
    sa.Column('owner_uid', sa.Integer(), nullable=False),
    sa.Column('owner_name', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('parent_id', sa.Integer(), nullable=True),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('backend', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('handle', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('image', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('log_cursor', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('lease_owner', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('lease_expires_at', sa.Float(), nullable=True),
    sa.Column('cancel_requested', sa.Boolean(), nullable=False),
    sa.Column('cancel_requested_at', sa.Float(), nullable=True),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.Column('queued_at', sa.Float(), nullable=True),
    sa.Column('claimed_at', sa.Float(), nullable=True),
    sa.Column('running_at', sa.Float(), nullable=True),
    sa.Column('finished_at', sa.Float(), nullable=True),
    sa.Column('deadline_at', sa.Float(), nullable=True),
    sa.Column('next_attempt_at', sa.Float(), nullable=True),
    sa.Column('exit_code', sa.Integer(), nullable=True),
    sa.Column('oom_killed', sa.Boolean(), nullable=False),
    sa.Column('failure_kind', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('error', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('response', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('result_json', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('result_nonce', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('metrics_json', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('log_seq', sa.Integer(), nullable=False),
    sa.Column('log_bytes', sa.Integer(), nullable=False),
    sa.Column('log_truncated', sa.Boolean(), nullable=False),
    sa.Column('updated_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('tests', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_tests_lease_owner'), ['lease_owner'], unique=False)
        batch_op.create_index(batch_op.f('ix_tests_owner_uid'), ['owner_uid'], unique=False)
        batch_op.create_index(batch_op.f('ix_tests_parent_id'), ['parent_id'], unique=False)
        batch_op.create_index('ix_tests_queue', ['status', 'priority', 'queued_at', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_tests_status'), ['status'], unique=False)




def downgrade() -> None:

    with op.batch_alter_table('tests', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tests_status'))
        batch_op.drop_index('ix_tests_queue')
        batch_op.drop_index(batch_op.f('ix_tests_parent_id'))
        batch_op.drop_index(batch_op.f('ix_tests_owner_uid'))
        batch_op.drop_index(batch_op.f('ix_tests_lease_owner'))

    op.drop_table('tests')
    op.drop_table('test_secrets')
    op.drop_table('store_meta')
    with op.batch_alter_table('packages', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_packages_test_id'))

    op.drop_table('packages')
    with op.batch_alter_table('log_lines', schema=None) as batch_op:
        batch_op.drop_index('ux_log_lines_test_seq')

    op.drop_table('log_lines')
    op.drop_table('claims')

