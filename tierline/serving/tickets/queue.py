"""What agents see: their teams' queue, and one ticket with its transcript and context.

An agent sees and acts on its teams' tickets only; another team's ticket is
:class:`TicketNotFound`, exactly like a missing one, so ticket ids leak nothing. Admins see
every team's.

Who the customer is (their WhatsApp profile name and full number, :func:`customer_identity`)
is shown on the ticket itself to the agents of the ticket's team and to admins; anything else
(queue rows, the answers of claim, transfer and resolve, which may reach an agent the ticket
has just left) carries the number masked and no name.
"""

from __future__ import annotations

from sqlalchemy import select

from tierline.nlu.bot import ConversationState
from tierline.nlu.phone import e164
from tierline.nlu.reasons import from_stored
from tierline.serving.logging_setup import mask_phone
from tierline.serving.storage.db import Database
from tierline.serving.storage.models import (
    Agent,
    Conversation,
    EscalationLabel,
    MessageLog,
    Ticket,
    as_utc,
    utcnow,
)
from tierline.serving.tickets.customer import window_open
from tierline.serving.tickets.errors import NotYourTeam, TicketNotFound

#: The queue's statuses: ``active`` is open and claimed together.
ACTIVE = ("open", "claimed")


def summary(t: Ticket) -> dict:
    """A ticket as a queue row (the customer's id masked). ``reason_codes``: the reasons as
    codes with parameters (a ticket opened before they were stored has its English phrases
    read back, :func:`tierline.nlu.reasons.from_stored`)."""
    created = as_utc(t.created_at)
    reasons = from_stored(t.context.get("reason_codes"), t.context.get("reasons"))
    return {"id": t.id, "team": t.team, "status": t.status, "priority": t.priority,
            "customer": mask_phone(t.conversation_id.rsplit(":", 1)[-1]),
            "intent": t.context.get("intent", ""), "reasons": t.context.get("reasons") or [r.text for r in reasons],
            "reason_codes": [r.to_dict() for r in reasons],
            "p_escalate": t.context.get("p_escalate", 0.0), "created_at": created,
            "age_seconds": (utcnow() - created).total_seconds(),
            "assigned_agent_id": t.assigned_agent_id}


def of_its_team(agent: Agent, ticket: Ticket) -> bool:
    """``agent`` works ``ticket``'s team (or is an admin): it may know who the customer is."""
    return agent.is_admin or ticket.team in agent.teams


def mask_name(name: str) -> str:
    """'Giulia Rossi' -> 'G*** R***': the shape of a name, none of it readable."""
    return " ".join(word[:1] + "***" for word in name.split())


def customer_identity(agent: Agent, ticket: Ticket, conversation: Conversation | None) -> dict:
    """The customer's WhatsApp profile name and number (E.164; None when the customer id is
    not a phone number, or unknown) as ``agent`` may see them: in full for the ticket's team
    and admins, masked for anyone else."""
    name = conversation.customer_name if conversation is not None else None
    customer_id = conversation.customer_id if conversation is not None else ""
    phone = e164(customer_id) if customer_id else None
    if of_its_team(agent, ticket):
        return {"customer_name": name, "customer_phone": phone}
    return {"customer_name": mask_name(name) if name else None,
            "customer_phone": mask_phone(phone) if phone else None}


def order_numbers(ticket: Ticket, conversation: Conversation | None) -> list[str]:
    """The order numbers of the ticket's context and, while it is not resolved, those its
    customer wrote since it opened, from the conversation's state; resolving copies them onto
    the ticket (:func:`context_with_orders`). A message that joins an open ticket is not
    written to the ticket itself: the worker holds its conversation's lock, and locking the
    ticket too would take the two locks in the order opposite to an agent's resolve."""
    numbers = list(ticket.context.get("order_numbers") or [])
    if ticket.context.get("order_number") and ticket.context["order_number"] not in numbers:
        numbers.insert(0, ticket.context["order_number"])
    if ticket.status != "resolved" and conversation is not None:
        written = ConversationState.from_dict(conversation.state).order_numbers
        numbers += [n for n in written if n not in numbers]
    return numbers


def context_with_orders(ticket: Ticket, conversation: Conversation | None) -> dict:
    """The ticket's context with every order number its customer wrote (:func:`order_numbers`):
    ``order_number`` the first one the ticket knew, else the latest written."""
    numbers = order_numbers(ticket, conversation)
    context = dict(ticket.context)
    context["order_numbers"] = numbers
    context["order_number"] = context.get("order_number") or (numbers[-1] if numbers else None)
    return context


def visible(agent: Agent, ticket: Ticket | None) -> Ticket:
    """``ticket`` if ``agent`` may see it; :class:`TicketNotFound` otherwise."""
    if ticket is None or not of_its_team(agent, ticket):
        raise TicketNotFound()
    return ticket


def queue_for(db: Database, agent: Agent, team: str | None = None,
              status: str = "active", limit: int = 100) -> list[dict]:
    """The queue of the agent's teams: most urgent first, then oldest first."""
    if team is not None and not agent.is_admin and team not in agent.teams:
        raise NotYourTeam()
    with db.session() as s:
        tickets = s.scalars(queue_query(select(Ticket), agent, team, status).limit(limit)).all()
        return [{**summary(t), "context": t.context} for t in tickets]


def queue_query(query, agent: Agent, team: str | None = None, status: str = "active"):
    """``query`` (a select of tickets or of some of their columns) narrowed to a queue: its
    status (``active``: open and claimed), the team asked for or else the agent's teams
    (admins: all), most urgent then oldest first. What the queue shows and what the live
    console watches (``tierline.serving.console.live``)."""
    query = query.where(Ticket.status.in_(ACTIVE)) if status == "active" else \
        query.where(Ticket.status == status)
    if team is not None:
        query = query.where(Ticket.team == team)
    elif not agent.is_admin:
        query = query.where(Ticket.team.in_(agent.teams))
    return query.order_by(Ticket.priority_rank, Ticket.created_at)


def ticket_detail(db: Database, agent: Agent, ticket_id: int) -> dict:
    """A ticket with its full transcript, the context of the escalation and its label."""
    with db.session() as s:
        t = visible(agent, s.get(Ticket, ticket_id))
        conv = s.get(Conversation, t.conversation_id)
        lines = s.scalars(select(MessageLog).where(MessageLog.conversation_id == t.conversation_id)
                          .order_by(MessageLog.id)).all()
        label = s.scalars(select(EscalationLabel).where(EscalationLabel.ticket_id == t.id)).first()
        context = {k: v for k, v in context_with_orders(t, conv).items() if k != "features"}
        return {**summary(t), **customer_identity(agent, t, conv), "context": context, "csat": t.csat,
                "transcript": [{"id": m.id, "role": m.role, "text": m.text, "at": as_utc(m.at)}
                               for m in lines],
                "label": None if label is None else {
                    "escalation_needed": label.escalation_needed,
                    "corrected_intent": label.corrected_intent, "frustrated": label.frustrated,
                    "note": label.note},
                "window_open": window_open(conv)}
