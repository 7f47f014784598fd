"""live_versions: the multilingual pair's registry versions beside the English pair's

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-13 10:00:00

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0014'
down_revision: Union[str, Sequence[str], None] = '0013'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Retraining registers the multilingual pair (it/es/pt conversations) under its own names,
    ``tierline-nlu-multilingual`` and ``tierline-policy-multilingual``, and the service follows
    their champions too. A generation pins the versions every process loads, so it records
    these two as well (NULL: the multilingual folders).

    Two nullable columns on the one-row table, no backfill: ``ALTER TABLE ... ADD COLUMN``.
    """
    op.add_column('live_versions', sa.Column('multilingual_nlu_version', sa.String(length=100),
                                             nullable=True))
    op.add_column('live_versions', sa.Column('multilingual_policy_version',
                                             sa.String(length=100), nullable=True))


def downgrade() -> None:
    """Drop the two columns (a generation then pins the English pair only; SQLite 3.35+
    drops them in place)."""
    op.drop_column('live_versions', 'multilingual_policy_version')
    op.drop_column('live_versions', 'multilingual_nlu_version')
