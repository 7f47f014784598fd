"""agent management: agents.disabled_at and removed_at, unique active names, the agent_audit table

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 10:00:00

Self-contained: it touches only ``agents`` and its own new table ``agent_audit``, so it can be
re-chained after another revision without change.
"""
from datetime import datetime, timezone
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0009'
down_revision: Union[str, Sequence[str], None] = '0008'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

ACTOR = 'migration 0009'
# The tables as this revision knows them (not the ORM models, which move on).
AGENTS = sa.table('agents', sa.column('id', sa.Integer), sa.column('name', sa.String),
                  sa.column('token_sha256', sa.String), sa.column('disabled_at', sa.DateTime),
                  sa.column('removed_at', sa.DateTime))


def upgrade() -> None:
    """``tierline agents disable / enable / rotate-token / remove`` and their audit.

    Two columns (nullable: every existing agent stays active), the ``agent_audit`` table, and a
    unique index on ``lower(name)`` over agents not removed, so that commands can name an
    agent. Names that existed twice (nothing stopped it before) are made unique first: the
    oldest keeps its name, the others get `` #<id>`` appended, each renaming audited.
    Plain ``ADD COLUMN`` (no batch copy of ``agents``, which tickets and labels reference).
    """
    op.add_column('agents', sa.Column('disabled_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('agents', sa.Column('removed_at', sa.DateTime(timezone=True), nullable=True))
    audit = op.create_table(
        'agent_audit',
        sa.Column('id', sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('actor', sa.String(length=100), nullable=False),
        sa.Column('action', sa.String(length=30), nullable=False),
        sa.Column('agent_id', sa.Integer(), sa.ForeignKey('agents.id'), nullable=False),
        sa.Column('agent_name', sa.String(length=100), nullable=False),
        sa.Column('details', sa.JSON(), nullable=False),
    )
    op.create_index('ix_agent_audit_at', 'agent_audit', ['at'])
    op.create_index('ix_agent_audit_agent_id', 'agent_audit', ['agent_id'])
    connection = op.get_bind()
    seen: set[str] = set()
    now = datetime.now(timezone.utc)
    for agent_id, name in connection.execute(
            sa.select(AGENTS.c.id, AGENTS.c.name).order_by(AGENTS.c.id)).all():
        if name.lower() not in seen:
            seen.add(name.lower())
            continue
        unique = f"{name[:100 - len(f' #{agent_id}')]} #{agent_id}"
        connection.execute(AGENTS.update().where(AGENTS.c.id == agent_id).values(name=unique))
        connection.execute(audit.insert().values(
            at=now, actor=ACTOR, action='renamed', agent_id=agent_id, agent_name=unique,
            details={'from': name, 'why': 'another agent already had this name'}))
        seen.add(unique.lower())
    op.create_index('ux_agents_active_name', 'agents', [sa.text('lower(name)')], unique=True,
                    postgresql_where=sa.text('removed_at IS NULL'),
                    sqlite_where=sa.text('removed_at IS NULL'))


def downgrade() -> None:
    """Drop the audit, the index and the columns. A disabled or removed agent would be active
    again without its column, so its token is first replaced by a value no token hashes to
    (64 characters, not hexadecimal): it stays refused, and enabling it again means
    ``tierline agents rotate-token`` after the next upgrade."""
    op.execute(AGENTS.update().where(sa.or_(AGENTS.c.disabled_at.is_not(None),
                                            AGENTS.c.removed_at.is_not(None)))
               .values(token_sha256=sa.func.substr(
                   sa.literal('off:') + sa.cast(AGENTS.c.id, sa.String) + sa.literal(':')
                   + AGENTS.c.token_sha256, 1, 64)))
    op.drop_index('ux_agents_active_name', table_name='agents')
    op.drop_index('ix_agent_audit_agent_id', table_name='agent_audit')
    op.drop_index('ix_agent_audit_at', table_name='agent_audit')
    op.drop_table('agent_audit')
    op.drop_column('agents', 'removed_at')
    op.drop_column('agents', 'disabled_at')
