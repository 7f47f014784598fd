"""revoked_console_sessions: console sessions ended by signing out (refused until they expire)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 04:20:00

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: Union[str, Sequence[str], None] = '0003'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Signing out of the console ends the session on the server, not only in the browser."""
    op.create_table(
        'revoked_console_sessions',
        sa.Column('session_sha256', sa.String(length=64), primary_key=True),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False, index=True),
    )


def downgrade() -> None:
    """Drop the table (signed-out cookies are then accepted until they expire)."""
    op.drop_table('revoked_console_sessions')
