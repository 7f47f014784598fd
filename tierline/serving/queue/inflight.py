"""Bookkeeping of the sender's sends: which rows are in hand, which sends have finished.

Kept apart from the sender so that its two threads share one small, locked structure: the
sender's thread claims rows and records outcomes, the event loop's thread finishes sends. The
notify outbox's sender keeps its rows in hand here too (its lease requeue skips them).
"""

from __future__ import annotations

import threading
import time
from typing import Generic, TypeVar

Result = TypeVar("Result")


class InFlight(Generic[Result]):
    """Rows claimed and not yet recorded, at most ``limit`` of them.

    A row holds its slot from its claim until its outcome is recorded (not merely until its
    send returns): a database that cannot take the outcomes must stop the claims too, or the
    unrecorded outcomes would pile up in memory.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._changed = threading.Condition()
        self._held: set[int] = set()
        self._finished: list[tuple[int, Result]] = []

    def free(self) -> int:
        """How many more rows may be claimed now."""
        with self._changed:
            return max(0, self.limit - len(self._held))

    def held(self) -> list[int]:
        """The rows in hand (claimed, their outcomes not yet recorded)."""
        with self._changed:
            return sorted(self._held)

    def hold(self, row_ids: list[int]) -> None:
        """Rows just claimed, about to be sent."""
        with self._changed:
            self._held.update(row_ids)

    def finish(self, row_id: int, result: Result) -> bool:
        """A send returned. True when its outcome should be recorded now: no other send is
        still running (what finished is a batch, as good as it gets), or every slot is held
        (the claims wait for a record to free one)."""
        with self._changed:
            self._finished.append((row_id, result))
            self._changed.notify_all()
            return len(self._finished) >= len(self._held) or len(self._held) >= self.limit

    def take_finished(self) -> list[tuple[int, Result]]:
        """The outcomes not yet recorded (their rows keep their slots until :meth:`release`)."""
        with self._changed:
            finished, self._finished = self._finished, []
            return finished

    def put_back(self, finished: list[tuple[int, Result]]) -> None:
        """Outcomes whose record failed: recorded again on the next try."""
        with self._changed:
            self._finished[:0] = finished

    def release(self, row_ids: list[int]) -> None:
        """Rows whose outcomes were recorded: their slots are free."""
        with self._changed:
            self._held.difference_update(row_ids)

    def wait_until_sent(self, timeout: float) -> bool:
        """Wait (at most ``timeout`` seconds) until every held row's send has returned."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self._finished) < len(self._held):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
            return True
