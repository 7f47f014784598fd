"""Agents' labels: their verdict on an escalation, what retraining learns from.

One label per ticket, edited in place: the agent's latest verdict is the one that counts.
Retraining reads labels through :func:`tierline.serving.tickets.export.labelled_decisions`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field
from sqlalchemy import select

from tierline.nlu.labels import INTENT_LABELS
from tierline.serving.storage.db import Database
from tierline.serving.storage.models import Agent, EscalationLabel, Ticket
from tierline.serving.tickets.queue import visible

IntentName = Literal[INTENT_LABELS]  # type: ignore[valid-type]


class Label(BaseModel):
    """An agent's verdict: was a human needed (``earlier``: yes, and at the turn before), the
    intent the customer really had, whether they were frustrated, a free note."""

    escalation_needed: Literal["yes", "no", "earlier"]
    corrected_intent: IntentName | None = None
    frustrated: bool | None = None
    note: str | None = Field(None, max_length=2000)


def save_label(db: Database, agent: Agent, ticket_id: int, label: Label) -> dict:
    """Save (or edit) the agent's label of this escalation: one row per ticket."""
    with db.session() as s:
        t = visible(agent, s.get(Ticket, ticket_id))
        row = s.scalars(select(EscalationLabel).where(EscalationLabel.ticket_id == t.id)).first()
        if row is None:
            row = EscalationLabel(ticket_id=t.id, agent_id=agent.id,
                                  escalation_needed=label.escalation_needed)
            s.add(row)
        row.agent_id, row.escalation_needed = agent.id, label.escalation_needed
        row.corrected_intent, row.frustrated, row.note = (label.corrected_intent, label.frustrated,
                                                          label.note)
        return {"ticket_id": t.id, **label.model_dump()}
