"""Tell agents a ticket exists: Slack and HMAC-signed webhooks, delivered off the request path.

A notification must never slow down or break the conversation that caused it, so
:class:`NotificationDispatcher` takes notices on a bounded in-memory queue and a daemon thread
delivers them, each notifier on its own, retrying with exponential backoff and jitter. The queue
is in memory: notices still queued when the process dies are lost (the ticket itself is not;
it lives in the database).

Notices carry the customer's number already masked; nothing here logs secrets (webhook URLs,
signing keys) or full numbers.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import queue
import random
import re
import threading
import time
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal, Protocol

import httpx
from pydantic import BaseModel, field_validator

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Tierline-Signature-256"
EVENT_HEADER = "X-Tierline-Event"
DELIVERY_HEADER = "X-Tierline-Delivery"
TICKET_CREATED = "ticket.created"
_UNMASKED_PHONE = re.compile(r"\+?[\d\s().-]{7,}")


class NotifyError(Exception):
    """A notifier's peer refused or failed the delivery (the message never holds secrets)."""


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
    """Delivers one notice; raises on failure so the dispatcher can retry."""

    def send(self, notice: TicketNotice) -> None: ...


def _check_status(response: httpx.Response, what: str) -> None:
    """Raise :class:`NotifyError` on non-2xx, quoting the peer briefly but never the URL."""
    if not 200 <= response.status_code < 300:
        snippet = response.text[:200].replace("\n", " ")
        raise NotifyError(f"{what} answered HTTP {response.status_code}: {snippet}")


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

    def send(self, notice: TicketNotice) -> None:
        """Post the message; :class:`NotifyError` on non-2xx, httpx errors on transport failure."""
        _check_status(self._client.post(self._url, json=slack_payload(notice)), "slack webhook")

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


class SignedWebhookNotifier:
    """POSTs the notice as JSON, signed so the receiver can tell it came from us.

    Every call gets a fresh ``X-Tierline-Delivery`` id, retries included: receivers should
    de-duplicate on ``ticket_id`` with the event name.
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

    def send(self, notice: TicketNotice) -> None:
        """Sign the exact bytes sent; :class:`NotifyError` on non-2xx."""
        body = notice.model_dump_json().encode()
        headers = {"Content-Type": "application/json", "User-Agent": "tierline-webhook",
                   SIGNATURE_HEADER: sign(body, self._secret), EVENT_HEADER: TICKET_CREATED,
                   DELIVERY_HEADER: str(uuid.uuid4())}
        _check_status(self._client.post(self._url, content=body, headers=headers), "webhook")

    def close(self) -> None:
        """Close the HTTP client if this notifier created it."""
        if self._owns_client:
            self._client.close()


def _name(notifier: Notifier) -> str:
    """A log-safe label for a notifier (never its URL)."""
    return str(getattr(notifier, "name", type(notifier).__name__))


class NotificationDispatcher:
    """Delivers notices in a background thread so callers never wait on Slack or webhooks.

    Each notifier is tried on its own: one that fails is retried with backoff while the others
    are already done. ``stop()`` interrupts backoff sleeps, gives what is still queued one last
    try while its timeout lasts, and drops the rest with an error log.
    """

    def __init__(self, notifiers: Sequence[Notifier], max_attempts: int = 5,
                 base_delay: float = 0.5, max_delay: float = 30.0,
                 max_queue: int = 10_000) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.notifiers = list(notifiers)
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._queue: queue.Queue[TicketNotice] = queue.Queue(maxsize=max_queue)
        self._stop = threading.Event()
        self._deadline = float("inf")
        self._idle = threading.Condition()
        self._pending = 0  # queued + in flight
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        """Whether the worker thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the worker thread (no-op when already running)."""
        if self.running:
            return
        self._stop.clear()
        self._deadline = float("inf")
        self._thread = threading.Thread(target=self._run, name="tierline-notify", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop retrying, drain what can be sent within ``timeout``, then end the thread."""
        self._deadline = time.monotonic() + timeout
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("notification worker still busy after %.1fs; leaving it", timeout)

    def submit(self, notice: TicketNotice) -> bool:
        """Queue a notice and return at once; False (and a warning) when it was dropped."""
        try:
            if self._stop.is_set():
                log.warning("ticket %s: dispatcher stopped; notice dropped", notice.ticket_id)
                return False
            with self._idle:
                self._pending += 1
            try:
                self._queue.put_nowait(notice)
            except queue.Full:
                self._done()
                log.warning("ticket %s: notification queue full (%d); notice dropped",
                            notice.ticket_id, self._queue.maxsize)
                return False
            return True
        except Exception:  # noqa: BLE001 - a notification must never break the caller
            log.exception("could not queue a notice")
            return False

    def wait_idle(self, timeout: float) -> bool:
        """True once nothing is queued or in flight (for tests and orderly shutdowns)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def _done(self) -> None:
        with self._idle:
            self._pending -= 1
            if self._pending == 0:
                self._idle.notify_all()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                notice = self._queue.get(timeout=0.05)
            except queue.Empty:
                continue
            self._process(notice)
        self._drain()

    def _drain(self) -> None:
        """After ``stop()``: one last try for each queued notice while the deadline allows."""
        dropped: list[int] = []
        while True:
            try:
                notice = self._queue.get_nowait()
            except queue.Empty:
                break
            if time.monotonic() >= self._deadline:
                dropped.append(notice.ticket_id)
                self._done()
            else:
                self._process(notice)
        if dropped:
            log.error("%d notice(s) dropped at shutdown (tickets %s%s)", len(dropped),
                      ", ".join(map(str, dropped[:10])), ", ..." if len(dropped) > 10 else "")

    def _process(self, notice: TicketNotice) -> None:
        try:
            self._deliver(notice)
        except Exception:  # noqa: BLE001 - keep the worker alive whatever happens
            log.exception("ticket %s: unexpected error delivering notice", notice.ticket_id)
        finally:
            self._done()

    def _deliver(self, notice: TicketNotice) -> None:
        """Try every notifier; retry only the ones that failed, until done or out of attempts."""
        pending = self.notifiers
        attempt = 0
        while pending:
            attempt += 1
            pending = [n for n in pending if not self._attempt(n, notice, attempt)]
            if not pending:
                return
            if attempt >= self.max_attempts or self._stop.is_set():
                break
            if self._stop.wait(self.backoff(attempt)) and time.monotonic() >= self._deadline:
                break  # stopping and out of time: no last try
        why = "stopping" if attempt < self.max_attempts else f"{attempt} attempts"
        for notifier in pending:
            log.error("ticket %s: gave up notifying %s after %d attempt(s) (%s)",
                      notice.ticket_id, _name(notifier), attempt, why)

    def _attempt(self, notifier: Notifier, notice: TicketNotice, attempt: int) -> bool:
        try:
            notifier.send(notice)
        except Exception as exc:  # noqa: BLE001 - any failure is retried
            log.warning("ticket %s: %s attempt %d/%d failed: %s: %s", notice.ticket_id,
                        _name(notifier), attempt, self.max_attempts, type(exc).__name__, exc)
            return False
        return True

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after failed attempt ``attempt``: exponential, capped, jittered."""
        delay = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return random.uniform(delay / 2, delay)
