"""Customer satisfaction: the 1-5 score the bot asks for when an agent resolves a ticket.

Every text (the question, the title of the list button, the thanks) comes from the bot flow
(``csat_question``, ``csat_button``, ``csat_thanks``) in the conversation's language, so a
business words them in its YAML and an Italian customer is asked in Italian. The question is
asked when the ticket is resolved (:mod:`tierline.serving.tickets.lifecycle`); the customer's answer
is recognised as their next turn and written with it (``tierline.serving.conversations``), on
WhatsApp by the worker and for a bot runtime by ``/v1/decide`` (``tierline.serving.queue.decider``).
"""

from __future__ import annotations

from sqlalchemy import Connection, bindparam, update

from tierline.nlu.bot import ConversationState, csat_score
from tierline.nlu.flow import BotFlow
from tierline.serving.storage.models import Ticket
from tierline.serving.tickets.customer import TicketMessage

#: The scores as list rows, best first: a tap answers ``csat_5`` ... ``csat_1``.
SCORE_CHOICES = tuple((f"csat_{n}", "★" * n) for n in range(5, 0, -1))
_RECORD_SCORE = (update(Ticket.__table__).where(Ticket.__table__.c.id == bindparam("ticket"))
                 .values(csat=bindparam("score")))


def question(flow: BotFlow, language: str, ticket_id: int, agent: str | None = None) -> TicketMessage:
    """The hand-back message of a resolved ticket: the question with the scores to tap."""
    return TicketMessage("hand_back", f"csat:{ticket_id}", flow.text("csat_question", language),
                         SCORE_CHOICES, flow.text("csat_button", language), ticket_id, agent)


def thanks(flow: BotFlow, language: str) -> str:
    """What the bot answers a score with."""
    return flow.text("csat_thanks", language)


def answered_score(state: ConversationState, text: str, button_id: str | None) -> int | None:
    """The score in the customer's message when the bot is waiting for one ("5", a tapped
    row, "cinque", "★★★★"), else None (the message is an ordinary turn)."""
    return csat_score(text, button_id) if state.csat_ticket_id else None


def record_scores(connection: Connection, scores: list[tuple[int, int]]) -> None:
    """Write (ticket id, score) pairs, one statement for the lot."""
    if scores:
        connection.execute(_RECORD_SCORE, [{"ticket": t, "score": n} for t, n in scores])
