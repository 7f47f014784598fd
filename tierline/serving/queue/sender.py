"""The outbox sender: delivers stored outbound messages to the Graph API, exactly once.

A step claims due rows in one statement (``SKIP LOCKED`` row locks, and a compare-and-set on
the status that also holds on SQLite) and marks them ``sending`` before any HTTP call; each is
sent as a task of its own (over the client's keep-alive connections), at most
``max_in_flight`` at once, and the next step records the outcomes of every send that finished
meanwhile in one transaction (``sent`` with the returned wamid) and claims as many rows as
slots were freed. No step waits for a send: a send that hangs until its timeout delays its own
conversation only.
Retryable failures (5xx, 429, 130429, timeouts, refused connections) go back to ``pending``
with exponential backoff and jitter, capped (``max_delay``, which also caps a ``Retry-After``),
for as long as the row is younger than ``max_age_seconds`` (24 h by default): a Graph API outage
of hours delays replies, it does not drop them. Only permanent errors (4xx other than 429, an
invalid recipient) end a row ``failed`` at once; a row still undeliverable past its age ends
``expired`` and is reported (metric, a log line without phone or text, a note on its ticket). Every send carries the row's idempotency key as
``biz_opaque_callback_data``: if the process dies after Meta accepted a message but before
``sent`` was recorded, the status webhook reconciles the row by that key; only a ``sending``
row that stays unconfirmed past its lease is tried again.

A conversation's replies reach Meta in order: a row is not claimed while an earlier row of its
conversation is still ``pending`` (waiting for a retry, say) or ``sending``, so at most one row
per conversation is ever in flight and the sends in flight are independent. A token bucket keeps the
configured messages-per-second limit: a step claims no more rows than it holds tokens.

The sends run on the sender's own event loop (uvloop when installed) in a thread of its own:
the claims and records block on the database, and must not hold up the answers of the sends in
flight. No thread pool, and nothing shared with the HTTP server's loop.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import bindparam, exists, select, update
from sqlalchemy.orm import load_only

from tierline.serving.queue.loops import BackgroundLoop, EventLoopThread, retry_delay
from tierline.serving.queue.inflight import InFlight
from tierline.serving.metrics import METRICS
from tierline.serving.storage.db import Database, evaluated_once
from tierline.serving.storage.models import OutboundMessage, Ticket, as_utc, utcnow
from tierline.serving.channels.whatsapp.client import (
    AmbiguousSendError,
    GraphClient,
    PermanentSendError,
    RetryableSendError,
)

log = logging.getLogger(__name__)
IN_FLIGHT = ("pending", "sending")


class TokenBucket:
    """At most ``rate`` acquisitions per second on average, bursts up to ``rate``."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.tokens = rate
        self.updated = time.monotonic()
        self._lock = threading.Lock()

    def take(self, n: int) -> tuple[int, float]:
        """Take up to ``n`` whole tokens: (how many were taken, how long to wait when none)."""
        with self._lock:
            now = time.monotonic()
            self.tokens = min(self.rate, self.tokens + (now - self.updated) * self.rate)
            self.updated = now
            taken = min(n, int(self.tokens))
            self.tokens -= taken
            return taken, 0.0 if taken else (1 - self.tokens) / self.rate

    def give_back(self, n: int) -> None:
        """Return tokens taken but not used (fewer rows were due than tokens taken)."""
        with self._lock:
            self.tokens = min(self.rate, self.tokens + n)

    def wait_time(self) -> float:
        """Take a token if one is there (0.0), else say how long to wait."""
        return self.take(1)[1]


@dataclass
class Claimed:
    """A row marked ``sending``: what the HTTP call needs."""

    id: int
    phone_number_id: str
    payload: dict[str, Any]
    idempotency_key: str
    attempts: int


@dataclass
class SendResult:
    """What one send did: ``sent`` (``wamid``), ``ambiguous``, ``retry`` or ``failed``."""

    kind: str
    wamid: str | None = None
    error: Exception | None = None


OUTBOUND = OutboundMessage.__table__


