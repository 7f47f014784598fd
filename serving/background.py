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

    def __init__(self, poll_seconds: float, housekeeping_seconds: float = 0.0) -> None:
        self.poll_seconds = poll_seconds
        # Housekeeping (requeueing expired leases) is a transaction of its own: run before
        # every step it cost as much as the step's work when the queue was busy.
        self.housekeeping_seconds = housekeeping_seconds
        self._housekeeping_due = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the background thread."""
        self._thread = threading.Thread(target=self._loop, name=self.thread_name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the step in hand, then stop (SIGTERM drains through here)."""
        self._stop.set()
        if self._thread:
            self._thread.join(timeout)

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

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._maybe_housekeeping()
                if not self.step():
                    self._stop.wait(self.poll_seconds)
            except Exception:  # noqa: BLE001 - the loop must survive outages
                log.exception("%s error; backing off", self.thread_name)
                self._stop.wait(1.0)
