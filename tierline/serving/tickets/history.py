"""Who the customer of a ticket is, and what happened with them before: the customer panel.

For the agents of the ticket's team and admins (anyone else: :class:`TicketNotFound`, as for
the ticket itself): the customer's WhatsApp profile name and number, their tier, the order
numbers they wrote, their conversations (on every business number and channel, found by the
customer id, E.164 for WhatsApp) and their other tickets, newest first, each with its outcome
(open, claimed, or resolved: handed back to the bot), the agent's label and the satisfaction
score. Tickets of teams the agent does not work are counted, not listed: a ticket id of
another team tells nothing here, as everywhere in the console.
"""

from __future__ import annotations

from sqlalchemy import func, select

from tierline.nlu.bot import ConversationState
from tierline.serving.storage.db import Database
from tierline.serving.storage.models import Agent, Conversation, EscalationLabel
from tierline.serving.storage.models import MessageLog, Ticket, as_utc
from tierline.serving.tickets.queue import customer_identity, of_its_team, order_numbers, visible

#: Past tickets listed at most (the newest).
MAX_TICKETS = 20


def customer_history(db: Database, agent: Agent, ticket_id: int) -> dict:
    """The customer panel of a ticket ``agent`` may see."""
    with db.session() as s:
        ticket = visible(agent, s.get(Ticket, ticket_id))
        conv = s.get(Conversation, ticket.conversation_id)
        state = ConversationState.from_dict(conv.state) if conv is not None else None
        customer_id = conv.customer_id if conv is not None else None
        convs = (s.scalars(select(Conversation).where(Conversation.customer_id == customer_id)
                           .order_by(Conversation.created_at.desc())).all()
                 if customer_id else [])
        conv_ids = [c.id for c in convs] or [ticket.conversation_id]
        tickets = s.scalars(select(Ticket).where(Ticket.conversation_id.in_(conv_ids))
                            .order_by(Ticket.created_at.desc(), Ticket.id.desc())).all()
        mine = [t for t in tickets if of_its_team(agent, t)]
        labels = {row.ticket_id: row for row in s.scalars(select(EscalationLabel).where(
            EscalationLabel.ticket_id.in_([t.id for t in mine])))} if mine else {}
        said = dict(s.execute(select(MessageLog.conversation_id, func.count()).where(
            MessageLog.conversation_id.in_(conv_ids), MessageLog.role == "customer")
            .group_by(MessageLog.conversation_id)).all())
        return {
            **customer_identity(agent, ticket, conv),
            "tier": (state.tier if state else None) or ticket.context.get("tier"),
            "language": state.language if state else None,
            "order_numbers": order_numbers(ticket, conv),
            "tickets": [_past_ticket(t, labels.get(t.id)) for t in mine
                        if t.id != ticket.id][:MAX_TICKETS],
            "other_teams_tickets": len(tickets) - len(mine),
            "conversations": [_conversation(c, said.get(c.id, 0), [t for t in tickets
                                                                 if t.conversation_id == c.id],
                                            agent) for c in convs],
        }


def _past_ticket(t: Ticket, label: EscalationLabel | None) -> dict:
    """One earlier (or concurrent) ticket of the customer, as the panel lists it."""
    return {"id": t.id, "team": t.team, "status": t.status, "created_at": as_utc(t.created_at),
            "resolved_at": as_utc(t.resolved_at), "intent": t.context.get("intent", ""),
            "handed_back": t.status == "resolved", "csat": t.csat,
            "label": None if label is None else {
                "escalation_needed": label.escalation_needed,
                "corrected_intent": label.corrected_intent}}


def _conversation(c: Conversation, messages: int, tickets: list[Ticket], agent: Agent) -> dict:
    """One of the customer's conversations: where, when, how much, and how it went (with the
    bot only, or with tickets: the newest one the agent may open links it)."""
    linked = next((t.id for t in tickets if of_its_team(agent, t)), None)
    return {"channel": c.channel, "started_at": as_utc(c.created_at),
            "last_message_at": as_utc(c.last_customer_at), "messages": messages,
            "tickets": len(tickets), "open_tickets": sum(t.status != "resolved" for t in tickets),
            "ticket_id": linked}
