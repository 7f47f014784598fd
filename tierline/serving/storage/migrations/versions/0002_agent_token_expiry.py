"""agent token expiry: agents.expires_at (nullable: tokens without a date never expire)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 19:45:00

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0002'
down_revision: Union[str, Sequence[str], None] = '0001'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Add the optional expiry of an agent's bearer token."""
    with op.batch_alter_table('agents', schema=None) as batch_op:
        batch_op.add_column(sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    """Drop the expiry column."""
    with op.batch_alter_table('agents', schema=None) as batch_op:
        batch_op.drop_column('expires_at')
