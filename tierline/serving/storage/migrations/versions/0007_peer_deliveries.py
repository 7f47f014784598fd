"""peer_deliveries: the durable outbox of ticket notifications (Slack, signed webhook) and exports
(Zendesk), one row per event and target

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-10 09:00:00

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0007'
down_revision: Union[str, Sequence[str], None] = '0006'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

PENDING = sa.text("status = 'pending'")
SENDING = sa.text("status = 'sending'")


def upgrade() -> None:
    """Notifications and Zendesk exports lived on an in-memory queue: a crash lost them. They
    are now rows written in the transaction that opens the ticket, drained like the WhatsApp
    outbox (``tierline.serving.notify.outbox``). ``idempotency_key`` (``ticket:<id>:<event>:<target>``)
    is unique: one delivery per event and target, whatever retries and re-exports happen.

    The partial indexes hold only rows still to deliver, like migration 0006's:
    ``ix_peer_deliveries_due`` serves a target's claim (due rows in id order),
    ``ix_peer_deliveries_claimed`` the requeue of claims whose lease expired.
    """
    op.create_table(
        'peer_deliveries',
        sa.Column('id', sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column('idempotency_key', sa.String(length=200), nullable=False, unique=True),
        sa.Column('ticket_id', sa.Integer(), sa.ForeignKey('tickets.id'), nullable=False,
                  index=True),
        sa.Column('event', sa.String(length=40), nullable=False),
        sa.Column('target', sa.String(length=100), nullable=False),
        sa.Column('payload', sa.JSON(), nullable=False),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('claimed_by', sa.String(length=100), nullable=True),
        sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('external_id', sa.String(length=100), nullable=True),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index('ix_peer_deliveries_due', 'peer_deliveries', ['target', 'id', 'next_attempt_at'],
                    postgresql_where=PENDING, sqlite_where=PENDING)
    op.create_index('ix_peer_deliveries_claimed', 'peer_deliveries', ['claimed_at'],
                    postgresql_where=SENDING, sqlite_where=SENDING)


def downgrade() -> None:
    """Drop the table: deliveries not yet made are lost with it."""
    op.drop_index('ix_peer_deliveries_claimed', table_name='peer_deliveries')
    op.drop_index('ix_peer_deliveries_due', table_name='peer_deliveries')
    op.drop_table('peer_deliveries')
