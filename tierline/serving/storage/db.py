"""The database handle: engine, sessions and migrations, from one URL.

SQLite is the embedded default (WAL mode, a busy timeout, foreign keys on); PostgreSQL is the
production store. The schema is owned by Alembic: ``migrate()`` runs at start-up.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, Engine, Select, create_engine, event, exc, select, text
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
#: Pooled PostgreSQL connections per process (kept open) and extra ones opened under bursts.
PG_POOL_SIZE = 20
PG_POOL_OVERFLOW = 10
#: A pooled connection idle for longer than this is pinged before use (see ``_ping_if_idle``).
PING_AFTER_IDLE_SECONDS = 1.0
#: Key of the PostgreSQL advisory lock that serialises migrations across processes.
MIGRATION_LOCK_KEY = 7_215_090_404


#: Alembic's command context is module-global (``alembic.context``): two threads of one process
#: migrating at once (a service starting while a test or the CLI migrates) break each other's.
_ALEMBIC_IN_PROCESS = threading.Lock()


def normalise_url(url: str) -> str:
    """Use the psycopg 3 driver for plain ``postgresql://`` URLs."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


@dataclass(frozen=True)
class Timeouts:
    """PostgreSQL timeouts, so that a silent network drop fails a statement instead of
    holding a thread forever: ``connect`` (seconds to open a connection), ``statement``
    (server-side ``statement_timeout``), ``tcp_user`` (seconds sent data may stay
    unacknowledged before the kernel drops the connection; keepalive probes start after it
    too, so an idle pooled connection to a vanished server is noticed)."""

    connect: float = 5.0
    statement: float = 30.0
    tcp_user: float = 10.0

    def connect_args(self) -> dict:
        """libpq connection parameters."""
        return {"connect_timeout": max(1, round(self.connect)), "keepalives": 1,
                "keepalives_idle": max(1, round(self.tcp_user)), "keepalives_interval": 2,
                "keepalives_count": 3, "tcp_user_timeout": int(self.tcp_user * 1000),
                "options": f"-c statement_timeout={int(self.statement * 1000)}"}


