"""The notify outbox: ticket notifications (Slack, signed webhook), exports (Zendesk) and the
bot runtime's conversation events that survive a crash and reach each peer once.

Opening a ticket writes one ``peer_deliveries`` row per configured target in the transaction
that opens it (:func:`enqueue_ticket_notifications`, called by
``TurnBatch.write`` for every channel): a ticket never
exists without its notifications queued, and a rolled-back ticket queues none. An agent's
action on a ``/v1/decide`` conversation's ticket writes one row for target ``runtime`` in its
own transaction (:func:`~tierline.serving.notify.runtime.enqueue_runtime_event`); its payload
is the runtime's event (:class:`~tierline.serving.notify.runtime.RuntimeEvent`, the notifier's
``payload_model``), not a notice, and a conversation's runtime rows are claimed one at a time
in the order they were queued, so a retried event is not overtaken by a later one.

:class:`NotificationSender` drains the rows on the WhatsApp sender's machinery: a
:class:`~tierline.serving.queue.loops.BackgroundLoop`, one thread per target (a peer that hangs holds up
its own deliveries only); claims in one statement (``FOR UPDATE SKIP LOCKED`` and a
compare-and-set on the status, which also holds on SQLite) under a lease, the rows in hand kept
in :class:`~tierline.serving.queue.inflight.InFlight`; the shared :func:`~tierline.serving.queue.loops.retry_delay`.
A batch stops at half its lease (the rest go back at once), and each delivery's outcome is
recorded as soon as it returns: a ``kill -9`` leaves at most one delivery per target sent but
not recorded, and a claim whose process died is claimed again once its lease expired.
Transport errors, 5xx, 408, 409, 425 and 429 are retried with exponential backoff and jitter
(at least a peer's ``Retry-After``) until the row is ``max_age`` old; then, or at once on any
other 4xx, the row is kept ``failed``: a dead letter (metric, an error log line with ids only).

Exactly once per target: the row's unique idempotency key (``ticket:<id>:<event>:<target>``,
``runtime:<message key>`` for the runtime's events) goes with every try as ``Idempotency-Key``
(Zendesk honours it on ticket creation; the signed webhook and the runtime callback carry it as
``X-Tierline-Delivery`` too), so the peer recognises a retry after a lost
answer or a crash. Zendesk's ticket id is kept on the row and on the ticket;
:func:`requeue_missing_exports` (``tierline zendesk reexport-missing``) queues the export
again for tickets that have none.

Nothing stored or logged here holds a secret or a phone number, and nothing logged holds
message text: payloads are masked notices, or a runtime event (whose text, an agent's reply
say, is the message the runtime must deliver, like a WhatsApp outbox row's), errors are
:attr:`NotifyError.summary` (never the peer's answer).
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, exists, insert, select, update
from sqlalchemy.orm import Session

from tierline.serving.queue.loops import BackgroundLoop, retry_delay
from tierline.serving.notify.notify import TICKET_CREATED, Notifier, NotifyError, TicketNotice
from tierline.serving.notify.runtime import RUNTIME
from tierline.serving.notify.sinks import TicketExport, TicketSink
from tierline.serving.queue.inflight import InFlight
from tierline.serving.logging_setup import mask_phone
from tierline.serving.metrics import METRICS
from tierline.serving.storage.db import Database, evaluated_once
from tierline.serving.storage.models import PeerDelivery, Ticket, as_utc, utcnow
from tierline.serving.tickets.export import help_desk_export

log = logging.getLogger(__name__)
ZENDESK = "zendesk"
DELIVERIES, TICKETS = PeerDelivery.__table__, Ticket.__table__
#: 4xx answers worth another try; any other 4xx will not change by itself.
RETRYABLE_4XX = frozenset({408, 409, 425, 429})
#: Rows one claim takes at most: each is delivered and recorded before the next.
BATCH_SIZE = 16


def delivery_key(ticket_id: int, event: str, target: str) -> str:
    """The idempotency key of one event of one ticket at one target (unique in the table)."""
    return f"ticket:{ticket_id}:{event}:{target}"


def ticket_url(public_url: str | None, ticket_id: int) -> str | None:
    """The ticket's page in the agent console at the service's public address (settings
    ``public_url``), or None without one."""
    return f"{public_url}/console/tickets/{ticket_id}" if public_url else None


def ticket_notice(ticket: Ticket, public_url: str | None = None) -> TicketNotice:
    """The notice of a ticket as written, the customer's number masked (third parties read it;
    never the customer's name), with a link to the ticket's console page when the service's
    ``public_url`` is known."""
    customer = ticket.conversation_id.rsplit(":", 1)[-1]
    context = ticket.context
    return TicketNotice(
        ticket_id=ticket.id, conversation_id=mask_phone(ticket.conversation_id), team=ticket.team,
        priority=ticket.priority, reasons=context.get("reasons", []),
        customer=mask_phone(customer), p_escalate=context.get("p_escalate", 0.0),
        intent=context.get("intent", ""), off_hours=bool(context.get("off_hours")),
        created_at=as_utc(ticket.created_at), url=ticket_url(public_url, ticket.id))


def enqueue_ticket_notifications(session: Session, tickets: Sequence[Ticket],
                                 targets: Sequence[str], event: str = TICKET_CREATED,
                                 public_url: str | None = None) -> int:
    """Queue ``event`` of each ticket for each target, in ``session``'s transaction (the one
    that opened the tickets: both commit or neither does), each notice linking the ticket's
    console page under ``public_url``; how many rows were written."""
    if not targets:  # nothing configured: no payload to build
        return 0
    now = utcnow()
    rows = []
    for ticket in tickets:
        payload = ticket_notice(ticket, public_url).model_dump(mode="json")
        rows += [dict(idempotency_key=delivery_key(ticket.id, event, target), ticket_id=ticket.id,
                      event=event, target=target, payload=payload, status="pending", attempts=0,
                      next_attempt_at=now, created_at=now) for target in targets]
    if rows:
        session.connection().execute(insert(DELIVERIES), rows)
    return len(rows)


def requeue_missing_exports(db: Database, target: str = ZENDESK,
                            public_url: str | None = None) -> int:
    """Queue the export again for every ticket without an external id: a new row where the
    ticket has none (opened before the help desk was configured, say), and a ``failed`` (or
    ``sent``, the external id since cleared) row back to ``pending`` with a fresh age. Rows
    still pending or in flight are left alone. The idempotency key stays the ticket's: an
    export that did land is found again, not made twice. How many were queued."""
    missing = select(Ticket.id).where(Ticket.external_id.is_(None))
    ours = [DELIVERIES.c.target == target, DELIVERIES.c.event == TICKET_CREATED]
    with db.session() as s:
        new = s.scalars(select(Ticket).where(Ticket.external_id.is_(None), ~exists().where(
            DELIVERIES.c.ticket_id == Ticket.id, *ours)).order_by(Ticket.id)).all()
        enqueue_ticket_notifications(s, new, [target], public_url=public_url)
        now = utcnow()
        again = s.execute(update(DELIVERIES).where(
            *ours, DELIVERIES.c.status.in_(("failed", "sent")),
            DELIVERIES.c.ticket_id.in_(missing)).values(
            status="pending", attempts=0, next_attempt_at=now, created_at=now, claimed_by=None,
            claimed_at=None, sent_at=None, last_error=None)).rowcount or 0
    log.info("%d %s export(s) queued (%d new, %d again)", len(new) + again, target, len(new), again)
    return len(new) + again


class TicketExporter:
    """A notifier that copies the ticket, transcript included, into a help desk; returns the
    help desk's ticket id. The transcript is the conversation as it was when the ticket opened,
    so every try sends the same body (an idempotent create refuses a key with another body)."""

    name = ZENDESK

    def __init__(self, db: Database, sink: TicketSink) -> None:
        self.db = db
        self.sink = sink

    def send(self, notice: TicketNotice, idempotency_key: str) -> str:
        """Create (or find) the help desk's ticket; its id."""
        return self.sink.create(self.export(notice), idempotency_key)

    def export(self, notice: TicketNotice) -> TicketExport:
        """The ticket as handed to the help desk (:func:`tierline.serving.tickets.export.help_desk_export`)."""
        return help_desk_export(self.db, notice)

    def close(self) -> None:
        """Close the sink's HTTP client."""
        close = getattr(self.sink, "close", None)
        if close is not None:
            close()


