"""One generation of models and flow, followed by every service process.

Several processes serve one database (``TIERLINE_WORKERS`` > 1, or several hosts), and each
loads its own models and flow (``bot.yaml`` and the FAQ, orders and customers files it names).
``POST /v1/admin/reload`` is answered by one of them, and each process used to poll the model
registry on its own timer: after an admin reload the other processes kept the old FAQ answers
and models until they restarted, and a champion move reached them at different times.

The database now says what is live: the ``live_versions`` row (migration 0010), whose
``generation`` only grows. A change is announced by raising it:

- ``POST /v1/admin/reload``: the process that answers loads the new models and flow first (a
  broken file is refused with 409 and announced to nobody), then raises the generation and
  switches;
- a champion alias move in the registry (any of the four: the English pair's, or the
  multilingual pair's that serves it/es/pt): the process that notices it does the same, but only
  if the row is still at the generation it serves (compare-and-set), so that several
  processes noticing one move announce it once.

Every process runs a :class:`LiveWatcher`. Every ``TIERLINE_LIVE_POLL_SECONDS`` (1 s) it reads
the row, one primary-key SELECT, and when its own generation is behind it reloads models and
flow itself, loading exactly the registry versions the row names. A reload that fails there
leaves the process on its previous models, still serving: the error is logged, counted
(``tierline_model_reloads_total{outcome="failed"}``), shown by ``GET /v1/admin/models`` and
retried with backoff; ``tierline_served_generation`` in ``/metrics`` shows every process's
generation, so one left behind stands out.

Why a polled row and not a signal between processes: the processes may be on several hosts,
the database is the one thing they all share, and a SELECT a second per process costs nothing
next to the worker's own polling.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from sqlalchemy import select, update

from tierline.nlu.flow import BotFlow
from tierline.serving.queue.loops import BackgroundLoop, retry_delay
from tierline.serving.registry import Champions
from tierline.serving.storage.db import Database
from tierline.serving.storage.models import LiveVersions, utcnow

if TYPE_CHECKING:
    from tierline.serving.registry import ChampionRegistry

log = logging.getLogger(__name__)
#: The one row of ``live_versions``.
ROW_ID = 1
#: A failed follow is tried again after at most this long (then every this long).
MAX_RETRY_SECONDS = 60.0
LIVE = LiveVersions.__table__


@dataclass(frozen=True)
class LiveState:
    """A generation and what it is: registry versions of the English pair and of the
    multilingual pair (None: the folders), the primary NLU bundle (``name@version``) and the
    flow's digest."""

    generation: int
    nlu_version: str | None = None
    policy_version: str | None = None
    nlu_bundle: str | None = None
    flow_digest: str | None = None
    multilingual_nlu_version: str | None = None
    multilingual_policy_version: str | None = None

    @property
    def versions(self) -> Champions:
        """The registry versions this generation pins."""
        return Champions.of(self)

    def describe(self) -> dict:
        return asdict(self)

    def differences(self, other: LiveState) -> list[str]:
        """The content fields (bundle, flow) where both know a value and they differ."""
        return [name for name in ("nlu_bundle", "flow_digest")
                if getattr(self, name) and getattr(other, name)
                and getattr(self, name) != getattr(other, name)]


class LiveRow:
    """The ``live_versions`` row: read it, raise its generation."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def read(self) -> LiveState:
        """The generation every process should serve, and what it is."""
        with self.db.one_statement() as connection:
            row = connection.execute(select(LIVE).where(LIVE.c.id == ROW_ID)).one()
        return LiveState(row.generation, row.nlu_version, row.policy_version, row.nlu_bundle,
                         row.flow_digest, row.multilingual_nlu_version,
                         row.multilingual_policy_version)

    def bump(self, state: LiveState, reason: str, expected: int | None = None) -> int | None:
        """Announce ``state`` as the next generation; returns that generation.

        With ``expected``, only if the row is still at that generation (else None: another
        process announced something first). One ``UPDATE ... RETURNING``: atomic on both
        databases, however many processes bump at once.
        """
        statement = (update(LIVE).where(LIVE.c.id == ROW_ID)
                     .values(generation=LIVE.c.generation + 1, nlu_version=state.nlu_version,
                             policy_version=state.policy_version,
                             multilingual_nlu_version=state.multilingual_nlu_version,
                             multilingual_policy_version=state.multilingual_policy_version,
                             nlu_bundle=state.nlu_bundle, flow_digest=state.flow_digest,
                             reason=reason[:200], updated_at=utcnow())
                     .returning(LIVE.c.generation))
        if expected is not None:
            statement = statement.where(LIVE.c.generation == expected)
        with self.db.one_statement() as connection:
            return connection.execute(statement).scalar_one_or_none()


def flow_digest(flow: BotFlow, flow_path: Path) -> str:
    """SHA-256 of the flow file and the files it reads (FAQ, orders, customers): two
    processes with the same digest answer from the same flow."""
    digest = hashlib.sha256()
    for path in (Path(flow_path), flow.path(flow.faq.file), flow.path(flow.orders.file),
                 flow.path(flow.customers.file)):
        digest.update(path.name.encode() + b"\0")
        digest.update(path.read_bytes() if path.exists() else b"(missing)")
    return f"sha256:{digest.hexdigest()[:16]}"


class Follower(Protocol):
    """What the watcher needs of the service (``Services``)."""

    live: LiveRow
    registry: ChampionRegistry | None

    @property
    def generation(self) -> int: ...

    def follow(self, live: LiveState) -> None: ...

    def follow_registry(self) -> None: ...


class LiveWatcher(BackgroundLoop):
    """Each process's loop: follow the row's generation; every ``registry_poll_seconds`` (0:
    never) ask the registry whether a champion moved.

    The registry is asked in the loop's housekeeping, which :class:`BackgroundLoop` runs at most
    every ``housekeeping_seconds``, so one thread does both and a reload never runs twice at
    once in a process.
    """

    thread_name = "tierline-live"

    def __init__(self, services: Follower, poll_seconds: float,
                 registry_poll_seconds: float = 0.0) -> None:
        super().__init__(poll_seconds, housekeeping_seconds=registry_poll_seconds)
        self.services = services
        self.watches_registry = services.registry is not None and registry_poll_seconds > 0
        self.failures = 0
        self._retry_at = 0.0

    def housekeeping(self) -> None:
        if not self.watches_registry:
            return
        try:
            self.services.follow_registry()
        except Exception as exc:  # noqa: BLE001 - an outage must not stop the row's polling
            log.warning("could not follow the model registry (still serving generation %d): %s",
                        self.services.generation, exc)

    def step(self) -> bool:
        live = self.services.live.read()
        if live.generation <= self.services.generation or time.monotonic() < self._retry_at:
            return False
        try:
            self.services.follow(live)
        except Exception:  # noqa: BLE001 - keep serving the previous models; retry later
            self.failures += 1
            delay = retry_delay(self.failures, self.poll_seconds, MAX_RETRY_SECONDS)
            self._retry_at = time.monotonic() + delay
            log.exception("could not load generation %d; still serving generation %d, "
                          "trying again in %.0f s", live.generation, self.services.generation,
                          delay)
        else:
            self.failures = 0
        return False
