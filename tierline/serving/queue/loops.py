"""Background threads: a stoppable loop (the worker, the senders) and a loop that serves
async callers in batches (the webhook's intake, ``/v1/decide``); the retry backoff the senders
share."""

from __future__ import annotations

import asyncio
import logging
import queue
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy.exc import OperationalError

log = logging.getLogger(__name__)
#: 2 ** this many attempts is the longest backoff before ``max_delay`` caps it (a float power
#: of two of a day's attempts would overflow).
MAX_BACKOFF_DOUBLINGS = 30


def retry_delay(attempts: int, base_delay: float, max_delay: float,
                retry_after: float | None = None) -> float:
    """Seconds before the next try after ``attempts`` failed ones: exponential with jitter, at
    least what the peer's ``Retry-After`` asked for, never more than ``max_delay`` (a
    ``Retry-After: 1e12`` once overflowed ``timedelta`` and lost a whole batch's outcomes)."""
    delay = min(max_delay, base_delay * 2 ** min(attempts - 1, MAX_BACKOFF_DOUBLINGS))
    delay = max(delay * random.uniform(0.5, 1.0), retry_after or 0.0)
    return min(delay, max_delay)


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's event loop when it is installed (uvicorn's own; less CPU per request than
    asyncio's), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class EventLoopThread:
    """An event loop running in a daemon thread of its own, for coroutines handed over from
    other threads (the sender's Graph API calls: its claims and records block on the database,
    and must not hold up the answers of the sends in flight)."""

    def __init__(self, name: str) -> None:
        self.loop = new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def call(self, callback: Callable[..., Any], *args: Any) -> None:
        """Run ``callback(*args)`` on the loop's thread, soon (from any thread)."""
        self.loop.call_soon_threadsafe(callback, *args)

    def close(self, last: Callable[[], Any] | None = None, timeout: float = 10.0) -> None:
        """Run the coroutine ``last()`` on the loop (closing a client, say), then stop the loop
        and its thread; coroutines still running are dropped with it."""
        if last is not None:
            try:
                asyncio.run_coroutine_threadsafe(last(), self.loop).result(timeout)
            except Exception:  # noqa: BLE001 - closing must go on
                log.exception("%s: closing failed", self._thread.name)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout)
        if not self._thread.is_alive():
            self.loop.close()


class BackgroundLoop:
    """Runs ``housekeeping()`` (at most every ``housekeeping_seconds``) then ``step()`` in a
    daemon thread until stopped.

    ``step()`` returns True when more work may be waiting at once (it took a full batch) and
    False otherwise (the loop then sleeps ``poll_seconds``, or until :meth:`wake`); an
    exception (a database outage, say) is logged and the loop backs off for a second instead
    of dying.

    Why sleep after a partial batch, not only after an empty one: a batch's claim and write
    cost about the same for one job as for thirty, so the work that arrives during the sleep
    is taken in one batch. Stepping again at once under load gave batches of three or four and
    twice the CPU per message (``tierline bench http``, README "Benchmark").
    """

    thread_name = "tierline-loop"

    def __init__(self, poll_seconds: float, housekeeping_seconds: float = 0.0,
                 threads: int = 1) -> None:
        self.poll_seconds = poll_seconds
        # Several threads run the same loop when one thread's steps spend most of their time
        # waiting (database round trips, the GIL): each step's claim keeps them apart.
        self.threads = threads
        self._local = threading.local()
        # Housekeeping (requeueing expired leases) is a transaction of its own: run before
        # every step it cost as much as the step's work when the queue was busy.
        self.housekeeping_seconds = housekeeping_seconds
        self._housekeeping_due = 0.0
        self._stop = threading.Event()
        # Set by wake() and stop(): a sleeping loop steps at once instead of at the end of its
        # poll.
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def thread_index(self) -> int:
        """Which of this loop's threads is running (0 outside them)."""
        return getattr(self._local, "index", 0)

    def start(self) -> None:
        """Start the background thread(s)."""
        self._threads = [threading.Thread(target=self._loop, args=(i,), daemon=True,
                                          name=f"{self.thread_name}-{i}" if i else self.thread_name)
                         for i in range(self.threads)]
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the steps in hand, then stop (SIGTERM drains through here)."""
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout)

    def wake(self) -> None:
        """A batch of work was committed for this loop: step now (cheap; from any thread).

        For the sender, after the worker wrote a batch's replies: they are one batch already,
        and waiting for the poll added half of it to every reply's latency. (Waking the
        worker after each intake commit was measured and reverted: those commits hold one or
        two messages, and the worker turned them in batches that small, at twice the CPU.)
        """
        self._wake.set()

    def housekeeping(self) -> None:
        """Work to do before each step (e.g. requeue expired leases)."""

    def step(self) -> bool:
        """Do one batch of work; True when it was full (more may be waiting)."""
        raise NotImplementedError

    def _maybe_housekeeping(self) -> None:
        now = time.monotonic()
        if now >= self._housekeeping_due:
            self.housekeeping()
            self._housekeeping_due = now + self.housekeeping_seconds

    def _loop(self, index: int = 0) -> None:
        self._local.index = index
        while not self._stop.is_set():
            try:
                self._maybe_housekeeping()
                if not self.step():
                    self._wake.wait(self.poll_seconds)
                    self._wake.clear()
            except Exception:  # noqa: BLE001 - the loop must survive outages
                log.exception("%s error; backing off", self.thread_name)
                self._stop.wait(1.0)


class ClosedError(RuntimeError):
    """The batching loop stopped: the item was not handled (a retry after restart is safe)."""


class QueueFull(RuntimeError):
    """A batching loop's queue is at ``max_queue``: the item was refused, not queued."""