def _claim_rows():
    """``UPDATE outbound_messages SET status = 'sending' ... WHERE id IN (due rows, row-locked,
    skipping rows others hold) RETURNING ...``; a row with an earlier row of its conversation
    still to be sent is not due. Built once, on the table (Core): building it per poll, or
    running it through the ORM, cost more CPU than running it.

    Its cost must not hang on the planner's statistics: a backlog is written fastest, and
    analysed last, after an outage. The partial indexes of migration 0006 hold only unsent rows
    (``ix_outbound_pending`` the due rows in id order, ``ix_outbound_in_flight`` a
    conversation's rows in flight), and ``OFFSET 0`` keeps the "earlier row in flight" test a
    per-row index probe: PostgreSQL never turns such a subquery into a join (its documented
    optimisation fence). As a join it once hashed every in-flight row on its conversation, and a
    conversation with thousands of queued rows made that quadratic (9.3 s for 15,152 rows, with
    statistics). Without statistics and without the indexes, 15,152 rows took 4.3-7.8 s a claim;
    now 40-70 ms, 3-8 ms once analysed (``test_claim_without_statistics.py``)."""
    row, earlier = OUTBOUND.alias("row"), OUTBOUND.alias("earlier")
    behind = exists(select(earlier.c.id).where(
        earlier.c.conversation_id == row.c.conversation_id, earlier.c.id < row.c.id,
        earlier.c.status.in_(IN_FLIGHT)).offset(0))
    due = (select(row.c.id).where(row.c.status == "pending",
                                  row.c.next_attempt_at <= bindparam("now"), ~behind)
           .order_by(row.c.id).limit(bindparam("limit")).with_for_update(of=row, skip_locked=True))
    return (update(OUTBOUND).where(OUTBOUND.c.id.in_(evaluated_once(due)),
                                   OUTBOUND.c.status == "pending")
            .values(status="sending", attempts=OUTBOUND.c.attempts + 1,
                    next_attempt_at=bindparam("now"))
            .returning(OUTBOUND.c.id, OUTBOUND.c.phone_number_id, OUTBOUND.c.payload,
                       OUTBOUND.c.idempotency_key, OUTBOUND.c.attempts))


CLAIM_ROWS = _claim_rows()


