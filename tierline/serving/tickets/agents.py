"""Who works tickets: agents, known by a bearer token stored only as its SHA-256.

Registering an agent (``tierline agents add``) and recognising one from a token (the agent
API, the console's sign-in) are the same look-up wherever they happen, so they live beside the
operations agents perform rather than in one front end.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

from sqlalchemy import select

from tierline.serving.storage.db import Database
from tierline.serving.storage.models import Agent


def token_hash(token: str) -> str:
    """How tokens are stored: never in clear."""
    return hashlib.sha256(token.encode()).hexdigest()


def create_agent(db: Database, name: str, teams: list[str], admin: bool = False,
                 expires_at: datetime | None = None) -> str:
    """Register an agent; returns the bearer token (shown once), valid until ``expires_at``."""
    token = secrets.token_urlsafe(32)
    with db.session() as s:
        s.add(Agent(name=name, token_sha256=token_hash(token), teams=teams, is_admin=admin,
                    expires_at=expires_at))
    return token


def agent_for_token(db: Database, token: str) -> Agent | None:
    """The agent whose token this is (compared by SHA-256), or None (also once it expired)."""
    with db.session() as s:
        agent = s.scalars(select(Agent).where(Agent.token_sha256 == token_hash(token.strip()))).first()
    return None if agent is None or agent.token_expired() else agent