class BatchingLoop(BackgroundLoop):
    """Serves async callers from one thread, a batch at a time.

    A caller awaits :meth:`submit`; the thread takes every item queued (up to ``max_batch``)
    and hands them to :meth:`process`, which returns one result or exception per item; each
    caller then gets its own. Under load many callers share one batch (one transaction, one
    model call); a lone caller is served at once, nothing waits for companions. Each caller's
    answer comes after :meth:`process` returned, so "answered" means "done" (committed).
    """

    def __init__(self, max_batch: int = 64, max_queue: int | None = None) -> None:
        super().__init__(poll_seconds=0.0)
        self.max_batch = max_batch
        #: Items allowed to wait; past it :meth:`submit` raises :meth:`full_error` at once
        #: (None: unbounded). A stuck thread (a database gone silent) must not gather callers
        #: without limit, each holding a request open.
        self.max_queue = max_queue
        self._queue: queue.SimpleQueue[tuple[Any, asyncio.AbstractEventLoop, asyncio.Future]] = \
            queue.SimpleQueue()
        # Queueing and closing take turns, so nothing is queued after the last drain.
        self._closing = threading.Lock()
        self._closed = False

    def process(self, items: list[Any]) -> list[Any]:
        """One result (or exception instance) per item, in order."""
        raise NotImplementedError

    def together_or_alone(self, items: list[Any], run: Callable[[list[Any]], list[Any]]) -> list[Any]:
        """``run(items)``, one transaction for all of them; if the database cannot be reached,
        every item gets that error (one attempt, not one per item); if it fails otherwise,
        each item is run again on its own, so one bad item fails alone."""
        try:
            return run(items)
        except OperationalError as exc:
            return [exc] * len(items)
        except Exception as exc:  # noqa: BLE001 - answered as errors, never lost silently
            if len(items) == 1:
                return [exc]
            log.warning("%s: a batch of %d failed together (%s); running them one by one",
                        self.thread_name, len(items), type(exc).__name__)
            return [self.together_or_alone([item], run)[0] for item in items]

    def closed_error(self) -> Exception:
        """What a caller gets once the loop stopped."""
        return ClosedError(f"{self.thread_name} stopped")

    def full_error(self) -> Exception:
        """What a caller gets when ``max_queue`` items are already waiting."""
        return QueueFull(f"{self.thread_name}: {self.max_queue} items waiting")

    async def submit(self, item: Any) -> Any:
        """Queue ``item``; its result once its batch was processed (raised if an exception)."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        with self._closing:
            if self._closed:
                raise self.closed_error()
            if self.max_queue is not None and self._queue.qsize() >= self.max_queue:
                raise self.full_error()
            self._queue.put((item, loop, future))
        return await future

    def step(self) -> bool:
        try:
            batch = [self._queue.get(timeout=0.1)]
        except queue.Empty:
            return True  # the wait was the poll; look at the stop flag again
        while len(batch) < self.max_batch:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        self._answer(batch)
        return True

    def _answer(self, batch: list[tuple[Any, asyncio.AbstractEventLoop, asyncio.Future]]) -> None:
        try:
            results = self.process([item for item, _, _ in batch])
        except Exception as exc:  # noqa: BLE001 - every caller gets the error, not the thread
            results = [exc] * len(batch)
        for (_, loop, future), result in zip(batch, results):
            loop.call_soon_threadsafe(_settle, future, result)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread, then process what is still queued; later callers get
        :meth:`closed_error`."""
        super().stop(timeout)
        with self._closing:
            self._closed = True
        leftover = []
        while True:
            try:
                leftover.append(self._queue.get_nowait())
            except queue.Empty:
                break
        for start in range(0, len(leftover), self.max_batch):
            self._answer(leftover[start:start + self.max_batch])


def _settle(future: asyncio.Future, result: Any) -> None:
    if future.done():  # the caller went away (client disconnected)
        return
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)