@dataclass
class Claimed:
    """A row marked ``sending``: what its delivery and its record need."""

    id: int
    ticket_id: int
    target: str
    payload: dict[str, Any]
    idempotency_key: str
    attempts: int
    created_at: datetime


@dataclass
class DeliveryResult:
    """What one delivery did: ``sent`` (with the peer's id, if any), ``retry`` or ``failed``."""

    kind: str
    external_id: str | None = None
    error: str | None = None
    retry_after: float | None = None


def _claim_deliveries(in_order: bool = False):
    """``UPDATE peer_deliveries SET status = 'sending' ... WHERE id IN (a target's due rows,
    row-locked, skipping rows others hold) RETURNING ...``, built once (Core).

    ``in_order``: a row is not due while an earlier row of the same target and conversation
    (through its ticket) is still ``pending`` or ``sending``: a conversation's events go one at
    a time, in the order they were queued (the bot runtime's callback)."""
    row = DELIVERIES.alias("row")
    due = select(row.c.id).where(row.c.status == "pending", row.c.target == bindparam("for_target"),
                                 row.c.next_attempt_at <= bindparam("now"))
    if in_order:
        ticket, earlier, earlier_ticket = (TICKETS.alias("ticket"), DELIVERIES.alias("earlier"),
                                           TICKETS.alias("earlier_ticket"))
        due = due.join(ticket, ticket.c.id == row.c.ticket_id).where(~exists().where(
            earlier.c.target == row.c.target, earlier.c.id < row.c.id,
            earlier.c.status.in_(("pending", "sending")),
            earlier_ticket.c.id == earlier.c.ticket_id,
            earlier_ticket.c.conversation_id == ticket.c.conversation_id))
    due = due.order_by(row.c.id).limit(bindparam("limit")).with_for_update(of=row, skip_locked=True)
    return (update(DELIVERIES).where(DELIVERIES.c.id.in_(evaluated_once(due)),
                                     DELIVERIES.c.status == "pending")
            .values(status="sending", attempts=DELIVERIES.c.attempts + 1,
                    claimed_at=bindparam("now"), claimed_by=bindparam("worker"))
            .returning(DELIVERIES.c.id, DELIVERIES.c.ticket_id, DELIVERIES.c.target,
                       DELIVERIES.c.payload, DELIVERIES.c.idempotency_key,
                       DELIVERIES.c.attempts, DELIVERIES.c.created_at))


