"""A stoppable background loop: the shape shared by the worker and the outbox sender."""

from __future__ import annotations

import logging
import threading
import time

log = logging.getLogger(__name__)


class BackgroundLoop:
    """Runs ``housekeeping()`` (at most every ``housekeeping_seconds``) then ``step()`` in a
    daemon thread until stopped.

    ``step()`` returns False when there was nothing to do (the loop then sleeps
    ``poll_seconds``); an exception (a database outage, say) is logged and the loop backs off
    for a second instead of dying.
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
        for thread in self._threads:
            thread.join(timeout)

    def housekeeping(self) -> None:
        """Work to do before each step (e.g. requeue expired leases)."""

    def step(self) -> bool:
        """Do one unit of work; False when there was none."""
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
                    self._stop.wait(self.poll_seconds)
            except Exception:  # noqa: BLE001 - the loop must survive outages
                log.exception("%s error; backing off", self.thread_name)
                self._stop.wait(1.0)
