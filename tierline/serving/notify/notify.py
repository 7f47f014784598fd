"""Tell agents a ticket exists: the notice, and its Slack and HMAC-signed webhook notifiers.

A notifier makes one HTTP delivery and raises :class:`NotifyError` when it fails; it is called
by the notify outbox (``tierline.serving.notify.outbox``), which owns durability and retries, with the
delivery's idempotency key: sent as ``Idempotency-Key`` (and, on the signed webhook, as
``X-Tierline-Delivery``) so a receiver can drop a retried delivery it already has.

Notices carry the customer's number already masked; nothing here logs secrets (webhook URLs,
signing keys) or full numbers.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import datetime
from typing import Any, Literal, Protocol

import httpx
from pydantic import BaseModel, field_validator


SIGNATURE_HEADER = "X-Tierline-Signature-256"
EVENT_HEADER = "X-Tierline-Event"
DELIVERY_HEADER = "X-Tierline-Delivery"
IDEMPOTENCY_HEADER = "Idempotency-Key"
TICKET_CREATED = "ticket.created"
_UNMASKED_PHONE = re.compile(r"\+?[\d\s().-]{7,}")


class NotifyError(Exception):
    """A peer refused or failed a delivery. The message never holds secrets; ``summary`` (what
    the outbox stores and logs) holds no peer answer either, which could quote a customer."""

    def __init__(self, message: str, status_code: int | None = None,
                 retry_after: float | None = None, summary: str | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.retry_after = retry_after
        self.summary = summary or message


class TicketNotice(BaseModel):
    """What agents need to pick a ticket up; ``customer`` is masked by the caller."""

    ticket_id: int
    conversation_id: str
    team: str
    priority: Literal["high", "normal", "low"]
    reasons: list[str]
    customer: str
    p_escalate: float
    intent: str
    off_hours: bool
    created_at: datetime
    url: str | None = None

    @field_validator("customer")
    @classmethod
    def _must_be_masked(cls, value: str) -> str:
        """Refuse a full phone number: notices go to third parties and into logs."""
        if _UNMASKED_PHONE.fullmatch(value.strip()) and sum(c.isdigit() for c in value) >= 7:
            raise ValueError("customer looks like an unmasked phone number; mask it first")
        return value


class Notifier(Protocol):
    """Delivers one notice once per ``idempotency_key``; raises on failure (the outbox retries).
    Returns the id of what the peer created when it says (a Zendesk ticket), else None.

    The outbox hands it its row's payload as a :class:`TicketNotice`, or as the notifier's
    own ``payload_model`` when it has one (the bot runtime's conversation events)."""

    name: str

    def send(self, notice: TicketNotice, idempotency_key: str) -> str | None: ...


def retry_after(response: httpx.Response) -> float | None:
    """The seconds a peer's ``Retry-After`` asks for (None when absent or not a number)."""
    try:
        return float(response.headers["Retry-After"])
    except (KeyError, ValueError):
        return None


def _post(client: httpx.Client, url: str, what: str, **kwargs: Any) -> None:
    """POST; :class:`NotifyError` on a transport error or a non-2xx answer, quoting the peer
    briefly in the message (never in ``summary``) and never the URL, itself a secret."""
    try:
        response = client.post(url, **kwargs)
    except httpx.HTTPError as exc:
        raise NotifyError(f"{what}: {type(exc).__name__}: {str(exc).replace(url, '***')}",
                          summary=f"{what}: {type(exc).__name__}") from None
    if not 200 <= response.status_code < 300:
        snippet = response.text[:200].replace("\n", " ")
        raise NotifyError(f"{what} answered HTTP {response.status_code}: {snippet}",
                          status_code=response.status_code, retry_after=retry_after(response),
                          summary=f"{what} answered HTTP {response.status_code}")


def _slack_escape(text: str) -> str:
    """Slack mrkdwn treats &, < and > as control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_payload(notice: TicketNotice) -> dict[str, Any]:
    """An incoming-webhook message: a one-line ``text`` fallback and Block Kit ``blocks``.

    Slack is a third party: the conversation id (which embeds the WhatsApp number) stays out;
    agents follow ``url`` instead.
    """
    esc = _slack_escape
    reasons = ", ".join(notice.reasons) or "none given"
    text = (f"[{notice.priority}] Ticket #{notice.ticket_id} for {esc(notice.team)}: "
            f"{esc(reasons)} (customer {esc(notice.customer)})")
    if notice.url:
        text += f" <{notice.url}|open ticket>"
    fields = [("Team", notice.team), ("Priority", notice.priority),
              ("Customer", notice.customer), ("Intent", notice.intent),
              ("P(escalate)", f"{notice.p_escalate:.2f}"),
              ("Off hours", "yes" if notice.off_hours else "no")]
    bullets = "\n".join(f"• {esc(r)}" for r in notice.reasons) or "none given"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "emoji": True, "text": (
            f"Ticket #{notice.ticket_id} → {notice.team} ({notice.priority})")[:150]}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": f"*{k}*\n{esc(v)}"[:2000]}
                                       for k, v in fields]},
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*Reasons*\n{bullets}"[:3000]}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": (
            f"tierline ticket {notice.ticket_id} · created {notice.created_at.isoformat()}")}]},
    ]
    if notice.url:
        button = {"type": "button", "text": {"type": "plain_text", "text": "Open ticket"},
                  "url": notice.url}
        if notice.priority == "high":
            button["style"] = "danger"
        blocks.append({"type": "actions", "elements": [button]})
    return {"text": text, "blocks": blocks}


class SlackNotifier:
    """Posts a short summary to a Slack incoming webhook (whose URL is itself a secret)."""

    name = "slack"

    def __init__(self, webhook_url: str, client: httpx.Client | None = None,
                 timeout: float = 10.0) -> None:
        self._url = webhook_url
        self._owns_client = client is None
        self._client = client or httpx.Client(timeout=timeout)

    def send(self, notice: TicketNotice, idempotency_key: str) -> None:
        """Post the message (Slack ignores ``Idempotency-Key``; a proxy in front may not);
        :class:`NotifyError` on a transport error or non-2xx."""
        _post(self._client, self._url, "slack webhook", json=slack_payload(notice),
              headers={IDEMPOTENCY_HEADER: idempotency_key})

    def close(self) -> None:
        """Close the HTTP client if this notifier created it."""
        if self._owns_client:
            self._client.close()


def sign(body: bytes, secret: str) -> str:
    """The ``X-Tierline-Signature-256`` value for ``body``: ``sha256=<hex HMAC-SHA256>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(body: bytes, secret: str, header: str) -> bool:
    """True when ``header`` is the signature of ``body`` under ``secret`` (constant time)."""
    if not isinstance(header, str) or not header:
        return False
    return hmac.compare_digest(sign(body, secret).encode(), header.encode("utf-8", "replace"))


def signed_headers(body: bytes, secret: str, event: str, idempotency_key: str,
                   user_agent: str = "tierline-webhook") -> dict[str, str]:
    """The headers of a signed JSON delivery: the signature of ``body``, the event's name and
    the delivery's idempotency key (as ``X-Tierline-Delivery`` and ``Idempotency-Key``)."""
    return {"Content-Type": "application/json", "User-Agent": user_agent,
            SIGNATURE_HEADER: sign(body, secret), EVENT_HEADER: event,
            DELIVERY_HEADER: idempotency_key, IDEMPOTENCY_HEADER: idempotency_key}


class SignedWebhookNotifier:
    """POSTs the notice as JSON, signed so the receiver can tell it came from us.

    ``X-Tierline-Delivery`` (and ``Idempotency-Key``) carry the delivery's idempotency key,
    the same on every retry: a receiver de-duplicates on it.
    """

    name = "webhook"

    def __init__(self, url: str, secret: str, client: httpx.Client | None = None,
                 timeout: float = 10.0) -> None:
        if not secret:
            raise ValueError("a signing secret is required")
        self._url = url
        self._secret = secret
        self._owns_client = client is None
        self._client = client or httpx.Client(timeout=timeout)

    def send(self, notice: TicketNotice, idempotency_key: str) -> None:
        """Sign the exact bytes sent; :class:`NotifyError` on a transport error or non-2xx."""
        self._post_signed(notice.model_dump_json().encode(), TICKET_CREATED, idempotency_key)

    def _post_signed(self, body: bytes, event: str, idempotency_key: str,
                     what: str = "webhook", user_agent: str = "tierline-webhook") -> None:
        """POST ``body`` with its signature, ``event`` and the delivery's key."""
        _post(self._client, self._url, what, content=body,
              headers=signed_headers(body, self._secret, event, idempotency_key, user_agent))

    def close(self) -> None:
        """Close the HTTP client if this notifier created it."""
        if self._owns_client:
            self._client.close()
