"""api_keys: client credentials of /v1/analyze and /v1/decide (SHA-256, scopes, revocation)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 10:00:00

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0005'
down_revision: Union[str, Sequence[str], None] = '0004'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """The inference APIs answered anyone; from now on they need a key of the right scope."""
    op.create_table(
        'api_keys',
        sa.Column('id', sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('key_sha256', sa.String(length=64), nullable=False, unique=True),
        sa.Column('scopes', sa.JSON(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    """Drop the table (the inference APIs then refuse every caller)."""
    op.drop_table('api_keys')
