"""The agent API: queue, ticket with transcript, claim, reply, transfer, resolve, label.

Bearer tokens identify agents (stored as SHA-256). An agent sees and acts on its teams'
tickets only (another team's ticket answers 404, so ids leak nothing); admins see all.
Replies go to WhatsApp through the outbox; outside the 24-hour customer-service window they go
as the configured template. Labels are what retraining learns from.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request
from fastapi import Path as PathParam
from pydantic import BaseModel, Field
from sqlalchemy import select

from nlu.bot import ConversationState
from nlu.labels import INTENT_LABELS
from serving.logging_setup import mask_phone
from serving.storage.db import Database
from serving.storage.models import (
    Agent,
    Conversation,
    EscalationLabel,
    MessageLog,
    OutboundMessage,
    Ticket,
    as_utc,
    utcnow,
)
from serving.whatsapp.client import template_payload, text_payload
from serving.worker import csat_payload

router = APIRouter(prefix="/v1/agent", tags=["agents"])
WINDOW = timedelta(hours=24)
IntentName = Literal[INTENT_LABELS]  # type: ignore[valid-type]
#: Ticket ids are 32-bit integers in both databases: larger values are a 422, not a 500.
TicketId = Annotated[int, PathParam(ge=1, le=2_147_483_647)]


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


def get_db(request: Request) -> Database:
    return request.app.state.services.db


def agent_for_token(db: Database, token: str) -> Agent | None:
    """The agent whose token this is (compared by SHA-256), or None (also once it expired)."""
    with db.session() as s:
        agent = s.scalars(select(Agent).where(Agent.token_sha256 == token_hash(token.strip()))).first()
    return None if agent is None or agent.token_expired() else agent


def current_agent(request: Request, authorization: str | None = Header(None)) -> Agent:
    """The agent behind ``Authorization: Bearer <token>``; 401 otherwise."""
    if not authorization or not authorization.lower().startswith("bearer "):
        raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
    agent = agent_for_token(get_db(request), authorization[7:])
    if agent is None:
        raise HTTPException(401, "invalid token", headers={"WWW-Authenticate": "Bearer"})
    return agent


class TicketSummary(BaseModel):
    id: int
    team: str
    status: str
    priority: str
    customer: str
    intent: str
    reasons: list[str]
    p_escalate: float
    created_at: datetime
    age_seconds: float
    assigned_agent_id: int | None


class TranscriptLine(BaseModel):
    role: str
    text: str
    at: datetime


class TicketDetail(TicketSummary):
    context: dict
    transcript: list[TranscriptLine]
    csat: int | None
    label: dict | None
    window_open: bool


class ReplyIn(BaseModel):
    text: str = Field(min_length=1, max_length=4096)


class TransferIn(BaseModel):
    team: str = Field(min_length=1, max_length=60)


class LabelIn(BaseModel):
    escalation_needed: Literal["yes", "no", "earlier"]
    corrected_intent: IntentName | None = None
    frustrated: bool | None = None
    note: str | None = Field(None, max_length=2000)


def _summary(t: Ticket) -> dict:
    created = as_utc(t.created_at)
    return {"id": t.id, "team": t.team, "status": t.status, "priority": t.priority,
            "customer": mask_phone(t.conversation_id.rsplit(":", 1)[-1]),
            "intent": t.context.get("intent", ""), "reasons": t.context.get("reasons", []),
            "p_escalate": t.context.get("p_escalate", 0.0), "created_at": created,
            "age_seconds": (utcnow() - created).total_seconds(),
            "assigned_agent_id": t.assigned_agent_id}


def _visible(agent: Agent, ticket: Ticket | None) -> Ticket:
    if ticket is None or not (agent.is_admin or ticket.team in agent.teams):
        raise HTTPException(404, "no such ticket")
    return ticket


# The operations below are plain functions over the database so that the JSON API and the agent
# console (serving/console) share one implementation; they raise HTTPException (404 for a ticket
# of another team, 409 for a conflict) which both front ends turn into their own answers.

def queue_for(db: Database, agent: Agent, team: str | None = None,
              status: str = "active", limit: int = 100) -> list[dict]:
    """The queue of the agent's teams: most urgent first, then oldest first."""
    if team is not None and not agent.is_admin and team not in agent.teams:
        raise HTTPException(403, "not one of your teams")
    q = select(Ticket)
    q = q.where(Ticket.status.in_(("open", "claimed"))) if status == "active" else \
        q.where(Ticket.status == status)
    if team is not None:
        q = q.where(Ticket.team == team)
    elif not agent.is_admin:
        q = q.where(Ticket.team.in_(agent.teams))
    with db.session() as s:
        tickets = s.scalars(q.order_by(Ticket.priority_rank, Ticket.created_at).limit(limit)).all()
        return [{**_summary(t), "context": t.context} for t in tickets]


