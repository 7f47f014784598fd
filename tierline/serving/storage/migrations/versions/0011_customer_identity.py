"""conversations.customer_name: the customer's WhatsApp profile name (nullable)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-12 09:00:00

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0011'
down_revision: Union[str, Sequence[str], None] = '0010'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Meta names the sender of every message (``contacts[].profile.name``); the intake now
    keeps the latest name on the conversation, for the agents of its tickets' team.

    Self-contained: one nullable column, no backfill (the names of earlier messages were not
    kept; a conversation gets its name with its customer's next message). A plain ``ALTER
    TABLE ... ADD COLUMN``, which SQLite does without copying the table.
    """
    op.add_column('conversations', sa.Column('customer_name', sa.String(length=256), nullable=True))


def downgrade() -> None:
    """Drop the column (the names are lost; SQLite 3.35+ drops it in place)."""
    op.drop_column('conversations', 'customer_name')
