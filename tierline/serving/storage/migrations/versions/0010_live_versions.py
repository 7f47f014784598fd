"""live_versions: one row saying which generation of models and flow every process should serve

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-12 10:00:00

"""
from datetime import datetime, timezone
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0010'
down_revision: Union[str, Sequence[str], None] = '0009'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """``POST /v1/admin/reload`` reloaded only the process that answered it, and each process
    followed the registry on its own timer. The row written here is what every process follows
    instead (``tierline.serving.live``): an admin reload or a champion alias move raises
    ``generation``, and each process reloads when its own generation is behind.

    One row (``id`` 1), inserted here at generation 0, so that a bump is one ``UPDATE``: no
    process ever has to decide who inserts it. The other columns record what the generation
    is: the registry versions (NULL: the model folders), the primary NLU bundle's content
    version, the flow's digest, why it was bumped and when.
    """
    live = op.create_table(
        'live_versions',
        sa.Column('id', sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column('generation', sa.Integer(), nullable=False),
        sa.Column('nlu_version', sa.String(length=100), nullable=True),
        sa.Column('policy_version', sa.String(length=100), nullable=True),
        sa.Column('nlu_bundle', sa.String(length=200), nullable=True),
        sa.Column('flow_digest', sa.String(length=100), nullable=True),
        sa.Column('reason', sa.String(length=200), nullable=True),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    )
    op.execute(live.insert().values(id=1, generation=0, updated_at=datetime.now(timezone.utc)))


def downgrade() -> None:
    """Drop the table (each process then reloads only on its own admin reload again)."""
    op.drop_table('live_versions')
