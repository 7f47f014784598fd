"""outbound_messages: partial indexes that make the sender's claim fast without statistics

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 12:00:00

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0006'
down_revision: Union[str, Sequence[str], None] = '0005'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

PENDING = sa.text("status = 'pending'")
IN_FLIGHT = sa.text("status IN ('pending', 'sending')")


def upgrade() -> None:
    """With 15,152 outbox rows and no ANALYZE yet (a backlog written after an outage, before
    autovacuum came round), PostgreSQL took 4.3-7.8 s per claim: it expected one due row, sorted
    all of them, and checked "no earlier row of the conversation in flight" per row with a bitmap
    of every pending row: quadratic. These two indexes hold only rows still to send (small,
    whatever the table's history); with them (and the claim's ``OFFSET 0``, see
    ``tierline.serving.queue.sender``) every plan seen is at worst one index probe per due row (40-70 ms for
    those 15,152 rows), and an early stop after the claim's ``LIMIT`` once analysed (3-8 ms):

    * ``ix_outbound_pending (id, next_attempt_at) WHERE status = 'pending'``: the due rows in
      the claim's order, so its ``LIMIT`` stops the scan early (no sort of the whole backlog);
      ``next_attempt_at`` is read from the index, not the table;
    * ``ix_outbound_in_flight (conversation_id, id) WHERE status IN ('pending', 'sending')``:
      a conversation's first row still in flight, one probe (the claim compares each row to it).

    Built inside the start-up migration's transaction (not ``CONCURRENTLY``): both predicates
    cover only unsent rows, so the build reads the table once and writes little.
    """
    op.create_index('ix_outbound_pending', 'outbound_messages', ['id', 'next_attempt_at'],
                    postgresql_where=PENDING, sqlite_where=PENDING)
    op.create_index('ix_outbound_in_flight', 'outbound_messages', ['conversation_id', 'id'],
                    postgresql_where=IN_FLIGHT, sqlite_where=IN_FLIGHT)


def downgrade() -> None:
    """Drop both indexes (the claim is then fast only once the table has statistics)."""
    op.drop_index('ix_outbound_in_flight', table_name='outbound_messages')
    op.drop_index('ix_outbound_pending', table_name='outbound_messages')
