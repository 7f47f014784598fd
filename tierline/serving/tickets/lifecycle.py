"""A ticket's life after it opens: claim, reply, transfer, resolve (the hand-back).

open ──claim──► claimed ──resolve──► resolved
  ▲                │
  └───transfer─────┘   (to another team's queue, unassigned)

Each operation is one transaction with the ticket row locked, so two agents acting at once
take turns, and the messages it sends the customer are queued in that same transaction
(:mod:`tierline.serving.tickets.customer`). Resolving hands the conversation back to the bot: its next
message, on any channel, is the bot's to answer and the policy's to judge afresh.

``runtime_callback``: a bot runtime's callback is configured, so the messages of a
``/v1/decide`` conversation reach its runtime (settings ``runtime_callback_url``).
"""

from __future__ import annotations

import secrets

from tierline.nlu.bot import ConversationState
from tierline.nlu.flow import BotFlow, Routing
from tierline.serving.storage.db import Database
from tierline.serving.storage.models import Agent, Conversation, Ticket, utcnow
from tierline.serving.tickets import csat
from tierline.serving.tickets.customer import ReplyTemplate, TicketMessage, tell_customer
from tierline.serving.tickets.errors import AlreadyClaimed, InvalidTransition, UnknownTeam
from tierline.serving.tickets.queue import context_with_orders, summary, visible


def known_teams(routing: Routing) -> list[str]:
    """The teams of the bot flow's routing: where a ticket can be transferred."""
    return sorted(set(routing.teams) | {routing.default_team})


def _workable(agent: Agent, ticket: Ticket | None) -> Ticket:
    """``ticket`` if ``agent`` may act on it now: visible, not resolved, not another's."""
    t = visible(agent, ticket)
    if t.status == "resolved":
        raise InvalidTransition("ticket is resolved")
    if t.assigned_agent_id not in (None, agent.id):
        # Two agents answering one customer at once: the second must take it over first
        # (transfer), not talk over the first.
        raise AlreadyClaimed()
    return t


def _language(conversation: Conversation) -> str:
    return ConversationState.from_dict(conversation.state).language


def claim_ticket(db: Database, agent: Agent, ticket_id: int, flow: BotFlow | None = None,
                 runtime_callback: bool = False) -> dict:
    """Take a ticket. The first claim tells the customer, in their language, that an agent
    has joined (``agent_joined``)."""
    with db.session() as s:
        t = _workable(agent, s.get(Ticket, ticket_id, with_for_update=True))
        first = t.claimed_at is None
        t.status, t.assigned_agent_id, t.claimed_at = "claimed", agent.id, t.claimed_at or utcnow()
        if first and flow is not None:
            conv = s.get(Conversation, t.conversation_id)
            tell_customer(s, conv, TicketMessage(
                "agent_joined", f"joined:{t.id}", flow.text("agent_joined", _language(conv)),
                ticket_id=t.id, agent=agent.name), runtime_callback=runtime_callback)
        return summary(t)


def send_reply(db: Database, agent: Agent, ticket_id: int, text: str,
               template: ReplyTemplate | None = None, runtime_callback: bool = False) -> dict:
    """Send the agent's reply (as ``template`` outside WhatsApp's 24-hour window); an open
    ticket becomes the agent's. Says how it went: ``text``, ``template``, ``callback`` (queued
    for the bot runtime) or ``not_sent``."""
    with db.session() as s:
        t = _workable(agent, s.get(Ticket, ticket_id, with_for_update=True))
        conv = s.get(Conversation, t.conversation_id)
        delivery = tell_customer(s, conv, TicketMessage(
            "agent_reply", f"agent:{ticket_id}:{secrets.token_hex(8)}", text, ticket_id=t.id,
            agent=agent.name), template, runtime_callback)
        if t.status == "open":
            t.status, t.assigned_agent_id, t.claimed_at = "claimed", agent.id, utcnow()
        t.first_agent_reply_at = t.first_agent_reply_at or utcnow()
        return {"outbound_id": delivery.outbound_id, "sent_as": delivery.sent_as}


def transfer_ticket(db: Database, routing: Routing, agent: Agent, ticket_id: int, team: str) -> dict:
    """Move a ticket to another team (back to its queue, unassigned)."""
    known = known_teams(routing)
    if team not in known:
        raise UnknownTeam(f"unknown team; known teams: {known}")
    with db.session() as s:
        t = visible(agent, s.get(Ticket, ticket_id, with_for_update=True))
        if t.status == "resolved":
            raise InvalidTransition("ticket is resolved")
        t.team, t.status, t.assigned_agent_id = team, "open", None
        return summary(t)


def resolve_ticket(db: Database, flow: BotFlow, agent: Agent, ticket_id: int,
                   runtime_callback: bool = False) -> dict:
    """Close the ticket and hand the conversation back to the bot, which asks the customer
    for a 1-5 score (and waits for it only if the question could be sent)."""
    with db.session() as s:
        t = visible(agent, s.get(Ticket, ticket_id, with_for_update=True))
        if t.status == "resolved":
            return summary(t)
        conv = s.get(Conversation, t.conversation_id, with_for_update=True)
        # The order numbers written while the ticket was open stay with it.
        t.context = context_with_orders(t, conv)
        t.status, t.resolved_at = "resolved", utcnow()
        state = handed_back(ConversationState.from_dict(conv.state))
        asked = tell_customer(s, conv, csat.question(flow, state.language, t.id, agent.name),
                              runtime_callback=runtime_callback)
        state.csat_ticket_id = t.id if asked.sent_as != "not_sent" else None
        conv.state = state.to_dict()
        return summary(t)


def handed_back(state: ConversationState) -> ConversationState:
    """``state`` once the bot has the conversation again: at the menu, no longer escalated,
    its failed replies forgotten (the next handoff is decided afresh)."""
    state.step, state.escalated, state.failed_attempts = "menu", False, 0
    state.csat_ticket_id = None
    return state
