"""Who works tickets: agents, known by a bearer token stored only as its SHA-256.

Registering an agent (``tierline agents add``) and recognising one from a token (the agent
API, the console's sign-in) are the same look-up wherever they happen, so they live beside the
operations agents perform rather than in one front end. So does managing them (``tierline
agents list / disable / enable / rotate-token / remove / audit``):

- names are unique among agents not removed, compared without case (``Gina`` and ``gina``
  would be the same person to whoever types the command); commands name an agent by its name
  or its id;
- a disabled or removed agent's token is refused at once, by the agent API and by the
  console, whose sessions are checked against the agent on every request (no cache);
  rotating the token refuses the old one and ends the console sessions made with it;
- disabling or removing an agent puts its claimed, unresolved tickets back in the queue
  (nobody else could answer them while it holds them);
- every change is a row of ``agent_audit`` written in the same transaction: who (``by``,
  else the OS user), what, when, never a token.
"""

from __future__ import annotations

import getpass
import hashlib
import os
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tierline.serving.storage.db import Database
from tierline.serving.storage.models import Agent, AgentAuditEntry, Ticket, as_utc, utcnow

#: What an audit entry records (``agent_audit.action``; ``renamed`` is migration 0009's).
ACTIONS = ("added", "disabled", "enabled", "token_rotated", "removed", "renamed")


class AgentRefused(ValueError):
    """A management command was refused; the message says why and what to do instead."""


def token_hash(token: str) -> str:
    """How tokens are stored: never in clear."""
    return hashlib.sha256(token.encode()).hexdigest()


def operator(by: str | None = None) -> str:
    """Who makes a change: ``by`` when given, else the OS user (the one behind ``sudo``)."""
    if by and by.strip():
        return by.strip()[:100]
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a bare container)
        user = f"uid {os.getuid()}"
    sudo_user = os.environ.get("SUDO_USER")
    return (f"{sudo_user} (sudo)" if sudo_user and user == "root" else user)[:100]


def create_agent(db: Database, name: str, teams: list[str], admin: bool = False,
                 expires_at: datetime | None = None, *, by: str | None = None,
                 known_teams: list[str] | None = None) -> str:
    """Register an agent; returns the bearer token (shown once), valid until ``expires_at``.

    Refused (:class:`AgentRefused`): an empty name, a name another agent has, no team for a
    non-admin, and with ``known_teams`` (the flow's routing teams) a team not among them.
    """
    name = " ".join(name.split())
    teams = list(dict.fromkeys(t.strip() for t in teams if t.strip()))
    if not name or len(name) > 100:
        raise AgentRefused("an agent's name is 1 to 100 characters")
    if name.isdigit():
        raise AgentRefused("an agent's name needs a letter (numbers name agents by id)")
    if not teams and not admin:
        raise AgentRefused("an agent needs at least one team (--teams), or --admin")
    unknown = [t for t in teams if known_teams is not None and t not in known_teams]
    if unknown:
        raise AgentRefused(f"unknown team(s) {', '.join(map(repr, unknown))}: the flow's teams "
                           f"are {', '.join(known_teams)}")
    token = secrets.token_urlsafe(32)
    try:
        with db.session() as s:
            if _active_named(s, name) is not None:
                raise AgentRefused(_name_taken(name))
            agent = Agent(name=name, token_sha256=token_hash(token), teams=teams, is_admin=admin,
                          expires_at=expires_at)
            s.add(agent)
            s.flush()
            _audit(s, agent, "added", by, teams=teams, admin=admin,
                   expires_at=expires_at.isoformat() if expires_at else None)
    except IntegrityError:  # the same name added at the same moment by another command
        raise AgentRefused(_name_taken(name)) from None
    return token


def agent_for_token(db: Database, token: str) -> Agent | None:
    """The agent whose token this is (compared by SHA-256), or None (also once it expired, or
    the agent was disabled or removed)."""
    with db.session() as s:
        agent = s.scalars(select(Agent).where(Agent.token_sha256 == token_hash(token.strip()))).first()
    return agent if agent is not None and agent.may_sign_in() else None


@dataclass(frozen=True)
class AgentChange:
    """What a management command did: the agent as it is now, whether anything changed, the
    tickets put back in the queue, and the new token (``rotate_token`` only; shown once)."""

    agent: dict[str, Any]
    changed: bool = True
    tickets_released: int = 0
    token: str | None = None


def list_agents(db: Database, include_removed: bool = False) -> list[dict[str, Any]]:
    """Every agent (never a token): id, name, teams, admin, status, dates, and the last
    audited change (who, what, when)."""
    with db.session() as s:
        query = select(Agent).order_by(Agent.id)
        if not include_removed:
            query = query.where(Agent.removed_at.is_(None))
        agents = s.scalars(query).all()
        latest = select(func.max(AgentAuditEntry.id)).group_by(AgentAuditEntry.agent_id)
        last = {e.agent_id: e for e in s.scalars(
            select(AgentAuditEntry).where(AgentAuditEntry.id.in_(latest)))}
        return [describe(a, last.get(a.id)) for a in agents]


