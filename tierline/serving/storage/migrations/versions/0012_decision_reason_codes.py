"""decisions.reason_codes: the policy's reasons as stable codes with parameters (nullable: older
rows have the English phrases in ``reasons`` only)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-10 10:00:00

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0012'
down_revision: Union[str, Sequence[str], None] = '0011'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Store each decision's reasons as ``[{"code", "params"}]`` beside the English
    ``reasons`` (``tierline.nlu.reasons``). Older rows stay NULL: readers parse their English
    phrases back into codes (``reasons.from_stored``), so nothing is rewritten here and an old
    process keeps writing rows during a rolling upgrade (its rows are NULL too).

    A plain ``ADD COLUMN``, not a batch copy: ``tickets.decision_id`` references ``decisions``
    (see 0008)."""
    op.add_column('decisions', sa.Column('reason_codes', sa.JSON(), nullable=True))


def downgrade() -> None:
    """Drop the column (SQLite 3.35+ ``DROP COLUMN``; the English ``reasons`` stay)."""
    op.drop_column('decisions', 'reason_codes')
