"""Recording a turn: the one way every channel writes what a customer message did.

A turn writes the customer's line and the bot's replies to the transcript, the policy's
decision (with the features retraining reads), the conversation's new state and, on a
handoff, the ticket that puts the conversation in the agents' queue, referencing its
decision. The WhatsApp worker and ``/v1/decide`` both call :meth:`TurnBatch.record_turn`
once per turn and :meth:`TurnBatch.write` once per transaction, so the rules live here once:
a channel only says how its turns were computed and where the bot's replies go (a WhatsApp
conversation's to the outbox, sent by ``tierline.serving.queue.sender``; an API conversation's back in the
HTTP answer, so none are queued).

Written in bulk: one statement per table for the whole batch (an executemany; the ORM's unit
of work cost more CPU per row than the turn), so recording adds no round trip per message.
"""

from __future__ import annotations

from collections.abc import Sequence

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Select, insert, select
from sqlalchemy.orm import Session

from tierline.nlu.bot import Reply
from tierline.nlu.engine import TurnResult
from tierline.serving.storage.models import (
    UPDATE_CONVERSATION_STATE,
    Conversation,
    DecisionRow,
    MessageLog,
    OutboundMessage,
    Ticket,
    as_utc,
    utcnow,
)
from tierline.serving.notify.outbox import enqueue_ticket_notifications
from tierline.serving.tickets.csat import record_scores
from tierline.serving.tickets.opening import open_tickets, ticket_values
from tierline.serving.channels.whatsapp.client import buttons_payload, text_payload
from tierline.serving.channels.whatsapp.payload import recipient_of

#: Longest customer line kept in the transcript (WhatsApp's own limit is 4,096 characters;
#: ``/v1/decide`` takes up to 50,000).
MAX_LINE = 60_000


def reply_payload(to: str, reply: Reply) -> dict:
    """The Graph API payload of a bot reply (buttons when the reply has them)."""
    return buttons_payload(to, reply.text, reply.buttons) if reply.buttons else text_payload(to, reply.text)


@dataclass
class ConversationRow:
    """A conversation as its turn's transaction locked it (plain values: nothing is loaded
    lazily, and what the turn changes is collected in a :class:`TurnBatch`)."""

    id: str
    channel: str  # whatsapp | api
    customer_id: str
    phone_number_id: str | None
    state: dict
    last_customer_at: datetime | None

    @staticmethod
    def locked(ids) -> Select:
        """``SELECT ... FOR UPDATE`` of these conversations, in id order (no deadlocks)."""
        c = Conversation.__table__.c
        return (select(c.id, c.channel, c.customer_id, c.phone_number_id, c.state,
                       c.last_customer_at)
                .where(c.id.in_(ids)).order_by(c.id).with_for_update())


@dataclass
class TurnOutcome:
    """What one customer message did: the transcript line for it, the bot's replies, the new
    state (None: unchanged), the turn's decision (None for a reaction, a media message or a
    satisfaction score) and a score for a ticket (ticket id, 1-5)."""

    customer_line: str
    replies: list[Reply] = field(default_factory=list)
    state: dict | None = None
    result: TurnResult | None = None
    csat: tuple[int, int] | None = None


@dataclass
class Recorded:
    """What a batch's write did: the tickets it opened (to notify once committed) and how
    many replies it queued in the outbox (to wake the sender)."""

    tickets: list[Ticket]
    replies: int