class Database:
    """Engine + session factory for one database URL."""

    def __init__(self, url: str, timeouts: Timeouts = Timeouts()) -> None:
        self.url = normalise_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        connect_args = {"timeout": 30, "check_same_thread": False} if self.is_sqlite else \
            timeouts.connect_args()
        # PostgreSQL: keep enough connections for the request thread pool (40) to rarely open
        # one per request: SQLAlchemy's default (5, +10 opened and closed on demand) made every
        # burst of webhooks pay a connection set-up on both sides, a CPU cost per message.
        pool = {} if self.is_sqlite else {"pool_size": PG_POOL_SIZE, "max_overflow": PG_POOL_OVERFLOW}
        # hide_parameters: a failed statement's exception (logged at ERROR by the loops and
        # routes) would otherwise quote its bound parameters: customer text, phone numbers.
        self.engine: Engine = create_engine(self.url, connect_args=connect_args, future=True,
                                            hide_parameters=True, **pool)
        event.listen(self.engine, "checkin", _note_checkin)
        event.listen(self.engine, "checkout", functools.partial(_ping_if_idle, self.engine.dialect))
        if self.is_sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
        event.listen(self.engine, "before_cursor_execute", _replace_nul, retval=True)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._autocommit = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        self._sqlite_lock = threading.RLock() if self.is_sqlite else nullcontext()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on error.

        On SQLite, transactions of this process take turns on a lock: SQLite has one writer
        at a time anyway, and its busy handler sleeps in steps of up to 100 ms, which turns
        contention between the webhook and the worker into second-long tail latencies.
        """
        with self._sqlite_lock, self.sessions() as session, session.begin():
            yield session

    @contextmanager
    def one_statement(self) -> Iterator[Connection]:
        """A Core connection for work whose statements each stand alone (a claim and the
        reads after it, a lease requeue, the intake's batch).

        On PostgreSQL in autocommit mode: a statement is atomic on its own, and BEGIN and
        COMMIT would be two more round trips, more CPU than the statement for a claim or a
        webhook's insert. On SQLite a transaction under this process's lock (see
        :meth:`session`). Core, not the ORM: a session's claim cost twice the CPU of the same
        statement on a connection, and idle workers claim twenty times a second.
        """
        if self.is_sqlite:
            with self._sqlite_lock, self.engine.begin() as connection:
                yield connection
        else:
            with self._autocommit.connect() as connection:
                yield connection

    @classmethod
    def for_settings(cls, settings) -> Database:
        """The database of the service's settings (``TIERLINE_DATABASE_URL``), with its
        timeouts (a ``tierline.serving.settings.Settings``)."""
        return cls(settings.database_url, Timeouts(
            connect=settings.database_connect_timeout_seconds,
            statement=settings.database_statement_timeout_seconds,
            tcp_user=settings.database_tcp_user_timeout_seconds))

    def migrate(self, revision: str = "head") -> None:
        """Bring the schema to the newest Alembic revision (or to ``revision``).

        Several processes start at once (``tierline serve --workers N``): one migrates while
        the others wait on a lock (a PostgreSQL advisory lock held by the migration's
        transaction; a file lock beside an SQLite database), then find the schema up to date.
        Without it, two processes created the same tables and one of them failed to start.
        """
        self._alembic(command.upgrade, revision)
        log.info("database schema up to date (%s)", self.engine.url.render_as_string(hide_password=True))

    def downgrade(self, revision: str) -> None:
        """Take the schema back to ``revision`` (what the newer revisions added is dropped),
        under the same lock and in one transaction, like :meth:`migrate`."""
        self._alembic(command.downgrade, revision)

    def current_revision(self) -> str | None:
        """The database's Alembic revision (None: no schema yet)."""
        with self.engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()

    @staticmethod
    def head_revision() -> str:
        """This release's newest revision (what :meth:`migrate` brings a database to)."""
        return ScriptDirectory.from_config(_alembic_config()).get_current_head()

    @staticmethod
    def knows_revision(revision: str) -> bool:
        """Whether ``revision`` is one of this release's migrations (a newer release's is not)."""
        try:
            ScriptDirectory.from_config(_alembic_config()).get_revision(revision)
        except CommandError:
            return False
        return True

    def _alembic(self, step, revision: str) -> None:
        """Run an Alembic command on this database in one transaction, under the lock."""
        config = _alembic_config()
        config.set_main_option("sqlalchemy.url", self.url.replace("%", "%%"))
        with _ALEMBIC_IN_PROCESS, self._migration_file_lock(), self.engine.begin() as connection:
            if not self.is_sqlite:
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            config.attributes["connection"] = connection
            step(config, revision)

    @contextmanager
    def _migration_file_lock(self) -> Iterator[None]:
        """An exclusive lock on ``<database file>.migrate.lock`` (SQLite files only)."""
        database = self.engine.url.database
        if not self.is_sqlite or not database or database == ":memory:":
            yield
            return
        import fcntl

        with open(f"{database}.migrate.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def ping(self) -> bool:
        """True when the database answers a trivial query."""
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except Exception:  # noqa: BLE001 - any failure means "not reachable"
            return False

    def dispose(self) -> None:
        """Close pooled connections."""
        self.engine.dispose()


def _alembic_config() -> Config:
    """Alembic's configuration: the migrations shipped in this package."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def dialect_insert(session, model):
    """The INSERT of the session's dialect, for ``ON CONFLICT DO NOTHING`` (SQLite and
    PostgreSQL both support it; SQLAlchemy's generic INSERT does not)."""
    dialect = session.get_bind().dialect.name
    return (postgresql_insert if dialect == "postgresql" else sqlite_insert)(model)


def evaluated_once(due: Select) -> Select:
    """``SELECT id FROM due``, with ``due`` (a ``SELECT id ... LIMIT n FOR UPDATE SKIP LOCKED``)
    run once, for ``UPDATE ... WHERE id IN (...)`` claims.

    PostgreSQL may plan ``id IN (SELECT ... LIMIT n FOR UPDATE SKIP LOCKED)`` as a semi-join
    that runs the subquery again for every candidate row; each run skips the rows the
    statement already updated and returns the next n, so the LIMIT did not hold (a worker with
    batches of 2 claimed all 5 due jobs; a sender would have sent past its rate limit). A
    ``MATERIALIZED`` CTE runs once. SQLite runs an uncorrelated subquery once anyway.
    """
    cte = due.cte("due").prefix_with("MATERIALIZED", dialect="postgresql")
    return select(cte.c.id)


def _without_nul(value):
    """A bound parameter with NUL characters replaced by U+FFFD (containers walked)."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd") if "\x00" in value else value
    if isinstance(value, dict):
        return {k: _without_nul(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_without_nul(v) for v in value)
    return value


def _replace_nul(_conn, _cursor, statement, parameters, _context, _executemany):
    """PostgreSQL text cannot hold NUL (``\x00``): a customer message, a note or a query filter
    carrying one would fail its transaction (a 500, or a webhook answered 503 and redelivered
    forever). Both databases get U+FFFD instead, the usual stand-in for an unusable character,
    so SQLite and PostgreSQL store the same text."""
    return statement, _without_nul(parameters)


def _note_checkin(_dbapi_connection, record) -> None:
    record.info["checked_in_at"] = time.monotonic()


def _ping_if_idle(dialect, dbapi_connection, record, _proxy) -> None:
    """Ping a pooled connection before use only if it sat idle for a while.

    ``pool_pre_ping`` pings on every checkout: a round trip (and PostgreSQL work) for every
    transaction, a fifth of the webhook's time under load. A connection used within the last
    second is as good as the ping would say; one idle longer (across a database restart,
    say) is pinged, and a dead one is replaced (``DisconnectionError`` makes the pool retry
    with a new connection). A connection that dies within that second fails its transaction,
    and SQLAlchemy then invalidates the whole pool: one request answers 503 (Meta retries),
    the worker and sender retry their step.
    """
    checked_in = record.info.get("checked_in_at")
    if checked_in is None or time.monotonic() - checked_in < PING_AFTER_IDLE_SECONDS:
        return
    try:
        ok = dialect.do_ping(dbapi_connection)
    except Exception:  # noqa: BLE001 - any failure means the connection is gone
        ok = False
    if not ok:
        raise exc.DisconnectionError("connection idle and unreachable")


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # WAL + NORMAL: a commit survives a process crash (kill -9); only an OS crash or power cut
    # can lose the last commits. PostgreSQL is the store for full durability.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