def disable_agent(db: Database, ref: str, by: str | None = None) -> AgentChange:
    """Refuse the agent's token and console sessions from now on; its claimed tickets go back
    to the queue. Disabling a disabled agent changes nothing (and is not audited)."""
    with db.session() as s:
        agent = find_agent(s, ref)
        if agent.disabled_at is not None:
            return AgentChange(describe(agent), changed=False)
        agent.disabled_at = utcnow()
        released = _release_tickets(s, agent)
        _audit(s, agent, "disabled", by, tickets_released=released)
        return AgentChange(describe(agent), tickets_released=released)


def enable_agent(db: Database, ref: str, by: str | None = None) -> AgentChange:
    """Accept the agent's token again (the same token: rotate it if it may have leaked)."""
    with db.session() as s:
        agent = find_agent(s, ref)
        if agent.disabled_at is None:
            return AgentChange(describe(agent), changed=False)
        agent.disabled_at = None
        _audit(s, agent, "enabled", by)
        return AgentChange(describe(agent))


def rotate_token(db: Database, ref: str, by: str | None = None,
                 expires_at: datetime | None = None) -> AgentChange:
    """Give the agent a new token (returned once) valid until ``expires_at`` (None: never);
    the old one is refused at once and the console sessions made with it end."""
    token = secrets.token_urlsafe(32)
    with db.session() as s:
        agent = find_agent(s, ref)
        agent.token_sha256, agent.expires_at = token_hash(token), expires_at
        _audit(s, agent, "token_rotated", by,
               expires_at=expires_at.isoformat() if expires_at else None)
        return AgentChange(describe(agent), token=token)


def remove_agent(db: Database, ref: str, by: str | None = None) -> AgentChange:
    """Remove the agent: its token is replaced by one nobody knows, its claimed tickets go back
    to the queue, its name is free again. The row stays (tickets and labels name it) and is
    listed with ``include_removed``."""
    with db.session() as s:
        agent = find_agent(s, ref)
        agent.removed_at = utcnow()
        agent.token_sha256 = token_hash(secrets.token_urlsafe(32))
        released = _release_tickets(s, agent)
        _audit(s, agent, "removed", by, tickets_released=released)
        return AgentChange(describe(agent), tickets_released=released)


def audit_log(db: Database, ref: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
    """The audit entries, oldest first (of one agent when ``ref`` is given, removed agents
    included; the last ``limit`` when given)."""
    with db.session() as s:
        query = select(AgentAuditEntry).order_by(AgentAuditEntry.id.desc())
        if ref is not None:
            query = query.where(AgentAuditEntry.agent_id == find_agent(s, ref, removed=True).id)
        if limit is not None:
            query = query.limit(limit)
        return [{"at": as_utc(e.at).isoformat(), "by": e.actor, "action": e.action,
                 "agent_id": e.agent_id, "agent": e.agent_name, "details": e.details or {}}
                for e in reversed(s.scalars(query).all())]


def find_agent(s: Session, ref: str, removed: bool = False) -> Agent:
    """The agent ``ref`` names: its id (digits), else its name (without case) among agents
    not removed (``removed``: a removed agent by id, or the latest removed of that name)."""
    ref = " ".join(str(ref).split())
    agent = s.get(Agent, int(ref)) if ref.isdigit() and int(ref) < 2 ** 31 else None
    if agent is None:
        agent = _active_named(s, ref)
    if agent is None and removed:
        agent = s.scalars(select(Agent).where(func.lower(Agent.name) == ref.lower())
                          .order_by(Agent.id.desc())).first()
    if agent is None or (agent.removed_at is not None and not removed):
        raise AgentRefused(f"no agent {ref!r}: `tierline agents list` shows their names and ids")
    return agent


def status_of(agent: Agent) -> str:
    """``active``, ``disabled``, ``expired`` or ``removed``."""
    if agent.removed_at is not None:
        return "removed"
    if agent.disabled_at is not None:
        return "disabled"
    return "expired" if agent.token_expired() else "active"


def describe(agent: Agent, last: AgentAuditEntry | None = None) -> dict[str, Any]:
    """An agent as the commands print it (never its token or the token's hash)."""
    when = {k: (as_utc(v).isoformat() if v else None) for k, v in (
        ("created_at", agent.created_at), ("expires_at", agent.expires_at),
        ("disabled_at", agent.disabled_at), ("removed_at", agent.removed_at))}
    row = {"id": agent.id, "name": agent.name, "teams": list(agent.teams or []),
           "admin": bool(agent.is_admin), "status": status_of(agent), **when}
    if last is not None:
        row["last_change"] = {"at": as_utc(last.at).isoformat(), "by": last.actor,
                              "action": last.action}
    return row


def _active_named(s: Session, name: str) -> Agent | None:
    return s.scalars(select(Agent).where(func.lower(Agent.name) == name.lower(),
                                         Agent.removed_at.is_(None))).first()


def _name_taken(name: str) -> str:
    return (f"an agent named {name!r} exists already: pick another name, or `tierline agents "
            f"rotate-token {name}` for a new token")


def _release_tickets(s: Session, agent: Agent) -> int:
    """Put the agent's claimed, unresolved tickets back in its team's queue."""
    result = s.execute(update(Ticket).where(Ticket.assigned_agent_id == agent.id,
                                            Ticket.status == "claimed")
                       .values(status="open", assigned_agent_id=None))
    return result.rowcount or 0


def _audit(s: Session, agent: Agent, action: str, by: str | None, **details: Any) -> None:
    s.add(AgentAuditEntry(actor=operator(by), action=action, agent_id=agent.id,
                          agent_name=agent.name, details=details))
