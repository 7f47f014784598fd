"""Persisting what the webhook receives, before it answers 200.

Inbound messages are inserted with their job in one transaction, deduplicated on ``wamid`` by
a unique constraint (``INSERT ... ON CONFLICT DO NOTHING``; Meta delivers at least once,
sometimes concurrently); on PostgreSQL a message's conversation, message and job rows are one
statement (data-modifying CTEs), one round trip. Statuses update the
outbound message they refer to. If the database cannot be reached, the caller answers 503 so
Meta retries: nothing is acknowledged that was not stored.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import DateTime, bindparam, select, text

from serving.storage.db import Database, dialect_insert
from serving.storage.models import (
    Conversation,
    InboundMessage,
    Job,
    OutboundMessage,
    utcnow,
)
from serving.whatsapp.payload import IncomingMessage, StatusUpdate

log = logging.getLogger(__name__)
STATUS_ORDER = {"sent": 1, "delivered": 2, "read": 3, "failed": 4}


@dataclass
class StoreResult:
    """How many messages were new, duplicates, or for another number; statuses applied."""

    stored: int = 0
    duplicates: int = 0
    foreign: int = 0
    statuses: int = 0


def conversation_id(phone_number_id: str, customer_id: str) -> str:
    """One WhatsApp conversation per (business number, customer)."""
    return f"wa:{phone_number_id}:{customer_id}"


def store_webhook(db: Database, messages: list[IncomingMessage], statuses: list[StatusUpdate],
                  phone_number_id: str | None, new_state) -> StoreResult:
    """Store new messages (+ jobs, + conversations) and apply statuses, in one transaction.

    ``new_state(conversation_id, customer_id) -> dict`` builds the state of a new conversation.
    Inserts are ``ON CONFLICT DO NOTHING`` on the unique keys, so a concurrent duplicate
    delivery is simply not inserted again (no read-then-write race, no retry).
    """
    return store_deliveries(db, [(messages, statuses)], phone_number_id, new_state)[0]


def store_deliveries(db: Database, deliveries: list[tuple[list[IncomingMessage], list[StatusUpdate]]],
                     phone_number_id: str | None, new_state) -> list[StoreResult]:
    """Store several webhook deliveries in one transaction (the intake's group commit): one
    result per delivery, in order. All or nothing: if it raises, none of them was stored."""
    with db.session() as session:
        return [_store(session, messages, statuses, phone_number_id, new_state)
                for messages, statuses in deliveries]


def _dialect(session) -> str:
    return session.get_bind().dialect.name


def _rows(msg: IncomingMessage, new_state) -> tuple[dict, dict]:
    """The conversation and inbound-message rows of one message."""
    conv_id, now = conversation_id(msg.phone_number_id, msg.customer_id), utcnow()
    conversation = dict(id=conv_id, channel="whatsapp", customer_id=msg.customer_id,
                        phone_number_id=msg.phone_number_id,
                        state=new_state(conv_id, msg.customer_id), created_at=now, updated_at=now)
    inbound = dict(wamid=msg.wamid, conversation_id=conv_id, customer_id=msg.customer_id,
                   phone_number_id=msg.phone_number_id, type=msg.type, text=msg.text[:60_000],
                   button_id=msg.button_id, payload=msg.raw, sent_at=msg.sent_at, received_at=now)
    return conversation, inbound


def _store_message(session, msg: IncomingMessage, new_state) -> bool:
    """Conversation (if new), message and job; False when the message is a duplicate."""
    conversation, inbound = _rows(msg, new_state)
    session.execute(dialect_insert(session, Conversation).values(**conversation)
                    .on_conflict_do_nothing(index_elements=["id"]))
    inbound_id = session.execute(dialect_insert(session, InboundMessage).values(**inbound)
                                 .on_conflict_do_nothing(index_elements=["wamid"])
                                 .returning(InboundMessage.id)).scalar()
    if inbound_id is None:
        return False
    session.execute(dialect_insert(session, Job).values(
        inbound_id=inbound_id, status="pending", attempts=0, available_at=utcnow()))
    return True


#: A message's conversation (if new), message and job as one PostgreSQL statement
#: (data-modifying CTEs; the job only for a message that was new). Textual and built once:
#: building the equivalent SQLAlchemy construct per message cost more CPU than the insert.
_STORE_ONE_POSTGRESQL = text("""
WITH new_conversation AS (
    INSERT INTO conversations (id, channel, customer_id, phone_number_id, state, created_at, updated_at)
    VALUES (:conversation_id, 'whatsapp', :customer_id, :phone_number_id, :state, :now, :now)
    ON CONFLICT (id) DO NOTHING),
new_message AS (
    INSERT INTO inbound_messages (wamid, conversation_id, customer_id, phone_number_id, type, text,
                                  button_id, payload, sent_at, received_at)
    VALUES (:wamid, :conversation_id, :customer_id, :phone_number_id, :type, :text, :button_id,
            :payload, :sent_at, :now)
    ON CONFLICT (wamid) DO NOTHING RETURNING id)
INSERT INTO jobs (inbound_id, status, attempts, available_at)
SELECT id, 'pending', 0, :now FROM new_message RETURNING id
""").bindparams(bindparam("state", type_=Conversation.__table__.c.state.type),
                bindparam("payload", type_=InboundMessage.__table__.c.payload.type),
                bindparam("now", type_=DateTime(timezone=True)),
                bindparam("sent_at", type_=DateTime(timezone=True)))


def _store_message_postgresql(session, msg: IncomingMessage, new_state) -> bool:
    """The three inserts of ``_store_message`` in one statement: one round trip, not three."""
    conversation, inbound = _rows(msg, new_state)
    return session.execute(_STORE_ONE_POSTGRESQL, {
        **inbound, "state": conversation["state"], "now": inbound["received_at"]}).scalar() is not None


def _store(session, messages, statuses, phone_number_id, new_state) -> StoreResult:
    result = StoreResult()
    ours = [m for m in messages if phone_number_id is None or m.phone_number_id == phone_number_id]
    result.foreign = len(messages) - len(ours)
    if result.foreign:
        log.warning("ignored %d message(s) for another phone_number_id", result.foreign)
    store_one = _store_message_postgresql if _dialect(session) == "postgresql" else _store_message
    for msg in ours:
        if store_one(session, msg, new_state):
            result.stored += 1
        else:
            result.duplicates += 1
    for st in statuses:
        result.statuses += _apply_status(session, st)
    return result


def _apply_status(session, st: StatusUpdate) -> int:
    row = session.scalars(select(OutboundMessage).where(OutboundMessage.wamid == st.wamid)).first()
    if row is None and st.callback_data:
        # The send succeeded but the process died before recording the wamid: reconcile.
        row = session.scalars(select(OutboundMessage).where(
            OutboundMessage.idempotency_key == st.callback_data)).first()
        if row is not None and row.wamid is None:
            row.wamid = st.wamid
    if row is None:
        return 0
    if STATUS_ORDER.get(st.status, 0) >= STATUS_ORDER.get(row.status, 0):
        row.status = st.status
        row.status_at = st.at or utcnow()
        if st.status == "failed":
            row.last_error = str(st.errors)[:500]
    return 1
