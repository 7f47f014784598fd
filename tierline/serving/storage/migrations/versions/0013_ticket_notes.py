"""ticket_notes: agents' internal notes on tickets (never sent to the customer)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-14 09:00:00

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0013'
down_revision: Union[str, Sequence[str], None] = '0012'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """A table of its own: the release before ignores it (a rolling upgrade is safe), and no
    existing row changes. One note per row, pointing at its ticket and its author."""
    op.create_table(
        'ticket_notes',
        sa.Column('id', sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column('ticket_id', sa.Integer(), sa.ForeignKey('tickets.id'), nullable=False),
        sa.Column('agent_id', sa.Integer(), sa.ForeignKey('agents.id'), nullable=False),
        sa.Column('text', sa.Text(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index('ix_ticket_notes_ticket_id', 'ticket_notes', ['ticket_id'])


def downgrade() -> None:
    """Drop the table (the notes are lost)."""
    op.drop_index('ix_ticket_notes_ticket_id', table_name='ticket_notes')
    op.drop_table('ticket_notes')
