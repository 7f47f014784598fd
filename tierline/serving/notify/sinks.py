"""Copy escalated tickets into an external help desk (Zendesk) so agents work where they live.

A sink is called by whoever owns retries (the notify outbox, ``tierline.serving.notify.outbox``): it
raises :class:`SinkError` on any failure and is safe to call again. It looks the ticket up by
``external_id`` before creating it, and creates it with the delivery's ``Idempotency-Key``,
which Zendesk honours on creation (a repeated key answers the first ticket, for two hours): a
create whose answer was lost, or two processes racing on one ticket, make one ticket. The body
must then be the same on every try (the outbox exports the transcript as it was when the
ticket opened).
"""

from __future__ import annotations

import base64
import logging
import re
from typing import Any, Protocol

import httpx
from pydantic import BaseModel

from tierline.serving.notify.notify import IDEMPOTENCY_HEADER, NotifyError, retry_after

log = logging.getLogger(__name__)

ZENDESK_PRIORITY = {"high": "high", "normal": "normal", "low": "low"}


class SinkError(NotifyError):
    """The external system refused or garbled the request; never carries credentials."""


class TicketExport(BaseModel):
    """A ticket as handed to a help desk: transcript entries are role/text/at dicts."""

    ticket_id: int
    subject: str
    transcript: list[dict]
    team: str
    priority: str
    tags: list[str] = []
    requester_name: str | None = None
    requester_phone_masked: str | None = None


class TicketSink(Protocol):
    """Creates (or finds) the external ticket and returns its id."""

    def create(self, ticket: TicketExport, idempotency_key: str) -> str: ...


def external_id(ticket_id: int) -> str:
    """The id Zendesk keeps for us, used to find a ticket we already created."""
    return f"tierline-{ticket_id}"


def render_transcript(ticket: TicketExport) -> str:
    """Plain-text comment body: who the requester is, then ``[at] role: text`` lines."""
    lines = []
    who = " ".join(x for x in (ticket.requester_name, ticket.requester_phone_masked) if x)
    if who:
        lines += [f"Requester: {who}", ""]
    lines += [f"[{m.get('at', '')}] {m.get('role', '?')}: {m.get('text', '')}"
              for m in ticket.transcript]
    return "\n".join(lines) or "(no transcript)"


def _tag(value: str) -> str:
    """Zendesk splits tags on whitespace and lowercases them; do it ourselves, predictably."""
    return re.sub(r"\s+", "_", value.strip().lower())


def zendesk_body(ticket: TicketExport) -> dict[str, Any]:
    """The ``POST /api/v2/tickets.json`` body."""
    priority = ZENDESK_PRIORITY.get(ticket.priority)
    if priority is None:
        log.warning("ticket %s: unknown priority %r; sending normal",
                    ticket.ticket_id, ticket.priority)
        priority = "normal"
    tags = list(dict.fromkeys(t for t in ["tierline", _tag(f"team_{ticket.team}"),
                                          *map(_tag, ticket.tags)] if t))
    return {"ticket": {"subject": ticket.subject, "comment": {"body": render_transcript(ticket)},
                       "priority": priority, "tags": tags,
                       "external_id": external_id(ticket.ticket_id)}}


class ZendeskSink:
    """Zendesk Support tickets over the REST API with an API token (basic auth)."""

    def __init__(self, base_url: str, email: str, api_token: str,
                 client: httpx.Client | None = None, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._auth = (f"{email}/token", api_token)
        self._secrets = [s for s in (api_token, base64.b64encode(
            f"{email}/token:{api_token}".encode()).decode()) if s]
        self._owns_client = client is None
        self._client = client or httpx.Client(timeout=timeout)
        self._timeout = timeout

    def create(self, ticket: TicketExport, idempotency_key: str) -> str:
        """Return the id of the Zendesk ticket for ``ticket``, creating it only if missing
        (``idempotency_key``: the same on every try of one export)."""
        existing = self.find(ticket.ticket_id)
        if existing is not None:
            log.info("ticket %s: already in Zendesk as %s", ticket.ticket_id, existing)
            return existing
        data = self._request("POST", "/api/v2/tickets.json", json=zendesk_body(ticket),
                             headers={IDEMPOTENCY_HEADER: idempotency_key})
        try:
            return str(_required_id(data["ticket"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise SinkError(f"zendesk create: malformed response ({type(exc).__name__})") from None

    def find(self, ticket_id: int) -> str | None:
        """The Zendesk id of a ticket we created earlier for ``ticket_id``, or None."""
        data = self._request("GET", "/api/v2/tickets.json",
                             params={"external_id": external_id(ticket_id)})
        try:
            tickets = data["tickets"]
            if not isinstance(tickets, list):
                raise TypeError("tickets is not a list")
            return str(_required_id(tickets[0])) if tickets else None
        except (KeyError, TypeError, ValueError) as exc:
            raise SinkError(f"zendesk lookup: malformed response ({type(exc).__name__})") from None

    def close(self) -> None:
        """Close the HTTP client if this sink created it."""
        if self._owns_client:
            self._client.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        """One authenticated call; its JSON, or :class:`SinkError` with redacted details."""
        what = f"zendesk {method} {path}"
        try:
            response = self._client.request(method, self.base_url + path, auth=self._auth,
                                            timeout=self._timeout, **kwargs)
        except httpx.HTTPError as exc:
            raise SinkError(f"{what}: {type(exc).__name__}: {self._redact(str(exc))}",
                            summary=f"{what}: {type(exc).__name__}") from None
        if not 200 <= response.status_code < 300:
            snippet = self._redact(response.text[:300].replace("\n", " "))
            raise SinkError(f"{what}: HTTP {response.status_code}: {snippet}",
                            status_code=response.status_code,
                            retry_after=retry_after(response),
                            summary=f"{what}: HTTP {response.status_code}")
        try:
            return response.json()
        except ValueError:
            raise SinkError(f"{what}: HTTP {response.status_code} with a non-JSON body",
                            status_code=response.status_code) from None

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


def _required_id(obj: Any) -> int | str:
    """The ``id`` of a Zendesk object; errors when missing or empty."""
    value = obj["id"]
    if value is None or value == "" or isinstance(value, bool | dict | list):
        raise ValueError("missing ticket id")
    return value

