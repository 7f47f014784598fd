"""decisions.model_stack: which NLU + policy pair made the decision (nullable: older rows were
all made by the default pair)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 22:30:00

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0003'
down_revision: Union[str, Sequence[str], None] = '0002'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Record the model stack of each decision, so retraining a policy reads only its own."""
    with op.batch_alter_table('decisions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('model_stack', sa.String(length=40), nullable=True))


def downgrade() -> None:
    """Drop the column."""
    with op.batch_alter_table('decisions', schema=None) as batch_op:
        batch_op.drop_column('model_stack')
