"""Persisting what the webhook receives, before it answers 200.

Inbound messages are inserted with their job in one transaction, deduplicated on ``wamid`` by
a unique constraint (``INSERT ... ON CONFLICT DO NOTHING``; Meta delivers at least once,
sometimes concurrently); on PostgreSQL the messages of a whole group commit, with their
conversations and jobs, are one statement (data-modifying CTEs), one round trip. Statuses update the
outbound message they refer to. If the database cannot be reached, the caller answers 503 so
Meta retries: nothing is acknowledged that was not stored.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from sqlalchemy import DateTime, bindparam, or_, select, text, update

from tierline.serving.storage.db import Database, dialect_insert
from tierline.serving.storage.models import (
    Conversation,
    InboundMessage,
    Job,
    OutboundMessage,
    utcnow,
)
from tierline.serving.channels.whatsapp.payload import (  # noqa: F401 - conversation_id: re-exported
    IncomingMessage,
    StatusUpdate,
    conversation_id,
)

log = logging.getLogger(__name__)
CONVERSATION = Conversation.__table__
STATUS_ORDER = {"sent": 1, "delivered": 2, "read": 3, "failed": 4}


@dataclass
class StoreResult:
    """How many messages were new, duplicates, or for another number; statuses applied."""

    stored: int = 0
    duplicates: int = 0
    foreign: int = 0
    statuses: int = 0


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
    results, ours = [], []
    for messages, statuses in deliveries:
        mine = [m for m in messages if phone_number_id is None or m.phone_number_id == phone_number_id]
        results.append(StoreResult(foreign=len(messages) - len(mine)))
        ours.append(mine)
        if len(mine) < len(messages):
            log.warning("ignored %d message(s) for another phone_number_id", len(messages) - len(mine))
    messages = [m for mine in ours for m in mine]
    if not db.is_sqlite and not any(statuses for _, statuses in deliveries):
        # Messages only (the common batch): one statement, which commits on its own.
        with db.one_statement() as connection:
            new = _insert_messages_postgresql(connection, messages, new_state)
    else:
        with db.session() as session:
            insert_messages = _insert_messages if db.is_sqlite else _insert_messages_postgresql
            apply_statuses = _apply_statuses if db.is_sqlite else _apply_statuses_postgresql
            new = insert_messages(session, messages, new_state)
            matched = iter(apply_statuses(session, [st for _, sts in deliveries for st in sts]))
        for result, (_, statuses) in zip(results, deliveries):
            result.statuses = sum(next(matched) for _ in statuses)
    stored = iter(new)
    for result, mine in zip(results, ours):
        for _ in mine:
            if next(stored):
                result.stored += 1
            else:
                result.duplicates += 1
    return results


def _rows(msg: IncomingMessage, new_state) -> tuple[dict, dict]:
    """The conversation and inbound-message rows of one message (the customer's number in
    E.164, the conversation keyed by Meta's ``wa_id``)."""
    conv_id, now = msg.conversation_id, utcnow()
    conversation = dict(id=conv_id, channel="whatsapp", customer_id=msg.customer_id,
                        customer_name=msg.customer_name, phone_number_id=msg.phone_number_id,
                        state=new_state(conv_id, msg.customer_id), created_at=now, updated_at=now)
    inbound = dict(wamid=msg.wamid, conversation_id=conv_id, customer_id=msg.customer_id,
                   phone_number_id=msg.phone_number_id, type=msg.type, text=msg.text[:60_000],
                   button_id=msg.button_id, payload=msg.raw, sent_at=msg.sent_at, received_at=now)
    return conversation, inbound


def _insert_messages(session, messages: list[IncomingMessage], new_state) -> list[bool]:
    """Conversation (if new), message and job of each message, a statement each; per message,
    False when it is a duplicate (its ``wamid`` was stored before, or earlier in the list)."""
    return [_insert_message(session, msg, new_state) for msg in messages]


def _insert_message(session, msg: IncomingMessage, new_state) -> bool:
    conversation, inbound = _rows(msg, new_state)
    session.execute(dialect_insert(session, Conversation).values(**conversation)
                    .on_conflict_do_nothing(index_elements=["id"]))
    if msg.customer_name:
        session.execute(RENAME_CONVERSATION, {"conversation": conversation["id"],
                                              "profile_name": msg.customer_name})
    inbound_id = session.execute(dialect_insert(session, InboundMessage).values(**inbound)
                                 .on_conflict_do_nothing(index_elements=["wamid"])
                                 .returning(InboundMessage.id)).scalar()
    if inbound_id is None:
        return False
    session.execute(dialect_insert(session, Job).values(
        inbound_id=inbound_id, status="pending", attempts=0, available_at=utcnow()))
    return True


#: A customer's new WhatsApp profile name on their conversation. Only a row whose name
#: differs is updated (and so locked): the intake never waits on the worker's lock of a
#: conversation for a name that did not change.
RENAME_CONVERSATION = (
    update(CONVERSATION).where(CONVERSATION.c.id == bindparam("conversation"), or_(
        CONVERSATION.c.customer_name.is_(None), CONVERSATION.c.customer_name != bindparam("profile_name")))
    .values(customer_name=bindparam("profile_name")))


#: Every message of a group commit with its conversation (if new) and job, as one PostgreSQL
#: statement: the rows travel as arrays (``unnest``), and data-modifying CTEs insert the new
#: conversations, the messages (``ON CONFLICT (wamid) DO NOTHING``: a redelivery, or the same
#: message twice in one batch, is not inserted again) and a job for each message inserted, in
#: the batch's order (a conversation's jobs are turned in id order). One round trip for the
#: whole batch, not one per message. Textual and built once: building the SQLAlchemy
#: construct per batch cost more than running it.
_STORE_BATCH_POSTGRESQL = text("""
WITH batch AS (
    SELECT * FROM unnest(CAST(:ord AS int[]), CAST(:wamid AS text[]), CAST(:conversation_id AS text[]),
                         CAST(:customer_id AS text[]), CAST(:phone_number_id AS text[]),
                         CAST(:type AS text[]), CAST(:text AS text[]), CAST(:button_id AS text[]),
                         CAST(:payload AS json[]), CAST(:sent_at AS timestamptz[]),
                         CAST(:state AS json[]), CAST(:customer_name AS text[]))
        AS b(ord, wamid, conversation_id, customer_id, phone_number_id, type, text, button_id,
             payload, sent_at, state, customer_name)),
new_conversation AS (
    INSERT INTO conversations (id, channel, customer_id, customer_name, phone_number_id, state,
                               created_at, updated_at)
    SELECT DISTINCT ON (conversation_id) conversation_id, 'whatsapp', customer_id, customer_name,
           phone_number_id, state, :now, :now
    FROM batch ORDER BY conversation_id, ord
    ON CONFLICT (id) DO NOTHING),
renamed AS (
    -- An existing conversation whose customer's profile name changed (the latest of the
    -- batch); rows inserted above are not visible here, and a row whose name is the same is
    -- neither updated nor locked (see RENAME_CONVERSATION).
    UPDATE conversations AS c SET customer_name = named.customer_name
    FROM (SELECT DISTINCT ON (conversation_id) conversation_id, customer_name FROM batch
          WHERE customer_name IS NOT NULL ORDER BY conversation_id, ord DESC) AS named
    WHERE c.id = named.conversation_id AND c.customer_name IS DISTINCT FROM named.customer_name),
new_message AS (
    INSERT INTO inbound_messages (wamid, conversation_id, customer_id, phone_number_id, type, text,
                                  button_id, payload, sent_at, received_at)
    SELECT wamid, conversation_id, customer_id, phone_number_id, type, text, button_id, payload,
           sent_at, :now
    FROM batch ORDER BY ord
    ON CONFLICT (wamid) DO NOTHING RETURNING id, wamid),
new_job AS (
    INSERT INTO jobs (inbound_id, status, attempts, available_at)
    SELECT id, 'pending', 0, :now FROM new_message ORDER BY id)
SELECT wamid FROM new_message
""").bindparams(bindparam("now", type_=DateTime(timezone=True)))


def _insert_messages_postgresql(session, messages: list[IncomingMessage], new_state) -> list[bool]:
    """:func:`_insert_messages` in one statement (:data:`_STORE_BATCH_POSTGRESQL`)."""
    if not messages:
        return []
    columns: dict[str, list] = {name: [] for name in (
        "ord", "wamid", "conversation_id", "customer_id", "phone_number_id", "type", "text",
        "button_id", "payload", "sent_at", "state", "customer_name")}
    for n, msg in enumerate(messages):
        conversation, inbound = _rows(msg, new_state)
        for name, value in inbound.items():
            if name in columns:
                columns[name].append(value)
        columns["ord"].append(n)
        columns["payload"][-1] = json.dumps(inbound["payload"])
        columns["state"].append(json.dumps(conversation["state"]))
        columns["customer_name"].append(conversation["customer_name"])
    stored = set(session.scalars(_STORE_BATCH_POSTGRESQL, {**columns, "now": utcnow()}))
    new = []
    for msg in messages:  # a wamid twice in the batch: the first one is the stored one
        new.append(msg.wamid in stored)
        stored.discard(msg.wamid)
    return new


def _apply_statuses(session, statuses: list[StatusUpdate]) -> list[bool]:
    """Apply each status to the outbound message it is about, a statement or two each; per
    status, whether that message was found."""
    return [_apply_status(session, st) for st in statuses]


def _apply_status(session, st: StatusUpdate) -> bool:
    row = session.scalars(select(OutboundMessage).where(OutboundMessage.wamid == st.wamid)).first()
    if row is None and st.callback_data:
        # The send succeeded but the process died before recording the wamid: reconcile.
        row = session.scalars(select(OutboundMessage).where(
            OutboundMessage.idempotency_key == st.callback_data)).first()
        if row is not None and row.wamid is None:
            row.wamid = st.wamid
    if row is None:
        return False
    if STATUS_ORDER.get(st.status, 0) >= STATUS_ORDER.get(row.status, 0):
        row.status = st.status
        row.status_at = st.at or utcnow()
        if st.status == "failed":
            row.last_error = str(st.errors)[:500]
    return True


def _status_rank(column: str) -> str:
    """SQL for :data:`STATUS_ORDER` of ``column`` (0 for any other status)."""
    return "CASE " + column + " " + " ".join(
        f"WHEN '{status}' THEN {rank}" for status, rank in STATUS_ORDER.items()) + " ELSE 0 END"


#: The statuses of a batch in one statement. Per wamid the furthest status of the batch (the
#: latest of equals) is applied unless the row is already further: a status never goes back
#: ("read" then a late "delivered" stays "read"). A row whose wamid was never recorded (Meta
#: accepted the send, the process died before recording it; or the status simply came first)
#: is found by the idempotency key Meta echoes (``biz_opaque_callback_data``) and gets the
#: wamid, unless a row already has it. The rows are locked in id order, in this one statement,
#: as everything that updates outbound rows locks them (the sender's record): two statements,
#: or two orders, deadlocked with the sender (PostgreSQL broke it after a second by failing one
#: side: a webhook answered 503, or the sender backed off). The wamids that have a row come back.
_APPLY_STATUSES_POSTGRESQL = text(f"""
WITH batch AS (
    SELECT *, {_status_rank("status")} AS rank
    FROM unnest(CAST(:ord AS int[]), CAST(:wamid AS text[]), CAST(:status AS text[]),
                CAST(:at AS timestamptz[]), CAST(:error AS text[]), CAST(:callback AS text[]))
        AS b(ord, wamid, status, at, error, callback)),
furthest AS (
    SELECT DISTINCT ON (wamid) * FROM batch ORDER BY wamid, rank DESC, ord DESC),
target AS (
    SELECT o.id, f.* FROM outbound_messages AS o JOIN furthest AS f ON o.wamid = f.wamid
    UNION ALL
    SELECT o.id, f.* FROM outbound_messages AS o JOIN furthest AS f ON o.idempotency_key = f.callback
    WHERE o.wamid IS NULL
      AND NOT EXISTS (SELECT 1 FROM outbound_messages AS x WHERE x.wamid = f.wamid)),
locked AS (
    SELECT o.id FROM outbound_messages AS o WHERE o.id IN (SELECT id FROM target)
    ORDER BY o.id FOR UPDATE),
applied AS (
    UPDATE outbound_messages AS o
    SET wamid = coalesce(o.wamid, t.wamid),
        status = CASE WHEN t.rank >= {_status_rank("o.status")} THEN t.status ELSE o.status END,
        status_at = CASE WHEN t.rank >= {_status_rank("o.status")} THEN t.at ELSE o.status_at END,
        last_error = CASE WHEN t.rank >= {_status_rank("o.status")} AND t.status = 'failed'
                          THEN t.error ELSE o.last_error END
    FROM target AS t
    WHERE o.id = t.id AND o.id IN (SELECT id FROM locked))
SELECT DISTINCT wamid FROM target
""")


def _apply_statuses_postgresql(session, statuses: list[StatusUpdate]) -> list[bool]:
    """:func:`_apply_statuses` in one statement for the whole batch: Meta sends three statuses
    (sent, delivered, read) for every reply, and one at a time they cost a CPU-ms each."""
    if not statuses:
        return []
    now = utcnow()
    found = set(session.scalars(_APPLY_STATUSES_POSTGRESQL, {
        "ord": list(range(len(statuses))), "wamid": [st.wamid for st in statuses],
        "status": [st.status for st in statuses], "at": [st.at or now for st in statuses],
        "error": [str(st.errors)[:500] if st.status == "failed" else None for st in statuses],
        "callback": [st.callback_data for st in statuses]}))
    return [st.wamid in found for st in statuses]
