"""Telling the customer: how the ticket side of a conversation reaches them, per channel.

Agents' replies and the notices a ticket's life brings ("an agent has joined", the hand-back
with its satisfaction question) are queued here, in the transaction of the ticket change that
caused them, once per idempotency key. Where they go depends on the conversation's channel:

* WhatsApp: a row in the outbox, delivered by ``tierline.serving.queue.sender``. Inside the 24-hour
  customer-service window any message may go; outside it only a template: an agent's reply goes
  as the configured template, a notice is dropped (not worth one).
* API (``/v1/decide``): the bot runtime that owns the conversation delivers, so each message is
  handed to :func:`emit_to_bot_runtime`, the one place they leave tierline for a runtime: an
  event in the notify outbox for the runtime's signed callback
  (:mod:`tierline.serving.notify.runtime`) when one is configured, else nothing (``not_sent``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from sqlalchemy.orm import Session

from tierline.nlu.bot import ConversationState
from tierline.serving.notify.runtime import enqueue_runtime_event
from tierline.serving.logging_setup import mask_phone
from tierline.serving.storage.models import Conversation, MessageLog, OutboundMessage, as_utc, utcnow
from tierline.serving.channels.whatsapp.client import list_payload, template_payload, text_payload
from tierline.serving.channels.whatsapp.payload import recipient_of

log = logging.getLogger(__name__)
#: WhatsApp's customer-service window: free-form messages only this long after the customer's last.
WINDOW = timedelta(hours=24)


@dataclass(frozen=True)
class TicketMessage:
    """What the ticket side says to the customer: an agent's reply or a notice from the flow."""

    kind: Literal["agent_joined", "agent_reply", "hand_back"]
    #: Idempotency key: a message with the same key is queued once.
    key: str
    text: str
    #: Choices the customer can tap (id, title), e.g. the satisfaction scores, and the title of
    #: the button that opens them.
    choices: tuple[tuple[str, str], ...] = ()
    choices_button: str = ""
    #: The ticket it is about, and the display name of the agent who acted (the bot runtime's
    #: events carry both).
    ticket_id: int | None = None
    agent: str | None = None

    @property
    def role(self) -> str:
        """Who speaks in the transcript: the agent, or the bot for the flow's notices."""
        return "agent" if self.kind == "agent_reply" else "bot"


@dataclass(frozen=True)
class Delivery:
    """How a message went: ``text``, ``template``, ``callback`` (queued for the bot runtime's
    callback) or ``not_sent``, and its WhatsApp outbox row."""

    sent_as: Literal["text", "template", "callback", "not_sent"]
    outbound_id: int | None = None


@dataclass(frozen=True)
class ReplyTemplate:
    """The approved WhatsApp template an agent's reply goes as outside the 24-hour window."""

    name: str
    language: str


def window_open(conversation: Conversation | None) -> bool:
    """Whether WhatsApp lets a free-form message reach this customer now."""
    last = as_utc(conversation.last_customer_at) if conversation else None
    return last is not None and utcnow() - last < WINDOW


def tell_customer(s: Session, conversation: Conversation, message: TicketMessage,
                  template: ReplyTemplate | None = None, runtime_callback: bool = False) -> Delivery:
    """Queue ``message`` for the customer in ``s``'s transaction; how it goes.
    ``runtime_callback``: a bot runtime's callback is configured (API conversations).

    A message that goes joins the transcript; an agent's reply joins it in any case (the
    ticket's record of what the agent said, with ``not_sent`` telling the agent it did not go).
    """
    if conversation.channel == "whatsapp":
        delivery = _queue_whatsapp(s, conversation, message, template)
    else:
        delivery = Delivery("callback" if emit_to_bot_runtime(
            s, conversation, message, runtime_callback) else "not_sent")
    if delivery.sent_as != "not_sent" or message.kind == "agent_reply":
        s.add(MessageLog(conversation_id=conversation.id, role=message.role, text=message.text))
    return delivery


#: The runtime's name of each message kind (:class:`~tierline.serving.notify.runtime.RuntimeEvent`).
RUNTIME_KINDS = {"agent_joined": "agent_joined", "agent_reply": "agent_reply",
                 "hand_back": "handed_back"}


def emit_to_bot_runtime(s: Session, conversation: Conversation, message: TicketMessage,
                        enabled: bool = False) -> bool:
    """Where the ticket side of an API-channel conversation leaves tierline for the bot runtime
    that owns it: agents' replies, "an agent has joined", and the hand-back (the conversation
    is the bot's again) with its satisfaction question. True once the message is queued.

    ``enabled`` (a runtime callback is configured): one event in the notify outbox, written in
    ``s`` so that it commits with the ticket change that caused it, once per ``message.key``,
    and POSTed signed to the runtime, retried durably
    (:func:`~tierline.serving.notify.runtime.enqueue_runtime_event`). The satisfaction
    question is then awaited: the runtime's next ``/v1/decide`` that is a score records it
    (:func:`tierline.serving.tickets.csat.answered_score`, as the WhatsApp worker does).

    Not enabled: the message is logged and False returned, so callers report it as not sent
    (and the question, never asked, is not awaited); the runtime sees a hand-back only as its
    next ``/v1/decide`` being answered by the bot.
    """
    if not enabled:
        log.info("ticket message %s for API conversation %s not delivered: no runtime callback",
                 message.kind, mask_phone(conversation.id))
        return False
    if message.ticket_id is None:
        raise ValueError("a message for the bot runtime needs its ticket id")
    enqueue_runtime_event(
        s, conversation.id, message.ticket_id, RUNTIME_KINDS[message.kind], message.key,
        message.text, ConversationState.from_dict(conversation.state).language,
        agent=message.agent, choices=message.choices, choices_title=message.choices_button or None)
    return True


def _queue_whatsapp(s: Session, conversation: Conversation, message: TicketMessage,
                    template: ReplyTemplate | None) -> Delivery:
    """The outbox row of ``message``: text (or a list of its choices) inside the window, the
    template outside it (agents' replies only)."""
    to = recipient_of(conversation.id)
    if window_open(conversation):
        sent_as = "text"
        payload = (list_payload(to, message.text, message.choices_button, list(message.choices))
                   if message.choices else text_payload(to, message.text))
    elif message.kind == "agent_reply" and template is not None:
        sent_as = "template"
        payload = template_payload(to, template.name, template.language, [message.text])
    else:
        return Delivery("not_sent")
    row = OutboundMessage(idempotency_key=message.key, conversation_id=conversation.id, to=to,
                          phone_number_id=conversation.phone_number_id or "", role=message.role,
                          payload=payload)
    s.add(row)
    s.flush()
    return Delivery(sent_as, row.id)