def ticket_detail(db: Database, agent: Agent, ticket_id: int) -> dict:
    """A ticket with its full transcript, the context of the escalation and its label."""
    with db.session() as s:
        t = _visible(agent, s.get(Ticket, ticket_id))
        conv = s.get(Conversation, t.conversation_id)
        lines = s.scalars(select(MessageLog).where(MessageLog.conversation_id == t.conversation_id)
                          .order_by(MessageLog.id)).all()
        label = s.scalars(select(EscalationLabel).where(EscalationLabel.ticket_id == t.id)).first()
        context = {k: v for k, v in t.context.items() if k != "features"}
        return {**_summary(t), "context": context, "csat": t.csat,
                "transcript": [{"role": m.role, "text": m.text, "at": as_utc(m.at)} for m in lines],
                "label": None if label is None else {
                    "escalation_needed": label.escalation_needed,
                    "corrected_intent": label.corrected_intent, "frustrated": label.frustrated,
                    "note": label.note},
                "window_open": _window_open(conv)}


def _window_open(conv: Conversation | None) -> bool:
    last = as_utc(conv.last_customer_at) if conv else None
    return last is not None and utcnow() - last < WINDOW


def _tell_customer(s, conv: Conversation, key: str, text: str, payload: dict | None = None
                   ) -> None:
    """Queue a bot message to a WhatsApp customer inside the 24-hour window (outside it only a
    template may be sent, and these notices are not worth one); ``key`` makes it once only."""
    if conv.channel != "whatsapp" or not _window_open(conv):
        return
    s.add(OutboundMessage(idempotency_key=key, conversation_id=conv.id, to=conv.customer_id,
                          phone_number_id=conv.phone_number_id or "", role="bot",
                          payload=payload or text_payload(conv.customer_id, text)))
    s.add(MessageLog(conversation_id=conv.id, role="bot", text=text))


def claim_ticket(db: Database, agent: Agent, ticket_id: int, flow=None) -> dict:
    """Take a ticket (409 if another agent has it or it is resolved). The first claim tells
    the customer, in their language, that an agent has joined (``agent_joined``)."""
    with db.session() as s:
        t = _visible(agent, s.get(Ticket, ticket_id, with_for_update=True))
        if t.status == "resolved":
            raise HTTPException(409, "ticket is resolved")
        if t.assigned_agent_id not in (None, agent.id):
            raise HTTPException(409, "claimed by another agent")
        first = t.claimed_at is None
        t.status, t.assigned_agent_id, t.claimed_at = "claimed", agent.id, t.claimed_at or utcnow()
        if first and flow is not None:
            conv = s.get(Conversation, t.conversation_id)
            language = ConversationState.from_dict(conv.state).language
            _tell_customer(s, conv, f"joined:{t.id}", flow.text("agent_joined", language))
        return _summary(t)


def send_reply(db: Database, settings, agent: Agent, ticket_id: int, text: str) -> dict:
    """Queue the agent's reply in the outbox (as a template outside the 24-hour window)."""
    with db.session() as s:
        t = _visible(agent, s.get(Ticket, ticket_id, with_for_update=True))
        if t.status == "resolved":
            raise HTTPException(409, "ticket is resolved")
        if t.assigned_agent_id not in (None, agent.id):
            # Two agents answering one customer at once: the second must take it over first
            # (transfer), not talk over the first.
            raise HTTPException(409, "claimed by another agent")
        conv = s.get(Conversation, t.conversation_id)
        in_window = _window_open(conv)
        payload = text_payload(conv.customer_id, text) if in_window else template_payload(
            conv.customer_id, settings.whatsapp_reopen_template,
            settings.whatsapp_reopen_template_language, [text])
        row = OutboundMessage(idempotency_key=f"agent:{ticket_id}:{secrets.token_hex(8)}",
                              conversation_id=conv.id, to=conv.customer_id,
                              phone_number_id=conv.phone_number_id or "", role="agent",
                              payload=payload)
        s.add(row)
        s.add(MessageLog(conversation_id=conv.id, role="agent", text=text))
        if t.status == "open":
            t.status, t.assigned_agent_id, t.claimed_at = "claimed", agent.id, utcnow()
        t.first_agent_reply_at = t.first_agent_reply_at or utcnow()
        s.flush()
        return {"outbound_id": row.id, "sent_as": "text" if in_window else "template"}


def known_teams(routing) -> list[str]:
    """The teams of the bot flow's routing: where a ticket can be transferred."""
    return sorted(set(routing.teams) | {routing.default_team})