class TurnBatch:
    """The turns of one transaction, collected by :meth:`record_turn`, written by :meth:`write`."""

    def __init__(self) -> None:
        self.logs: list[dict] = []
        self.decisions: list[dict] = []
        self.outbound: list[dict] = []
        #: (index of the opening decision in ``decisions``, ticket row without its decision id)
        self.tickets: list[tuple[int, dict]] = []
        self.scores: list[tuple[int, int]] = []
        #: The latest state of each conversation, by id (a conversation's later turns in the
        #: batch start from it).
        self.states: dict[str, dict] = {}

    def state_of(self, conversation: ConversationRow) -> dict:
        """The conversation's state after the turns recorded so far (as locked, before any)."""
        latest = self.states.get(conversation.id)
        return conversation.state if latest is None else latest["state"]

    def record_turn(self, conversation: ConversationRow, outcome: TurnOutcome, *, at: datetime,
                    inbound_id: int | None = None, message_key: str | None = None) -> None:
        """Record one customer message's turn: transcript, decision, state, the ticket of a
        handoff, a satisfaction score, and (WhatsApp) the replies in the outbox.

        ``at`` is when the customer wrote (it opens WhatsApp's 24-hour window);
        ``inbound_id`` the stored WhatsApp message the decision is about; ``message_key``
        the message's unique id, which makes its replies' outbox keys (each sent once).
        """
        conv_id = conversation.id
        previous = self.states.get(conv_id)
        last = previous["last_customer_at"] if previous else as_utc(conversation.last_customer_at)
        self.logs.append(dict(conversation_id=conv_id, role="customer",
                              text=outcome.customer_line[:MAX_LINE]))
        result = outcome.result
        if result is not None:
            self.decisions.append(DecisionRow.values_of(conv_id, result, inbound_id))
            if result.handoff is not None:
                self.tickets.append((len(self.decisions) - 1, ticket_values(conv_id, result, None)))
        for n, reply in enumerate(outcome.replies):
            if conversation.channel == "whatsapp":
                to = recipient_of(conv_id)
                self.outbound.append(dict(
                    idempotency_key=f"reply:{message_key}:{n}", conversation_id=conv_id,
                    to=to, phone_number_id=conversation.phone_number_id or "",
                    role="bot", payload=reply_payload(to, reply)))
            self.logs.append(dict(conversation_id=conv_id, role="bot", text=reply.text))
        if outcome.csat is not None:
            self.scores.append(outcome.csat)
        self.states[conv_id] = dict(
            conversation=conv_id,
            state=self.state_of(conversation) if outcome.state is None else outcome.state,
            last_customer_at=at if last is None or at > last else last, updated_at=utcnow())

    def write(self, s: Session, notify_targets: Sequence[str] = (),
              public_url: str | None = None) -> Recorded:
        """Insert and update it all in ``s``'s transaction (transcript lines in the order
        recorded), the opened tickets' notifications for ``notify_targets`` included (both
        commit or neither does; each links its ticket's console page under ``public_url``);
        the tickets opened, with their ids."""
        connection = s.connection()
        if self.logs:
            connection.execute(insert(MessageLog.__table__), self.logs)
        decision_ids = self._write_decisions(connection)
        if self.outbound:
            connection.execute(insert(OutboundMessage.__table__), self.outbound)
        if self.states:
            connection.execute(UPDATE_CONVERSATION_STATE, list(self.states.values()))
        record_scores(connection, self.scores)
        opened = open_tickets(connection, [{**values, "decision_id": decision_ids[i]}
                                           for i, values in self.tickets])
        enqueue_ticket_notifications(s, opened, notify_targets, public_url=public_url)
        return Recorded(opened, len(self.outbound))

    def _write_decisions(self, connection) -> dict[int, int]:
        """Insert the decisions; the ids of those that open a ticket (the tickets' foreign
        keys), by their index in :attr:`decisions`.

        Only the decisions of conversations that open a ticket go through ``RETURNING``: with
        it, SQLAlchemy renders one multi-row ``VALUES`` statement per batch, which psycopg
        cannot cache and converts again every time; a batch's decisions through it cost the
        worker 3 % of its CPU at saturation (py-spy, ``tierline bench http``) against a plain
        executemany. A conversation's decisions stay in one statement, in order, so their ids
        still follow the order of its turns."""
        if not self.decisions:
            return {}
        table = DecisionRow.__table__
        opening = {self.decisions[i]["conversation_id"] for i, _ in self.tickets}
        returned = [i for i, row in enumerate(self.decisions) if row["conversation_id"] in opening]
        plain = [row for row in self.decisions if row["conversation_id"] not in opening]
        if plain:
            connection.execute(insert(table), plain)
        if not returned:
            return {}
        ids = connection.execute(insert(table).returning(table.c.id, sort_by_parameter_order=True),
                                 [self.decisions[i] for i in returned]).scalars()
        return dict(zip(returned, ids))
