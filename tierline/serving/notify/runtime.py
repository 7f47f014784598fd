"""The bot runtime's callback: what the ticket side says to an API conversation, signed and
durable.

A ``/v1/decide`` conversation belongs to a bot runtime, which talks to the customer; when
agents act on its ticket, the runtime is told with one event each (:class:`RuntimeEvent`):

* ``agent_joined``: the ticket's first claim; ``text`` is the flow's "an agent has joined".
* ``agent_reply``: an agent's reply; ``text`` is what the agent wrote.
* ``handed_back``: the ticket is resolved and the conversation is the bot's again; ``text`` is
  the flow's satisfaction question, ``choices`` the scores to offer (``csat_5`` ... ``csat_1``)
  and ``choices_title`` the title of the button that opens them. The customer's answer comes
  back as the conversation's next ``/v1/decide`` (``"5"``, ``"cinque"``, ``"★★★★"`` or
  ``button_id: "csat_4"``).

Texts are in the conversation's language (``language``). The customer's identity (their
number) stays out: the runtime knows the conversation by its own ``conversation_id``.

Durable: each event is one row of the notify outbox (``peer_deliveries``, target
``runtime``), written by :func:`enqueue_runtime_event` in the transaction of the ticket
change that caused it (both commit or neither does), once per idempotency key, and delivered
by the outbox's :class:`~tierline.serving.notify.outbox.NotificationSender` with
:class:`RuntimeNotifier`: retried with backoff through 5xx, 408, 409, 425, 429 and transport
errors until ``notify_max_age_seconds``, then kept as a dead letter (another 4xx ends it at
once). Every try carries the same body and the event's id as ``X-Tierline-Delivery`` and
``Idempotency-Key``: a runtime drops an id it has already handled.

Order: ``seq`` numbers a conversation's events 1, 2, 3 ... as they were queued, and the
outbox delivers them in that order: an event is not sent while an earlier one of its
conversation is still pending or in flight, so an event being retried holds the later ones
back rather than being overtaken. A gap in ``seq`` is an event that failed for good.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tierline.serving.notify.notify import SignedWebhookNotifier
from tierline.serving.storage.db import dialect_insert
from tierline.serving.storage.models import Conversation, PeerDelivery, Ticket, utcnow

#: The outbox target (and notifier name) of the runtime's callback.
RUNTIME = "runtime"
#: How the route keeps a runtime's conversation ids (``/v1/decide``'s ``conversation_id``).
API_PREFIX = "api:"
DELIVERIES, TICKETS, CONVERSATIONS = (PeerDelivery.__table__, Ticket.__table__,
                                      Conversation.__table__)
EventKind = Literal["agent_joined", "agent_reply", "handed_back"]


class Choice(BaseModel):
    """An answer the runtime can offer the customer to tap."""

    id: str = Field(description="send it back as /v1/decide's button_id when tapped")
    title: str


class RuntimeEvent(BaseModel):
    """One conversation event for the bot runtime: the callback's JSON body."""

    event_id: str = Field(description="unique per event; also X-Tierline-Delivery and "
                                      "Idempotency-Key, the same on every retry")
    conversation_id: str = Field(description="the runtime's id of the conversation, as sent "
                                             "to /v1/decide")
    ticket_id: int
    seq: int = Field(ge=1, description="the event's place in its conversation: 1, 2, 3 ...")
    kind: EventKind
    text: str = Field(description="what to show the customer, in the conversation's language")
    language: str = Field(description="the conversation's language (ISO 639-1)")
    agent: str | None = Field(None, description="the agent's display name, if any")
    choices: list[Choice] = Field(default_factory=list,
                                  description="handed_back: the 1-5 scores, best first")
    choices_title: str | None = Field(None, description="handed_back: the title of the button "
                                                        "that opens the choices")
    created_at: datetime

    @property
    def event(self) -> str:
        """The event's name: ``conversation.<kind>`` (``X-Tierline-Event``)."""
        return f"conversation.{self.kind}"


def enqueue_runtime_event(s: Session, conversation_id: str, ticket_id: int, kind: EventKind,
                          key: str, text: str, language: str, agent: str | None = None,
                          choices: tuple[tuple[str, str], ...] = (),
                          choices_title: str | None = None) -> RuntimeEvent | None:
    """Queue one event for the runtime in ``s``'s transaction; the event, or None when an event
    with ``key`` was queued before (each key is queued once).

    The conversation's row is locked first, so the events of one conversation take turns and
    ``seq`` counts them without gaps or repeats.
    """
    s.execute(select(CONVERSATIONS.c.id).where(CONVERSATIONS.c.id == conversation_id)
              .with_for_update())
    queued = s.scalar(select(func.count()).select_from(DELIVERIES.join(
        TICKETS, DELIVERIES.c.ticket_id == TICKETS.c.id)).where(
        TICKETS.c.conversation_id == conversation_id, DELIVERIES.c.target == RUNTIME)) or 0
    now = utcnow()
    event = RuntimeEvent(
        event_id=f"{RUNTIME}:{key}", conversation_id=conversation_id.removeprefix(API_PREFIX),
        ticket_id=ticket_id, seq=queued + 1, kind=kind, text=text, language=language,
        agent=agent, choices=[Choice(id=i, title=t) for i, t in choices],
        choices_title=choices_title, created_at=now)
    inserted = s.execute(dialect_insert(s, DELIVERIES).on_conflict_do_nothing(
        index_elements=["idempotency_key"]).values(
        idempotency_key=event.event_id, ticket_id=ticket_id, event=event.event, target=RUNTIME,
        payload=event.model_dump(mode="json"), status="pending", attempts=0,
        next_attempt_at=now, created_at=now).returning(DELIVERIES.c.id)).scalar()
    return event if inserted is not None else None


class RuntimeNotifier(SignedWebhookNotifier):
    """POSTs a :class:`RuntimeEvent` to the runtime's callback URL, signed like the ticket
    webhook (``X-Tierline-Signature-256: sha256=<HMAC-SHA256 of the body>``), named
    ``X-Tierline-Event: conversation.<kind>``."""

    name = RUNTIME
    payload_model = RuntimeEvent

    def send(self, event: RuntimeEvent, idempotency_key: str) -> None:  # type: ignore[override]
        """Sign the exact bytes sent; :class:`~tierline.serving.notify.notify.NotifyError` on
        a transport error or non-2xx."""
        self._post_signed(event.model_dump_json().encode(), event.event, idempotency_key,
                          "runtime callback", "tierline-runtime-callback")