def transfer_ticket(db: Database, routing, agent: Agent, ticket_id: int, team: str) -> dict:
    """Move a ticket to another team (back to its queue, unassigned)."""
    known = known_teams(routing)
    if team not in known:
        raise HTTPException(422, f"unknown team; known teams: {known}")
    with db.session() as s:
        t = _visible(agent, s.get(Ticket, ticket_id, with_for_update=True))
        if t.status == "resolved":
            raise HTTPException(409, "ticket is resolved")
        t.team, t.status, t.assigned_agent_id = team, "open", None
        return _summary(t)


def resolve_ticket(db: Database, flow, agent: Agent, ticket_id: int) -> dict:
    """Close the ticket; the bot takes the conversation back and asks for a 1-5 score."""
    with db.session() as s:
        t = _visible(agent, s.get(Ticket, ticket_id, with_for_update=True))
        if t.status == "resolved":
            return _summary(t)
        t.status, t.resolved_at = "resolved", utcnow()
        conv = s.get(Conversation, t.conversation_id, with_for_update=True)
        state = ConversationState.from_dict(conv.state)
        state.step, state.escalated, state.failed_attempts = "menu", False, 0
        state.csat_ticket_id = t.id
        conv.state = state.to_dict()
        question = flow.text("csat_question", state.language)
        _tell_customer(s, conv, f"csat:{t.id}", question, csat_payload(
            conv.customer_id, question, flow.text("csat_button", state.language)))
        return _summary(t)


def save_label(db: Database, agent: Agent, ticket_id: int, body: LabelIn) -> dict:
    """Save (or edit) the agent's label of this escalation: one row per ticket."""
    with db.session() as s:
        t = _visible(agent, s.get(Ticket, ticket_id))
        row = s.scalars(select(EscalationLabel).where(EscalationLabel.ticket_id == t.id)).first()
        if row is None:
            row = EscalationLabel(ticket_id=t.id, agent_id=agent.id,
                                  escalation_needed=body.escalation_needed)
            s.add(row)
        row.agent_id, row.escalation_needed = agent.id, body.escalation_needed
        row.corrected_intent, row.frustrated, row.note = body.corrected_intent, body.frustrated, body.note
        return {"ticket_id": t.id, **body.model_dump()}


@router.get("/tickets", response_model=list[TicketSummary])
def list_queue(request: Request, agent: Agent = Depends(current_agent),
               team: str | None = Query(None, max_length=60),
               status: Literal["open", "claimed", "resolved", "active"] = "active",
               limit: int = Query(100, ge=1, le=500)):
    """The queue of the agent's teams: most urgent first, then oldest first."""
    return queue_for(get_db(request), agent, team, status, limit)


@router.get("/tickets/{ticket_id}", response_model=TicketDetail)
def show(ticket_id: TicketId, request: Request, agent: Agent = Depends(current_agent)):
    """A ticket with its full transcript and the context of the escalation."""
    return ticket_detail(get_db(request), agent, ticket_id)


@router.post("/tickets/{ticket_id}/claim", response_model=TicketSummary)
def claim(ticket_id: TicketId, request: Request, agent: Agent = Depends(current_agent)):
    """Take a ticket (409 if another agent has it or it is resolved)."""
    return claim_ticket(get_db(request), agent, ticket_id,
                        request.app.state.services.engine.flow)


@router.post("/tickets/{ticket_id}/reply")
def reply(ticket_id: TicketId, body: ReplyIn, request: Request, agent: Agent = Depends(current_agent)):
    """Send the agent's reply to the customer (as a template outside the 24-hour window)."""
    return send_reply(get_db(request), request.app.state.settings, agent, ticket_id, body.text)


@router.post("/tickets/{ticket_id}/transfer", response_model=TicketSummary)
def transfer(ticket_id: TicketId, body: TransferIn, request: Request,
             agent: Agent = Depends(current_agent)):
    """Move a ticket to another team (back to its queue, unassigned)."""
    routing = request.app.state.services.engine.flow.escalation.routing
    return transfer_ticket(get_db(request), routing, agent, ticket_id, body.team)


@router.post("/tickets/{ticket_id}/resolve", response_model=TicketSummary)
def resolve(ticket_id: TicketId, request: Request, agent: Agent = Depends(current_agent)):
    """Close the ticket; the bot takes the conversation back and asks for a 1-5 score."""
    return resolve_ticket(get_db(request), request.app.state.services.engine.flow, agent, ticket_id)


@router.put("/tickets/{ticket_id}/label")
def label(ticket_id: TicketId, body: LabelIn, request: Request, agent: Agent = Depends(current_agent)):
    """Save (or edit) the agent's label of this escalation."""
    return save_label(get_db(request), agent, ticket_id, body)
