"""logs stored in chunks: a row per append instead of a row per line

A log's consecutive lines are stored together, as the compressed JSON of their entries
(agenttui.engine.store.chunks): a log costs about its own bytes, and is read a chunk at a time.
The lines of log_lines move into log_chunks in order (each test's lines of one attempt, up to
CHUNK_LINES at a time); then log_lines goes.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

from alembic import op
import sqlalchemy as sa

from agenttui.core.wire import LogEntry
from agenttui.engine.store import chunks


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

CHUNK_LINES = 1000
ROWS_PER_PAGE = 10_000

LOG_CHUNKS = sa.table(
    'log_chunks', sa.column('test_id'), sa.column('last_seq'), sa.column('first_seq'), sa.column('attempt'),
    sa.column('data'),
)
LOG_LINES = sa.table(
    'log_lines', sa.column('test_id'), sa.column('seq'), sa.column('ts'), sa.column('stream'), sa.column('text'),
    sa.column('attempt'),
)


def upgrade() -> None:
    op.create_table(
        'log_chunks',
        sa.Column('test_id', sa.Integer(), nullable=False),
        sa.Column('last_seq', sa.Integer(), nullable=False),
        sa.Column('first_seq', sa.Integer(), nullable=False),
        sa.Column('attempt', sa.Integer(), nullable=False),
        sa.Column('data', sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint('test_id', 'last_seq'),
    )
    bind = op.get_bind()
    columns = (LOG_LINES.c.test_id, LOG_LINES.c.seq, LOG_LINES.c.ts, LOG_LINES.c.stream, LOG_LINES.c.text,
               LOG_LINES.c.attempt)
    run: list[LogEntry] = []
    after = (-1, -1)  # read by key, a page at a time: a store's size never has to fit in memory
    while rows := bind.execute(
        sa.select(*columns).where(sa.tuple_(LOG_LINES.c.test_id, LOG_LINES.c.seq) > sa.tuple_(*after))
        .order_by(LOG_LINES.c.test_id, LOG_LINES.c.seq).limit(ROWS_PER_PAGE)
    ).fetchall():
        for row in rows:
            entry = LogEntry(*row)
            if run and (entry.test_id != run[0].test_id or entry.attempt != run[0].attempt or len(run) == CHUNK_LINES):
                _store(bind, run)
                run = []
            run.append(entry)
        after = (rows[-1][0], rows[-1][1])
    if run:
        _store(bind, run)
    op.drop_table('log_lines')


def _store(bind: sa.engine.Connection, run: list[LogEntry]) -> None:
    bind.execute(LOG_CHUNKS.insert().values(
        test_id=run[0].test_id, last_seq=run[-1].seq, first_seq=run[0].seq, attempt=run[0].attempt,
        data=chunks.pack(run),
    ))


def downgrade() -> None:
    op.create_table(
        'log_lines',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('test_id', sa.Integer(), nullable=False),
        sa.Column('seq', sa.Integer(), nullable=False),
        sa.Column('ts', sa.Float(), nullable=False),
        sa.Column('stream', sa.String(), nullable=False),
        sa.Column('text', sa.String(), nullable=False),
        sa.Column('attempt', sa.Integer(), nullable=False, server_default='0'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ux_log_lines_test_seq', 'log_lines', ['test_id', 'seq'], unique=True)
    bind = op.get_bind()
    stored = bind.execute(sa.select(LOG_CHUNKS.c.data).order_by(LOG_CHUNKS.c.test_id, LOG_CHUNKS.c.last_seq))
    for (data,) in stored.fetchall():
        entries = chunks.unpack(bytes(data))
        bind.execute(LOG_LINES.insert(), [
            dict(test_id=e.test_id, seq=e.seq, ts=e.ts, stream=e.stream, text=e.text, attempt=e.attempt)
            for e in entries
        ])
    op.drop_table('log_chunks')