CLAIM_DELIVERIES = _claim_deliveries()
CLAIM_IN_ORDER = _claim_deliveries(in_order=True)
#: Targets whose rows a conversation receives in order (:func:`_claim_deliveries`).
IN_ORDER_TARGETS = frozenset({RUNTIME})


class NotificationSender(BackgroundLoop):
    """Drains the notify outbox: thread ``i`` claims and delivers the rows of target ``i``."""

    thread_name = "tierline-notify"

    def __init__(self, db: Database, notifiers: Mapping[str, Notifier], *,
                 max_age_seconds: float = 86_400.0, base_delay: float = 1.0,
                 max_delay: float = 300.0, lease_seconds: float = 60.0,
                 poll_seconds: float = 0.5, batch_size: int = BATCH_SIZE) -> None:
        if not notifiers:
            raise ValueError("no notifiers: nothing to deliver to")
        super().__init__(poll_seconds, housekeeping_seconds=min(1.0, lease_seconds / 2),
                         threads=len(notifiers))
        self.db = db
        self.notifiers = dict(notifiers)
        self.targets = list(self.notifiers)
        self.max_age = timedelta(seconds=max_age_seconds)
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.lease = timedelta(seconds=lease_seconds)
        self.batch_size = batch_size
        self.in_flight: InFlight[None] = InFlight(batch_size * len(self.targets))
        self._id = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"

    @property
    def worker_id(self) -> str:
        """Who holds a claimed row (``claimed_by``): one id per thread of this process."""
        return f"{self._id}.{self.thread_index}"

    def housekeeping(self) -> None:
        self.requeue_expired()

    def step(self) -> bool:
        target = self.targets[self.thread_index]
        claimed = self.run_batch(target)
        # In order, a claim takes one row per conversation: the next may be due at once.
        return claimed >= self.batch_size or (claimed > 0 and target in IN_ORDER_TARGETS)

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the delivery in hand (the rest of its batch goes back to ``pending``), then
        close the notifiers' HTTP clients. A delivery still running after ``timeout`` stays
        ``sending`` for the lease to settle, like a crash."""
        super().stop(timeout)
        for notifier in self.notifiers.values():
            close = getattr(notifier, "close", None)
            if close is not None:
                close()

    def requeue_expired(self) -> int:
        """``sending`` rows past their lease (their process died mid-batch) back to
        ``pending``; never a row this process still holds."""
        stale = [DELIVERIES.c.status == "sending", DELIVERIES.c.claimed_at < utcnow() - self.lease]
        if held := self.in_flight.held():
            stale.append(DELIVERIES.c.id.not_in(held))
        with self.db.one_statement() as connection:
            return connection.execute(update(DELIVERIES).where(*stale).values(
                status="pending", claimed_by=None)).rowcount or 0

    def claim_batch(self, target: str, limit: int | None = None) -> list[Claimed]:
        """Claim up to ``limit`` due rows of ``target``, oldest first (committed before any
        delivery starts)."""
        claim = CLAIM_IN_ORDER if target in IN_ORDER_TARGETS else CLAIM_DELIVERIES
        with self.db.one_statement() as connection:
            rows = connection.execute(claim, {
                "now": utcnow(), "for_target": target, "limit": limit or self.batch_size,
                "worker": self.worker_id}).all()
        return sorted((Claimed(*row) for row in rows), key=lambda c: c.id)

    def run_batch(self, target: str) -> int:
        """Claim a batch of ``target``'s due rows and deliver them one by one, recording each
        outcome at once; how many were claimed. Stops at half the lease or when the loop stops
        (the rows not tried go back to ``pending``)."""
        rows = self.claim_batch(target)
        if not rows:
            return 0
        self.in_flight.hold([row.id for row in rows])
        until = time.monotonic() + self.lease.total_seconds() / 2
        left = list(rows)
        try:
            while left and not self._stop.is_set() and time.monotonic() < until:
                row = left.pop(0)
                self._record(row, self.deliver(row))
        finally:
            self._give_back(left)
            self.in_flight.release([row.id for row in rows])
        return len(rows)

    def deliver(self, row: Claimed) -> DeliveryResult:
        """One delivery; the exception sorts the outcome."""
        try:
            notifier = self.notifiers[row.target]
            payload = getattr(notifier, "payload_model", TicketNotice).model_validate(row.payload)
            return DeliveryResult("sent", external_id=notifier.send(payload, row.idempotency_key))
        except NotifyError as exc:
            code = exc.status_code
            permanent = code is not None and 400 <= code < 500 and code not in RETRYABLE_4XX
            return DeliveryResult("failed" if permanent else "retry", error=exc.summary,
                           retry_after=exc.retry_after)
        except Exception as exc:  # noqa: BLE001 - unknown: retried; its message may quote anything
            log.error("delivery %s to %s: unexpected %s", row.id, row.target, type(exc).__name__)
            return DeliveryResult("retry", error=f"unexpected {type(exc).__name__}")

    def _record(self, row: Claimed, outcome: DeliveryResult) -> None:
        """Write one delivery's outcome (and the help desk's id on its ticket), if the row is
        still this thread's claim."""
        now = utcnow()
        age = now - as_utc(row.created_at)
        what = f"delivery {row.id} ({row.target}, ticket {row.ticket_id})"
        if outcome.kind == "sent":
            kind, values = "sent", dict(status="sent", sent_at=now, external_id=outcome.external_id,
                                        last_error=None)
        elif outcome.kind == "failed" or age >= self.max_age:
            error = (f"{outcome.error} (attempt {row.attempts}, "
                     f"{age.total_seconds():.0f} s after it was queued)")[:500]
            kind, values = "failed", dict(status="failed", last_error=error)
        else:
            delay = retry_delay(row.attempts, self.base_delay, self.max_delay, outcome.retry_after)
            kind, values = "retry", dict(status="pending", claimed_by=None,
                                         next_attempt_at=now + timedelta(seconds=delay),
                                         last_error=(outcome.error or "")[:500])
        with self.db.one_statement() as connection:
            # The ticket first: a crash between the two leaves the row to be tried again, and
            # the help desk finds its ticket again (never a ticket without its id).
            if outcome.external_id is not None:
                connection.execute(update(TICKETS).where(TICKETS.c.id == row.ticket_id).values(
                    external_id=outcome.external_id))
            mine = connection.execute(update(DELIVERIES).where(
                DELIVERIES.c.id == row.id, DELIVERIES.c.status == "sending",
                DELIVERIES.c.claimed_by == self.worker_id).values(**values)).rowcount
        METRICS.peer_deliveries.labels(target=row.target, outcome=kind).inc()
        if not mine:
            log.warning("%s: claim lost (lease expired); another try records it", what)
        elif kind == "sent":
            log.debug("%s sent (attempt %d)", what, row.attempts)
        elif kind == "retry":
            log.warning("%s attempt %d failed: %s; retry in %.2f s", what, row.attempts,
                        outcome.error, delay)
        else:
            log.error("%s failed for good: %s", what, values["last_error"])

    def _give_back(self, rows: list[Claimed]) -> None:
        """Claimed rows not tried: ``pending`` again at once (not an attempt)."""
        if not rows:
            return
        try:
            with self.db.one_statement() as connection:
                connection.execute(update(DELIVERIES).where(
                    DELIVERIES.c.id.in_([row.id for row in rows]),
                    DELIVERIES.c.status == "sending", DELIVERIES.c.claimed_by == self.worker_id)
                    .values(status="pending", claimed_by=None, attempts=DELIVERIES.c.attempts - 1))
        except Exception:  # noqa: BLE001 - they stay 'sending': the lease settles them
            log.exception("%d claimed deliveries not given back; their lease settles them",
                          len(rows))
