"""Tickets leaving the service: labelled decisions for retraining, tickets for a help desk,
conversations with their transcripts and verdicts for evaluation.

Retraining (``tierline.training.retrain``) reads agents' labels through :func:`labelled_decisions`:
plain dataclasses, joined to the decision that opened each ticket by its foreign key, so
training depends on this function's contract rather than on serving's tables, and nothing
pairs rows by timestamp. A help desk (Zendesk) gets a ticket with its transcript through
:func:`help_desk_export`. Batch evaluation (``tierline evaluate conversations --database-url``)
reads conversations through :func:`conversation_transcripts`, the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone

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


@dataclass(frozen=True)
class TranscriptLine:
    """One ``message_log`` row: who wrote (customer, bot, agent) what, when; ``id`` the row's."""

    id: int
    role: str
    text: str
    at: datetime | None


@dataclass(frozen=True)
class TicketVerdict:
    """An agent's label of one of the conversation's tickets, and when the ticket opened."""

    ticket_id: int
    opened_at: datetime
    escalation_needed: str  # yes | no | earlier
    corrected_intent: str | None


@dataclass(frozen=True)
class ConversationTranscript:
    """A conversation as the service kept it: the customer, the tier in its state, every
    transcript line in order, and the agents' verdicts on its tickets."""

    id: str
    customer_id: str
    tier: str | None
    lines: list[TranscriptLine] = field(default_factory=list)
    verdicts: list[TicketVerdict] = field(default_factory=list)


def conversation_transcripts(db: Database, days: tuple[date, date] | None = None,
                             page: int = 200) -> Iterator[ConversationTranscript]:
    """Every conversation (started within ``days``, both included, when given), oldest first,
    with its transcript lines and labelled tickets; read ``page`` conversations at a time."""
    query = select(Conversation.id, Conversation.customer_id, Conversation.state).order_by(
        Conversation.created_at, Conversation.id)
    if days:
        start = datetime.combine(days[0], datetime.min.time(), tzinfo=timezone.utc)
        query = query.where(Conversation.created_at >= start, Conversation.created_at <
                            start + timedelta(days=(days[1] - days[0]).days + 1))
    with db.one_statement() as connection:
        conversations = connection.execute(query).all()
    for first in range(0, len(conversations), page):
        batch = conversations[first:first + page]
        ids = [c.id for c in batch]
        with db.one_statement() as connection:
            lines = connection.execute(
                select(MessageLog.id, MessageLog.conversation_id, MessageLog.role,
                       MessageLog.text, MessageLog.at)
                .where(MessageLog.conversation_id.in_(ids))
                .order_by(MessageLog.conversation_id, MessageLog.at, MessageLog.id)).all()
            verdicts = connection.execute(
                select(Ticket.id, Ticket.conversation_id, Ticket.created_at,
                       EscalationLabel.escalation_needed, EscalationLabel.corrected_intent)
                .join(EscalationLabel, EscalationLabel.ticket_id == Ticket.id)
                .where(Ticket.conversation_id.in_(ids)).order_by(Ticket.id)).all()
        by_conversation: dict[str, ConversationTranscript] = {
            c.id: ConversationTranscript(c.id, c.customer_id or "", (c.state or {}).get("tier"))
            for c in batch}
        for row in lines:
            by_conversation[row.conversation_id].lines.append(
                TranscriptLine(row.id, row.role, row.text, as_utc(row.at)))
        for row in verdicts:
            by_conversation[row.conversation_id].verdicts.append(TicketVerdict(
                row.id, as_utc(row.created_at), row.escalation_needed, row.corrected_intent))
        yield from by_conversation.values()
