"""Internal notes: what agents write on a ticket for each other, never for the customer.

A note is a row of ``ticket_notes`` (migration 0013) and nothing else: no outbox row, no
notify-outbox event, no transcript line, so no channel can carry it to the customer. Who may
read and write them is who may see the ticket (:func:`~tierline.serving.tickets.queue.visible`:
its team's agents and admins; anyone else gets :class:`TicketNotFound`). A resolved ticket
still takes notes (what was learnt after the fact is worth keeping).
"""

from __future__ import annotations

from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from tierline.serving.storage.db import Database
from tierline.serving.storage.models import Agent, Ticket, TicketNote, as_utc
from tierline.serving.tickets.queue import visible

MAX_NOTE_CHARS = 4000


class NoteIn(BaseModel):
    """A note as an agent writes it."""

    text: str = Field(min_length=1, max_length=MAX_NOTE_CHARS)


def add_note(db: Database, agent: Agent, ticket_id: int, text: str) -> dict:
    """Write ``agent``'s note on the ticket; the note as :func:`notes_of` lists it."""
    body = NoteIn(text=text.strip())
    with db.session() as s:
        t = visible(agent, s.get(Ticket, ticket_id))
        note = TicketNote(ticket_id=t.id, agent_id=agent.id, text=body.text)
        s.add(note)
        s.flush()
        return _as_dict(note, agent.name)


def list_notes(db: Database, agent: Agent, ticket_id: int) -> list[dict]:
    """The ticket's notes, oldest first (:class:`TicketNotFound` for another team's ticket)."""
    with db.session() as s:
        return notes_of(s, visible(agent, s.get(Ticket, ticket_id)).id)


def notes_of(s: Session, ticket_id: int) -> list[dict]:
    """The notes of a ticket the caller may see, oldest first, with their authors' names."""
    rows = s.execute(select(TicketNote, Agent.name).join(Agent, Agent.id == TicketNote.agent_id)
                     .where(TicketNote.ticket_id == ticket_id).order_by(TicketNote.id)).all()
    return [_as_dict(note, name) for note, name in rows]


def _as_dict(note: TicketNote, agent_name: str) -> dict:
    return {"id": note.id, "ticket_id": note.ticket_id, "agent_id": note.agent_id,
            "agent": agent_name, "text": note.text, "at": as_utc(note.created_at)}
