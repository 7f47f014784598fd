"""Group commit for the webhook: deliveries are stored a batch per transaction, by one thread.

A webhook request hands its parsed delivery to the :class:`IntakeWriter` and waits; the
writer's thread takes whatever deliveries are queued (up to ``max_batch``), stores them in one
transaction (:func:`tierline.serving.queue.store.store_deliveries`) and only then answers each waiting
request, so a 200 still means "committed". Under load many deliveries share one commit; when
traffic is light a batch is a single delivery and nothing waits for companions.

Why not a database session per request on the request thread pool, as before: at 64 requests
in flight that meant up to 40 threads queueing for the GIL and for pooled connections, and the
stores cost 1.7 CPU-ms per message on those threads against 0.6 for the same statements run
from one thread (``tierline bench http``, README "Benchmark").

Failure keeps the webhook's contract: if the database cannot be reached, every delivery of the
batch gets the error (the route answers 503 and Meta delivers again); if the batch fails for
another reason (one delivery's data, say), its deliveries are stored again one transaction
each, so one bad delivery cannot refuse the others.
"""

from __future__ import annotations

import asyncio

from sqlalchemy.exc import OperationalError

from tierline.serving.queue.loops import BatchingLoop
from tierline.serving.queue.store import StoreResult, store_deliveries
from tierline.serving.storage.db import Database
from tierline.serving.channels.whatsapp.payload import IncomingMessage, StatusUpdate


class IntakeClosed(OperationalError):
    """The service is shutting down: the delivery was not stored (answered 503, Meta retries)."""

    def __init__(self) -> None:
        super().__init__("intake closed", None, Exception("the service is stopping"))


class IntakeBusy(OperationalError):
    """The delivery was not stored in time, or too many wait already (the database is slow
    or unreachable without an error, a silent network drop): answered 503, Meta retries; a
    commit that still happens later makes the retry a duplicate, never a loss."""

    def __init__(self, why: str) -> None:
        super().__init__(why, None, Exception(why))


class IntakeWriter(BatchingLoop):
    """Stores webhook deliveries in group commits from one background thread; at most
    ``max_queue`` deliveries wait, each at most ``timeout`` seconds."""

    thread_name = "tierline-intake"

    def __init__(self, db: Database, phone_number_id: str | None, new_state,
                 max_batch: int = 64, max_queue: int | None = 1000,
                 timeout: float | None = 10.0) -> None:
        super().__init__(max_batch, max_queue)
        self.db = db
        self.phone_number_id = phone_number_id
        self.new_state = new_state
        self.timeout = timeout

    async def store(self, messages: list[IncomingMessage], statuses: list[StatusUpdate]) -> StoreResult:
        """Store one delivery; returns once its transaction committed (raises if it did not,
        :class:`IntakeBusy` if that took longer than ``timeout``)."""
        try:
            return await asyncio.wait_for(self.submit((messages, statuses)), self.timeout)
        except asyncio.TimeoutError:
            raise IntakeBusy(f"not committed within {self.timeout}s") from None

    def closed_error(self) -> Exception:
        return IntakeClosed()

    def full_error(self) -> Exception:
        return IntakeBusy(f"{self.max_queue} deliveries already waiting")

    def process(self, deliveries: list[tuple[list[IncomingMessage], list[StatusUpdate]]]) -> list:
        """Store ``deliveries`` in one transaction: a result or the exception per delivery."""
        return self.together_or_alone(deliveries, lambda batch: store_deliveries(
            self.db, batch, self.phone_number_id, self.new_state))
