"""The agent API: queue, ticket with transcript, claim, reply, transfer, resolve, label.

Bearer tokens identify agents. Every route is a thin call into the tickets room
(``tierline.serving.tickets``), which owns the rules; the only thing decided here is how its domain
errors read over HTTP (:data:`TICKET_ERROR_STATUS`, applied by :func:`ticket_error`, the
app's exception handler): another team's ticket is 404 like a missing one, so ids leak nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from tierline.serving import tickets
from tierline.serving.api.schemas import ReasonOut
from tierline.serving.storage.db import Database
from tierline.serving.storage.models import Agent

router = APIRouter(prefix="/v1/agent", tags=["agents"])
#: Ticket ids are 32-bit integers in both databases: larger values are a 422, not a 500.
TicketId = Annotated[int, PathParam(ge=1, le=2_147_483_647)]
#: The HTTP status of each refusal of the tickets room (the most specific class wins).
TICKET_ERROR_STATUS: dict[type[tickets.TicketError], int] = {
    tickets.TicketNotFound: 404, tickets.NotYourTeam: 403, tickets.AlreadyClaimed: 409,
    tickets.InvalidTransition: 409, tickets.UnknownTeam: 422}


async def ticket_error(request: Request, exc: tickets.TicketError) -> JSONResponse:
    """A refused ticket operation as HTTP: its status from :data:`TICKET_ERROR_STATUS`."""
    status = next((code for kind in type(exc).__mro__
                   if (code := TICKET_ERROR_STATUS.get(kind)) is not None), 409)
    return JSONResponse({"detail": str(exc)}, status_code=status)


def get_db(request: Request) -> Database:
    return request.app.state.services.db


def current_agent(request: Request, authorization: str | None = Header(None)) -> Agent:
    """The agent behind ``Authorization: Bearer <token>``; 401 otherwise."""
    if not authorization or not authorization.lower().startswith("bearer "):
        raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
    agent = tickets.agent_for_token(get_db(request), authorization[7:])
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
    reasons: list[str] = Field(description="why it escalated, in English, most important first")
    reason_codes: list[ReasonOut] = Field(description="the same reasons as codes with parameters")
    p_escalate: float
    created_at: datetime
    age_seconds: float
    assigned_agent_id: int | None


class TranscriptLine(BaseModel):
    role: str
    text: str
    at: datetime


class TicketDetail(TicketSummary):
    customer_name: str | None = Field(
        None, description="the customer's WhatsApp profile name (agents of the ticket's team "
                          "and admins; masked for anyone else; null when unknown)")
    customer_phone: str | None = Field(
        None, description="the customer's number in E.164 (agents of the ticket's team and "
                          "admins; masked for anyone else; null when the customer id is not "
                          "a phone number)")
    context: dict
    transcript: list[TranscriptLine]
    csat: int | None
    label: dict | None
    window_open: bool


class ReplyIn(BaseModel):
    text: str = Field(min_length=1, max_length=4096)


class TransferIn(BaseModel):
    team: str = Field(min_length=1, max_length=60)


def reply_template(request: Request) -> tickets.ReplyTemplate:
    """The template agents' replies go as outside WhatsApp's 24-hour window (settings)."""
    settings = request.app.state.settings
    return tickets.ReplyTemplate(settings.whatsapp_reopen_template,
                                 settings.whatsapp_reopen_template_language)


def runtime_callback(request: Request) -> bool:
    """Whether a bot runtime's conversations get the ticket side's messages (settings)."""
    return request.app.state.settings.runtime_callback_enabled


@router.get("/tickets", response_model=list[TicketSummary])
def list_queue(request: Request, agent: Agent = Depends(current_agent),
               team: str | None = Query(None, max_length=60),
               status: Literal["open", "claimed", "resolved", "active"] = "active",
               limit: int = Query(100, ge=1, le=500)):
    """The queue of the agent's teams: most urgent first, then oldest first."""
    return tickets.queue_for(get_db(request), agent, team, status, limit)


@router.get("/tickets/{ticket_id}", response_model=TicketDetail)
def show(ticket_id: TicketId, request: Request, agent: Agent = Depends(current_agent)):
    """A ticket with its full transcript and the context of the escalation."""
    return tickets.ticket_detail(get_db(request), agent, ticket_id)


@router.post("/tickets/{ticket_id}/claim", response_model=TicketSummary)
def claim(ticket_id: TicketId, request: Request, agent: Agent = Depends(current_agent)):
    """Take a ticket (409 if another agent has it or it is resolved)."""
    return tickets.claim_ticket(get_db(request), agent, ticket_id,
                                request.app.state.services.engine.flow, runtime_callback(request))


@router.post("/tickets/{ticket_id}/reply")
def reply(ticket_id: TicketId, body: ReplyIn, request: Request, agent: Agent = Depends(current_agent)):
    """Send the agent's reply to the customer (as a template outside the 24-hour window);
    ``sent_as`` says how it went (for a bot runtime's conversation ``callback``: queued for
    the runtime's callback, or ``not_sent`` without one: recorded in the transcript, not
    delivered)."""
    return tickets.send_reply(get_db(request), agent, ticket_id, body.text, reply_template(request),
                              runtime_callback(request))


@router.post("/tickets/{ticket_id}/transfer", response_model=TicketSummary)
def transfer(ticket_id: TicketId, body: TransferIn, request: Request,
             agent: Agent = Depends(current_agent)):
    """Move a ticket to another team (back to its queue, unassigned)."""
    routing = request.app.state.services.engine.flow.escalation.routing
    return tickets.transfer_ticket(get_db(request), routing, agent, ticket_id, body.team)


@router.post("/tickets/{ticket_id}/resolve", response_model=TicketSummary)
def resolve(ticket_id: TicketId, request: Request, agent: Agent = Depends(current_agent)):
    """Close the ticket; the bot takes the conversation back and asks for a 1-5 score."""
    return tickets.resolve_ticket(get_db(request), request.app.state.services.engine.flow,
                                  agent, ticket_id, runtime_callback(request))


@router.put("/tickets/{ticket_id}/label")
def label(ticket_id: TicketId, body: tickets.Label, request: Request,
          agent: Agent = Depends(current_agent)):
    """Save (or edit) the agent's label of this escalation."""
    return tickets.save_label(get_db(request), agent, ticket_id, body)
