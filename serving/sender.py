"""The outbox sender: delivers stored outbound messages to the Graph API, exactly once.

A row is claimed (``SKIP LOCKED``) and marked ``sending`` before the HTTP call, then ``sent``
with the returned wamid. Retryable failures (5xx, 429, 130429, timeouts) go back to ``pending``
with exponential backoff and jitter; permanent ones end ``failed``. Every send carries the row's
idempotency key as ``biz_opaque_callback_data``: if the process dies after Meta accepted a
message but before ``sent`` was recorded, the status webhook reconciles the row by that key;
only a ``sending`` row that stays unconfirmed past its lease is tried again. A token bucket
keeps the configured messages-per-second limit.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from datetime import timedelta

from sqlalchemy import select, update

from serving.background import BackgroundLoop
from serving.metrics import METRICS
from serving.storage.db import Database
from serving.storage.models import OutboundMessage, utcnow
from serving.whatsapp.client import (
    AmbiguousSendError,
    GraphClient,
    PermanentSendError,
    RetryableSendError,
)

log = logging.getLogger(__name__)


class TokenBucket:
    """At most ``rate`` acquisitions per second on average, bursts up to ``rate``."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.tokens = rate
        self.updated = time.monotonic()
        self._lock = threading.Lock()

    def wait_time(self) -> float:
        """Take a token if one is there (0.0), else say how long to wait."""
        with self._lock:
            now = time.monotonic()
            self.tokens = min(self.rate, self.tokens + (now - self.updated) * self.rate)
            self.updated = now
            if self.tokens >= 1:
                self.tokens -= 1
                return 0.0
            return (1 - self.tokens) / self.rate


class OutboxSender(BackgroundLoop):
    """Background thread that drains the outbox."""

    thread_name = "tierline-sender"

    def __init__(self, db: Database, client: GraphClient, *, rate: float = 80.0,
                 max_attempts: int = 8, base_delay: float = 1.0, max_delay: float = 300.0,
                 lease_seconds: float = 60.0, poll_seconds: float = 0.05) -> None:
        super().__init__(poll_seconds)
        self.db = db
        self.client = client
        self.bucket = TokenBucket(rate)
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.lease = timedelta(seconds=lease_seconds)
        # A row left 'sending' by a process that died may have reached Meta; its status
        # webhook (retried by Meta while we were down) reconciles it. Give those retries one
        # full lease after this process starts before treating any such row as lost, or a
        # restart slower than the lease would resend messages that were delivered.
        self._requeue_from = time.monotonic() + lease_seconds

    def housekeeping(self) -> None:
        if time.monotonic() >= self._requeue_from:
            self.requeue_unconfirmed()

    def step(self) -> bool:
        return self.send_once()

    def requeue_unconfirmed(self) -> int:
        """``sending`` rows with no wamid past the lease: the process died mid-send; retry."""
        with self.db.session() as s:
            return s.execute(update(OutboundMessage).where(
                OutboundMessage.status == "sending", OutboundMessage.wamid.is_(None),
                OutboundMessage.next_attempt_at < utcnow() - self.lease).values(
                status="pending")).rowcount or 0

    def claim(self) -> OutboundMessage | None:
        """Claim the oldest due row (marked ``sending``), or None.

        Row locks (PostgreSQL) plus a compare-and-set on the status (also SQLite).
        """
        for _ in range(5):
            with self.db.session() as s:
                row = s.scalars(select(OutboundMessage).where(
                    OutboundMessage.status == "pending", OutboundMessage.next_attempt_at <= utcnow())
                    .order_by(OutboundMessage.id).limit(1).with_for_update(skip_locked=True)).first()
                if row is None:
                    return None
                won = s.execute(update(OutboundMessage).where(
                    OutboundMessage.id == row.id, OutboundMessage.status == "pending").values(
                    status="sending", attempts=OutboundMessage.attempts + 1,
                    next_attempt_at=utcnow())).rowcount
                if won == 1:
                    s.refresh(row)
                    return row
        return None

    def send_once(self) -> bool:
        """Send one due message; False when nothing was due."""
        wait = self.bucket.wait_time()
        if wait:
            self._stop.wait(wait)
            return True
        row = self.claim()
        if row is None:
            return False
        payload = {**row.payload, "biz_opaque_callback_data": row.idempotency_key}
        try:
            wamid = self.client.send(row.phone_number_id, payload)
        except AmbiguousSendError as exc:
            # Meta may have the message: leave it 'sending' so a status webhook can confirm it;
            # requeue_unconfirmed retries it only if none arrives within the lease.
            log.warning("outbound %s: %s; waiting for a status before any retry", row.id, exc)
            if row.attempts >= self.max_attempts:
                self._finish(row.id, status="failed", error=f"unconfirmed after {row.attempts} attempts")
        except RetryableSendError as exc:
            self._retry(row.id, row.attempts, str(exc), exc.retry_after)
        except PermanentSendError as exc:
            self._finish(row.id, status="failed", error=str(exc))
            log.warning("outbound %s failed permanently: %s", row.id, exc)
        else:
            self._finish(row.id, status="sent", wamid=wamid)
        return True

    def _retry(self, row_id: int, attempts: int, error: str, retry_after: float | None) -> None:
        if attempts >= self.max_attempts:
            self._finish(row_id, status="failed", error=f"gave up after {attempts} attempts: {error}")
            log.error("outbound %s: gave up after %d attempts", row_id, attempts)
            return
        delay = min(self.max_delay, self.base_delay * 2 ** (attempts - 1))
        delay = max(delay * random.uniform(0.5, 1.0), retry_after or 0.0)
        with self.db.session() as s:
            row = s.get(OutboundMessage, row_id)
            row.status, row.last_error = "pending", error[:500]
            row.next_attempt_at = utcnow() + timedelta(seconds=delay)
        log.info("outbound %s: retry in %.2fs (%s)", row_id, delay, error)

    def _finish(self, row_id: int, status: str, wamid: str | None = None, error: str | None = None
                ) -> None:
        METRICS.messages_out.labels(status=status).inc()
        with self.db.session() as s:
            row = s.get(OutboundMessage, row_id)
            if status == "sent" and row.status in ("delivered", "read"):
                status = row.status  # a status webhook got here first
            row.status = status
            if wamid:
                row.wamid, row.sent_at = wamid, utcnow()
            if error:
                row.last_error = error[:500]