class OutboxSender(BackgroundLoop):
    """Background thread that drains the outbox: claims due rows as send slots free up, sends
    each on its own, records the outcomes of the sends that finished in one transaction."""

    thread_name = "tierline-sender"

    def __init__(self, db: Database, client: GraphClient, *, rate: float = 80.0,
                 max_age_seconds: float = 86_400.0, base_delay: float = 1.0,
                 max_delay: float = 300.0,
                 lease_seconds: float = 60.0, poll_seconds: float = 0.05,
                 batch_size: int = 32, max_in_flight: int = 64) -> None:
        super().__init__(poll_seconds, housekeeping_seconds=min(1.0, lease_seconds / 2))
        self.db = db
        self.client = client
        self.bucket = TokenBucket(rate)
        self.max_age = timedelta(seconds=max_age_seconds)
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.lease = timedelta(seconds=lease_seconds)
        self.batch_size = batch_size
        self.in_flight: InFlight[tuple[Claimed, SendResult]] = InFlight(max_in_flight)
        self._io: EventLoopThread | None = None
        # Tasks of the sends in flight: the event loop keeps only weak references to tasks.
        self._tasks: set[asyncio.Task] = set()
        # A row left 'sending' by a process that died may have reached Meta; its status
        # webhook (retried by Meta while we were down) reconciles it. Give those retries one
        # full lease after this process starts before treating any such row as lost, or a
        # restart slower than the lease would resend messages that were delivered.
        self._requeue_from = time.monotonic() + lease_seconds

    def housekeeping(self) -> None:
        if time.monotonic() >= self._requeue_from:
            self.requeue_unconfirmed()

    def step(self) -> bool:
        """Record the sends that finished, then start as many due rows as the free slots and
        the rate limit allow; True when more may be due at once.

        Never waits for a send: a send that hangs until its timeout holds its own slot (and
        its conversation, whose later rows are not due while it is ``sending``), not the
        rows claimed with it. Claiming a batch and waiting for all of it made every batch as
        slow as its slowest send: with 5 % of sends timing out, the median reply took seconds.
        """
        self.record_finished()
        free = min(self.in_flight.free(), self.batch_size)
        if not free:
            return False  # the send that frees a slot wakes the loop
        taken, wait = self.bucket.take(free)
        if not taken:
            self._wake.wait(wait)  # a finished send may need recording meanwhile
            self._wake.clear()
            return True
        rows = self.claim_batch(taken)
        self.bucket.give_back(taken - len(rows))
        if rows:
            self.in_flight.hold([row.id for row in rows])
            if self._io is None:
                self._io = EventLoopThread("tierline-sender-io")
            self._io.call(self._start_sends, rows)
        return len(rows) == free

    def record_finished(self) -> int:
        """Record the outcomes of the sends that returned since the last call, in one
        transaction; kept for the next call if the database refuses them."""
        finished = self.in_flight.take_finished()
        if not finished:
            return 0
        try:
            self._record([result for _, result in finished])
        except Exception:
            self.in_flight.put_back(finished)
            raise
        self.in_flight.release([row_id for row_id, _ in finished])
        return len(finished)

    def stop(self, timeout: float = 10.0) -> None:
        """Drain (SIGTERM): stop claiming, wait for the sends in flight (each ends by the
        client's timeout), record their outcomes, close the HTTP connections. A send still
        running after ``timeout`` stays ``sending`` for the lease to settle, like a crash."""
        deadline = time.monotonic() + timeout
        super().stop(timeout)
        if not self.in_flight.wait_until_sent(max(0.0, deadline - time.monotonic())):
            log.warning("sender stopped with sends in flight; their rows wait for the lease")
        try:
            self.record_finished()
        except Exception:  # noqa: BLE001 - the rows stay 'sending': the lease settles them
            log.exception("sender stopped without recording its last outcomes")
        if self._io is not None:
            self._io.close(self.client.close, timeout=max(1.0, deadline - time.monotonic()))
            self._io = None

    def requeue_unconfirmed(self) -> int:
        """``sending`` rows with no wamid past the lease: the process died mid-send, or the
        send ended without an answer and no status came; retry. Never a row this process still
        holds: its send may be running still (a lease shorter than the send timeout)."""
        stale = [OUTBOUND.c.status == "sending", OUTBOUND.c.wamid.is_(None),
                 OUTBOUND.c.next_attempt_at < utcnow() - self.lease]
        if held := self.in_flight.held():
            stale.append(OUTBOUND.c.id.not_in(held))
        with self.db.one_statement() as connection:
            return connection.execute(update(OUTBOUND).where(*stale).values(
                status="pending")).rowcount or 0

    def claim_batch(self, limit: int) -> list[Claimed]:
        """Claim up to ``limit`` due rows, oldest first, at most one per conversation (marked
        ``sending`` and committed before any of them is sent)."""
        with self.db.one_statement() as connection:
            rows = connection.execute(CLAIM_ROWS, {"now": utcnow(), "limit": limit}).all()
        return sorted((Claimed(*row) for row in rows), key=lambda c: c.id)

    def _start_sends(self, rows: list[Claimed]) -> None:
        """On the event loop's thread: a task per row (at most one row per conversation is
        ever in flight, so their order does not matter)."""
        for row in rows:
            task = asyncio.get_running_loop().create_task(self._send_and_hand_over(row))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _send_and_hand_over(self, row: Claimed) -> None:
        """Send one row and hand its outcome to the sender's thread, which is woken when this
        was the last send running or every slot is held (:meth:`InFlight.finish`). Otherwise
        its next poll (or the worker's wake) records it with the others that finished
        meanwhile, one transaction for all: a wake per send would be a transaction per send,
        and a send that hangs must not keep the others unrecorded past the poll."""
        outcome = await self._send(row)
        if self.in_flight.finish(row.id, (row, outcome)):
            self.wake()

    async def _send(self, row: Claimed) -> SendResult:
        """One Graph API call; the exception sorts the outcome."""
        payload = {**row.payload, "biz_opaque_callback_data": row.idempotency_key}
        try:
            return SendResult("sent", wamid=await self.client.send(row.phone_number_id, payload))
        except AmbiguousSendError as exc:
            # Meta may have the message: leave it 'sending' so a status webhook can confirm it;
            # requeue_unconfirmed retries it only if none arrives within the lease.
            log.warning("outbound %s: %s; waiting for a status before any retry", row.id, exc)
            return SendResult("ambiguous", error=exc)
        except RetryableSendError as exc:
            return SendResult("retry", error=exc)
        except PermanentSendError as exc:
            log.warning("outbound %s failed permanently: %s", row.id, exc)
            return SendResult("failed", error=exc)
        except Exception as exc:  # noqa: BLE001 - unknown: treat as possibly sent (lease decides)
            log.exception("outbound %s: unexpected error while sending", row.id)
            return SendResult("ambiguous", error=exc)

    def _record(self, results: list[tuple[Claimed, SendResult]]) -> None:
        """The batch's outcomes, in one transaction."""
        with self.db.session() as s:
            current = {r.id: r for r in s.scalars(
                select(OutboundMessage).options(load_only(
                    OutboundMessage.status, OutboundMessage.created_at,
                    OutboundMessage.conversation_id))
                .where(OutboundMessage.id.in_([c.id for c, _ in results]))
                .order_by(OutboundMessage.id).with_for_update())}
            for claimed, outcome in results:
                if (row := current.get(claimed.id)) is not None:
                    self._apply(s, row, claimed, outcome)

    def _apply(self, s, row: OutboundMessage, claimed: Claimed, outcome: SendResult) -> None:
        """Set one row's status from its send's outcome."""
        error = str(outcome.error) if outcome.error is not None else ""
        if outcome.kind == "sent":
            METRICS.messages_out.labels(status="sent").inc()
            if row.status not in ("delivered", "read"):  # else a status webhook got here first
                row.status = "sent"
            row.wamid, row.sent_at = outcome.wamid, utcnow()
            log.debug("outbound %s sent as %s (attempt %d)", claimed.id, outcome.wamid,
                      claimed.attempts)
        elif outcome.kind == "failed":
            self._set_failed(row, error)
        elif utcnow() - as_utc(row.created_at) >= self.max_age:
            self._expire(s, row, claimed, outcome.kind, error)
        elif outcome.kind == "retry":
            delay = self.backoff(claimed.attempts, getattr(outcome.error, "retry_after", None))
            row.status, row.last_error = "pending", error[:500]
            row.next_attempt_at = utcnow() + timedelta(seconds=delay)
            log.info("outbound %s: retry in %.2fs (%s)", claimed.id, delay, error)

    def backoff(self, attempts: int, retry_after: float | None = None) -> float:
        """Seconds before the next try (:func:`~tierline.serving.queue.loops.retry_delay`, capped by
        ``max_delay``, Meta's ``Retry-After`` included)."""
        return retry_delay(attempts, self.base_delay, self.max_delay, retry_after)

    def _expire(self, s, row: OutboundMessage, claimed: Claimed, kind: str, error: str) -> None:
        """A row still undeliverable at its age limit: ``expired``, counted, logged (ids and
        counts only: never the phone number or the text) and noted on its conversation's open
        ticket, so an agent sees the customer did not get it."""
        age = (utcnow() - as_utc(row.created_at)).total_seconds()
        row.status = "expired"
        row.last_error = (f"expired after {claimed.attempts} attempts over {age:.0f}s: "
                          f"{'unconfirmed' if kind == 'ambiguous' else error}")[:500]
        METRICS.messages_out.labels(status="expired").inc()
        METRICS.outbound_expired.inc()
        ticket = s.scalars(select(Ticket).where(
            Ticket.conversation_id == row.conversation_id, Ticket.status != "resolved")
            .order_by(Ticket.id.desc()).limit(1)).first()
        if ticket is not None:
            undelivered = list(ticket.context.get("undelivered_replies", []))
            ticket.context = {**ticket.context,
                              "undelivered_replies": [*undelivered, claimed.id][-20:]}
        log.error("outbound %s expired undelivered after %d attempts over %.0f s (ticket %s)",
                  claimed.id, claimed.attempts, age, ticket.id if ticket is not None else "none")

    @staticmethod
    def _set_failed(row: OutboundMessage, error: str) -> None:
        METRICS.messages_out.labels(status="failed").inc()
        row.status, row.last_error = "failed", error[:500]
