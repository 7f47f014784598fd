"""Why a ticket operation was refused, in the domain's words.

The operations raise these and know nothing of HTTP: the agent API maps each to a status code
in one place (``tierline.serving.api.agents``), the console to a page or a message, the CLI to its
own output. A new front end reuses the operations without importing FastAPI.
"""

from __future__ import annotations


class TicketError(Exception):
    """A ticket operation was refused; the message is safe to show the agent."""


class TicketNotFound(TicketError):
    """No such ticket for this agent: missing, or another team's (so ids leak nothing)."""

    def __init__(self, message: str = "no such ticket") -> None:
        super().__init__(message)


class NotYourTeam(TicketError):
    """The agent asked for the queue of a team it is not in."""

    def __init__(self, message: str = "not one of your teams") -> None:
        super().__init__(message)


class AlreadyClaimed(TicketError):
    """Another agent has the ticket: take it over by a transfer, not by talking over them."""

    def __init__(self, message: str = "claimed by another agent") -> None:
        super().__init__(message)


class InvalidTransition(TicketError):
    """The ticket's status does not allow the operation (a resolved ticket takes no reply)."""


class UnknownTeam(TicketError):
    """A transfer to a team the flow's routing does not name."""
