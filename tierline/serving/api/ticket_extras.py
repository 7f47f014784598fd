"""The agent API's side of the console's ticket tools: internal notes and the customer panel.

Same bearer tokens and the same rule as the rest of ``/v1/agent``: another team's ticket is
404 like a missing one (the tickets room raises :class:`TicketNotFound`, the app's handler
answers it).
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel

from tierline.serving.api.agents import TicketId, current_agent, get_db
from tierline.serving.storage.models import Agent
from tierline.serving.tickets.history import customer_history
from tierline.serving.tickets.notes import NoteIn, add_note, list_notes

router = APIRouter(prefix="/v1/agent", tags=["agents"])


class Note(BaseModel):
    id: int
    ticket_id: int
    agent_id: int
    agent: str
    text: str
    at: datetime


@router.get("/tickets/{ticket_id}/notes", response_model=list[Note])
def notes(ticket_id: TicketId, request: Request, agent: Agent = Depends(current_agent)):
    """The ticket's internal notes, oldest first."""
    return list_notes(get_db(request), agent, ticket_id)


@router.post("/tickets/{ticket_id}/notes", response_model=Note, status_code=201)
def add(ticket_id: TicketId, body: NoteIn, request: Request, agent: Agent = Depends(current_agent)):
    """Add an internal note: for the ticket's team only, never sent to the customer."""
    return add_note(get_db(request), agent, ticket_id, body.text)


@router.get("/tickets/{ticket_id}/customer")
def customer(ticket_id: TicketId, request: Request, agent: Agent = Depends(current_agent)) -> dict:
    """The customer panel: name, number, tier, order numbers, their conversations and their
    other tickets of the agent's teams (newest first, with outcome, label and CSAT; those of
    other teams counted in ``other_teams_tickets``)."""
    return customer_history(get_db(request), agent, ticket_id)
