"""The tickets room: a handoff's whole life, from the turn that opens it to the label.

open (``opening``, by the turn that hands off) → claim → reply → transfer → resolve, which
hands the conversation back to the bot and asks for a satisfaction score (``lifecycle``,
``csat``) → label (``labels``) → export (``export``: labelled decisions for retraining, tickets
for a help desk). ``queue`` is what agents read, ``agents`` who they are (and their
management, audited), ``customer`` how the ticket side reaches the customer on each channel.

The operations speak the domain: they raise :class:`TicketError` subclasses, never HTTP
errors, and the agent API, the console and the CLI all call them, so a rule (another team's
ticket is not found, a resolved ticket takes no reply) holds the same everywhere.
"""

from tierline.serving.tickets.agents import AgentRefused, agent_for_token, create_agent, token_hash
from tierline.serving.tickets.customer import ReplyTemplate
from tierline.serving.tickets.errors import (
    AlreadyClaimed,
    InvalidTransition,
    NotYourTeam,
    TicketError,
    TicketNotFound,
    UnknownTeam,
)
from tierline.serving.tickets.labels import Label, save_label
from tierline.serving.tickets.lifecycle import (
    claim_ticket,
    known_teams,
    resolve_ticket,
    send_reply,
    transfer_ticket,
)
from tierline.serving.tickets.queue import queue_for, ticket_detail

__all__ = [
    "AgentRefused", "AlreadyClaimed", "InvalidTransition", "Label", "NotYourTeam",
    "ReplyTemplate", "TicketError", "TicketNotFound", "UnknownTeam", "agent_for_token", "claim_ticket", "create_agent",
    "known_teams", "queue_for", "resolve_ticket", "save_label", "send_reply", "ticket_detail",
    "token_hash", "transfer_ticket",
]
