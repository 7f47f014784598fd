"""Live console: Server-Sent Events of the queue and of one ticket, from the database.

``GET /console/events`` (the console's session cookie; 401 without one) streams what changes
for the signed-in agent: on the queue page the queue of its teams (admins: every team's) as
rendered rows whenever a ticket arrives, is claimed, transferred or resolved; on a ticket page
(``?ticket=ID``) each new message of its conversation and each change of the ticket's status,
team or agent.

How: the stream's generator reads the database every :data:`POLL_SECONDS` (two small
queries: the queue's fingerprint, or the ticket's row and its new messages) and sends what
differs from what it sent before. The database is the only shared state, so it works the
same with several service processes, on PostgreSQL and on SQLite, with no broker, and a
ticket opened by another process shows up within a poll. A stream ends after
:data:`STREAM_SECONDS` and the browser's ``EventSource`` reconnects by itself (``retry``):
each connection starts with the current state (the queue's rows, the ticket's state, the
messages after the page's last one: the page ignores ones it has), so nothing is lost in
between, the session is checked again, and a service that is shutting down is not held up
by open streams (``timeout_graceful_shutdown`` is 20 s).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import anyio
from sqlalchemy import select

from tierline.serving.storage.db import Database
from tierline.serving.storage.models import Agent, MessageLog, Ticket
from tierline.serving.tickets.errors import TicketNotFound
from tierline.serving.tickets.queue import queue_query, visible

#: How often a stream reads the database: a change reaches the page within about this.
POLL_SECONDS = 0.5
#: How long one stream lasts before the browser reconnects (under uvicorn's 20 s graceful
#: shutdown, so a stopping service is never kept waiting by an open console).
STREAM_SECONDS = 15.0
#: How often a stream checks that its session still stands (signed out elsewhere, token
#: rotated, agent disabled or its teams changed).
SESSION_CHECK_SECONDS = 1.0
#: A comment line this often keeps proxies from closing a quiet stream.
KEEPALIVE_SECONDS = 10.0
#: The queue's rows are sent again this often even without a change (their ages move on).
REFRESH_SECONDS = 30.0
#: Milliseconds the browser waits before reconnecting.
RETRY_MS = 500


@dataclass(frozen=True)
class Event:
    """One Server-Sent Event: its name and its JSON data (one line: JSON escapes newlines)."""

    name: str
    data: dict

    def encode(self) -> bytes:
        return f"event: {self.name}\ndata: {json.dumps(self.data)}\n\n".encode()


@dataclass
class QueueWatch:
    """The agent's queue page: sends the rendered rows when the queue's tickets change."""

    db: Database
    agent: Agent
    status: str
    #: Renders the queue (``queue_for`` and the rows' template): ``{"ids", "rows_html"}``.
    render: Callable[[Agent], dict]
    limit: int = 100
    _seen: tuple | None = None
    _sent_at: float = 0.0

    def poll(self) -> list[Event]:
        q = queue_query(select(Ticket.id, Ticket.status, Ticket.team, Ticket.assigned_agent_id,
                               Ticket.priority_rank), self.agent, status=self.status)
        with self.db.one_statement() as connection:
            rows = tuple(map(tuple, connection.execute(q.limit(self.limit))))
        if rows == self._seen and time.monotonic() - self._sent_at < REFRESH_SECONDS:
            return []
        self._seen, self._sent_at = rows, time.monotonic()
        return [Event("queue", self.render(self.agent))]


@dataclass
class TicketWatch:
    """One ticket's page: its new messages (after ``after``, the page's last one) and
    changes of its status, team or agent; ``gone`` once the agent may no longer see it."""

    db: Database
    agent: Agent
    ticket_id: int
    after: int
    #: Renders one transcript line (the page's bubble template) from a ``MessageLog`` row.
    render_message: Callable[[MessageLog], str]
    #: The words of a status in the agent's language.
    status_label: Callable[[str], str]
    _state: tuple | None = None
    _sent: set[int] = field(default_factory=set)

    def poll(self) -> list[Event]:
        with self.db.session() as s:
            try:
                ticket = visible(self.agent, s.get(Ticket, self.ticket_id))
            except TicketNotFound:
                return [Event("gone", {"ticket": self.ticket_id})]
            # The newest lines after the page's last, each sent once: a set rather than "after
            # the last id sent", as a line can commit after one with a higher id.
            lines = s.scalars(select(MessageLog).where(
                MessageLog.conversation_id == ticket.conversation_id,
                MessageLog.id > self.after).order_by(MessageLog.id.desc()).limit(100)).all()[::-1]
            state = (ticket.status, ticket.team, ticket.assigned_agent_id)
        events = [Event("message", {"id": m.id, "role": m.role, "html": self.render_message(m)})
                  for m in lines if m.id not in self._sent]
        self._sent.update(m.id for m in lines)
        if state != self._state:
            self._state = state
            events.append(Event("ticket", {
                "status": state[0], "status_label": self.status_label(state[0]),
                "team": state[1], "assigned_agent_id": state[2]}))
        return events


async def stream(watch: QueueWatch | TicketWatch, still_signed_in: Callable[[], Agent | None]
                 ) -> AsyncIterator[bytes]:
    """The event stream of one connection: ``watch``'s events every :data:`POLL_SECONDS` for
    :data:`STREAM_SECONDS`; ``signout`` (and the end) once the session is no longer valid,
    checked every :data:`SESSION_CHECK_SECONDS`.

    The database is read on a worker thread, never on the event loop. A browser that goes
    away ends the stream at once (Starlette cancels the generator on ``http.disconnect``)."""
    yield f"retry: {RETRY_MS}\n\n".encode()
    started = last_write = last_check = time.monotonic()
    while time.monotonic() - started < STREAM_SECONDS:
        if time.monotonic() - last_check >= SESSION_CHECK_SECONDS:
            last_check = time.monotonic()
            agent = await anyio.to_thread.run_sync(still_signed_in)
            if agent is None:
                yield Event("signout", {}).encode()
                return
            watch.agent = agent  # its teams as they are now
        events = await anyio.to_thread.run_sync(watch.poll)
        for event in events:
            yield event.encode()
        if events:
            last_write = time.monotonic()
            if any(e.name == "gone" for e in events):
                return
        elif time.monotonic() - last_write >= KEEPALIVE_SECONDS:
            yield b": keepalive\n\n"
            last_write = time.monotonic()
        await asyncio.sleep(POLL_SECONDS)
