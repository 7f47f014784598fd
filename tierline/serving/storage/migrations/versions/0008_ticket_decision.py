"""tickets.decision_id: the decision that opened each ticket (a foreign key, backfilled)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 10:00:00

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0008'
down_revision: Union[str, Sequence[str], None] = '0007'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

# The tables as this revision knows them (not the ORM models, which move on).
TICKETS = sa.table('tickets', sa.column('id', sa.Integer), sa.column('decision_id', sa.Integer),
                   sa.column('conversation_id', sa.String), sa.column('created_at', sa.DateTime))
DECISIONS = sa.table('decisions', sa.column('id', sa.Integer), sa.column('escalate', sa.Boolean),
                     sa.column('conversation_id', sa.String), sa.column('at', sa.DateTime))


def upgrade() -> None:
    """Retraining paired a ticket with "the last decision of its conversation at or before the
    ticket's creation": a guess by timestamp that breaks when clocks or write orders differ.
    From now on the turn that opens a ticket records its decision's id with it.

    Existing tickets are backfilled with that same guess, the conversation's last decision at
    or before the ticket's creation, kept only when that decision escalated (a ticket is
    opened by an escalating decision; a non-escalating nearest one means the opener is not
    there). The rest stay NULL, and retraining skips their labels as it did before.

    The column is added with an inline ``REFERENCES`` (``ALTER TABLE ... ADD COLUMN``), which
    SQLite supports without copying the table; a copy would have to drop ``tickets``, which
    ``escalation_labels`` references.
    """
    op.add_column('tickets', sa.Column('decision_id', sa.Integer(),
                                       sa.ForeignKey('decisions.id'), nullable=True),
                  inline_references=True)
    op.create_index('ix_tickets_decision_id', 'tickets', ['decision_id'])
    earlier = DECISIONS.alias('earlier')
    nearest = (sa.select(sa.func.max(earlier.c.id))
               .where(earlier.c.conversation_id == TICKETS.c.conversation_id,
                      earlier.c.at <= TICKETS.c.created_at)
               .correlate(TICKETS).scalar_subquery())
    opener = sa.select(DECISIONS.c.id).where(DECISIONS.c.id == nearest,
                                             DECISIONS.c.escalate.is_(True)
                                             ).correlate(TICKETS).scalar_subquery()
    op.execute(TICKETS.update().where(TICKETS.c.decision_id.is_(None)).values(decision_id=opener))


def downgrade() -> None:
    """Drop the index and the column (tickets are then paired with decisions by time again).

    A plain ``DROP COLUMN`` (SQLite 3.35+), not a batch copy: see :func:`upgrade`."""
    op.drop_index('ix_tickets_decision_id', table_name='tickets')
    op.drop_column('tickets', 'decision_id')
