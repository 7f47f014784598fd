"""Tickets leaving the service: labelled decisions for retraining, tickets for a help desk.

Retraining (``tierline.training.retrain``) reads agents' labels through :func:`labelled_decisions`:
plain dataclasses, joined to the decision that opened each ticket by its foreign key, so
training depends on this function's contract rather than on serving's tables, and nothing
pairs rows by timestamp. A help desk (Zendesk) gets a ticket with its transcript through
:func:`help_desk_export`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import aliased

from tierline.serving.notify.notify import TicketNotice
from tierline.serving.notify.sinks import TicketExport
from tierline.serving.storage.db import Database
from tierline.serving.storage.models import (
    Conversation,
    DecisionRow,
    EscalationLabel,
    InboundMessage,
    MessageLog,
    Ticket,
    as_utc,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DecisionRecord:
    """One decision as the policy made it: what it saw (``features``) and said."""

    id: int
    intent: str
    p_escalate: float
    escalate: bool
    features: dict[str, float]
    #: The NLU + policy pair that decided ("default", "multilingual"); None before it was kept.
    model_stack: str | None
    #: The customer message it decided on; "" where none is kept (``/v1/decide`` decisions).
    text: str
    at: datetime


@dataclass(frozen=True)
class LabelledDecision:
    """An agent's label of a ticket, with the decision that opened the ticket and the
    conversation's decision just before it (what an ``earlier`` verdict is about)."""

    ticket_id: int
    conversation_id: str
    team: str
    ticket_created_at: datetime
    escalation_needed: str  # yes | no | earlier
    corrected_intent: str | None
    frustrated: bool | None
    decision: DecisionRecord
    previous: DecisionRecord | None


def labelled_decisions(database: Database) -> list[LabelledDecision]:
    """Every labelled ticket with its decisions, oldest ticket first. Tickets without a
    decision (opened before migration 0008, with none found to backfill) are left out."""
    opener, before = aliased(DecisionRow), aliased(DecisionRow)
    said, said_before = aliased(InboundMessage), aliased(InboundMessage)
    earlier = aliased(DecisionRow)
    previous_id = (select(func.max(earlier.id))
                   .where(earlier.conversation_id == opener.conversation_id, earlier.id < opener.id)
                   .correlate(opener).scalar_subquery())
    query = (select(EscalationLabel, Ticket, opener, said.text, before, said_before.text)
             .join(Ticket, Ticket.id == EscalationLabel.ticket_id)
             .join(opener, opener.id == Ticket.decision_id)
             .outerjoin(said, said.id == opener.inbound_id)
             .outerjoin(before, before.id == previous_id)
             .outerjoin(said_before, said_before.id == before.inbound_id)
             .order_by(Ticket.created_at, Ticket.id))
    with database.session() as s:
        rows = s.execute(query).all()
        orphans = s.scalar(select(func.count()).select_from(EscalationLabel).join(
            Ticket, Ticket.id == EscalationLabel.ticket_id).where(Ticket.decision_id.is_(None)))
    if orphans:
        log.warning("%d labelled ticket(s) have no decision on record; left out", orphans)
    return [LabelledDecision(
        ticket_id=t.id, conversation_id=t.conversation_id, team=t.team,
        ticket_created_at=as_utc(t.created_at), escalation_needed=label.escalation_needed,
        corrected_intent=label.corrected_intent, frustrated=label.frustrated,
        decision=_record(d, text), previous=None if p is None else _record(p, previous_text))
        for label, t, d, text, p, previous_text in rows]


def _record(d: DecisionRow, text: str | None) -> DecisionRecord:
    return DecisionRecord(id=d.id, intent=d.intent, p_escalate=d.p_escalate, escalate=d.escalate,
                          features=dict(d.features), model_stack=d.model_stack, text=text or "",
                          at=as_utc(d.at))


def help_desk_export(db: Database, notice: TicketNotice) -> TicketExport:
    """A new ticket as a help desk receives it: subject, routing and the transcript as it was
    when the ticket opened, so every retry of the export sends the same body (an idempotent
    create refuses a key with another body)."""
    with db.one_statement() as connection:
        conversation_id, opened, channel = connection.execute(
            select(Ticket.conversation_id, Ticket.created_at, Conversation.channel)
            .outerjoin(Conversation, Conversation.id == Ticket.conversation_id)
            .where(Ticket.id == notice.ticket_id)).one()
        lines = connection.execute(select(MessageLog.role, MessageLog.text, MessageLog.at).where(
            MessageLog.conversation_id == conversation_id, MessageLog.at <= opened)
            .order_by(MessageLog.id)).all()
    source = "API" if channel == "api" else "WhatsApp"
    return TicketExport(
        ticket_id=notice.ticket_id, team=notice.team, priority=notice.priority,
        subject=f"{source} escalation: {', '.join(notice.reasons[:2]) or notice.intent}",
        transcript=[{"role": m.role, "text": m.text, "at": str(m.at)} for m in lines],
        tags=[notice.intent], requester_phone_masked=notice.customer)
