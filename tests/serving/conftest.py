"""A running tierline service wired to a fake Graph API, on SQLite and (when configured)
PostgreSQL: set ``TIERLINE_TEST_POSTGRES_URL`` (``.ci/run`` does) to run every serving test
against both."""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, select, text

from tierline.serving.app import create_app
from tierline.serving.settings import Settings
from tierline.serving.storage.db import Database
from tierline.serving.storage.models import Ticket
from tests.conftest import LiveServer
from tests.serving.fakes import (
    ACCESS_TOKEN,
    APP_SECRET,
    PHONE_NUMBER_ID,
    VERIFY_TOKEN,
    FakeGraphAPI,
    envelope,
    sign,
)

POSTGRES_URL = os.environ.get("TIERLINE_TEST_POSTGRES_URL")
BACKENDS = ["sqlite"] + (["postgres"] if POSTGRES_URL else [])


@pytest.fixture(scope="module", params=BACKENDS)
def database_url(request, tmp_path_factory) -> Iterator[str]:
    """A fresh, empty database per test module and backend."""
    with fresh_database(request.param, tmp_path_factory) as url:
        yield url


@contextlib.contextmanager
def fresh_database(backend: str, tmp_path_factory) -> Iterator[str]:
    """The URL of a new, empty database on ``backend`` ("sqlite" or "postgres"), dropped after."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'tierline.db'}"
        return
    name = f"tierline_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_URL.replace("postgresql://", "postgresql+psycopg://"),
                          isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}"
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture()
def db(database_url) -> Iterator[Database]:
    """A migrated database handle on the module's database (closed after the test)."""
    database = Database(database_url)
    database.migrate()
    yield database
    database.dispose()


@dataclass
class Service:
    """The running service, its fake Graph API peer and helpers to talk to it."""

    server: LiveServer
    graph: FakeGraphAPI
    app: object

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def services(self):
        return self.app.state.services

    def api_headers(self, scopes: tuple[str, ...] = ("analyze", "decide")) -> dict[str, str]:
        """``Authorization`` of an API key of this service (``/v1/analyze``, ``/v1/decide``)."""
        return self.server.api_headers(scopes)

    def deliver(self, body: dict, secret: str = APP_SECRET) -> httpx.Response:
        """POST a signed webhook like Meta does."""
        raw = httpx.Request("POST", "http://x", json=body).content
        return httpx.post(f"{self.url}/webhooks/whatsapp", content=raw, timeout=10,
                          headers={"content-type": "application/json",
                                   "x-hub-signature-256": sign(raw, secret)})

    def say(self, *messages: dict) -> httpx.Response:
        """Deliver customer messages in one webhook."""
        response = self.deliver(envelope(list(messages)))
        assert response.status_code == 200, response.text
        return response

    def wait_ticket(self, customer: str, timeout: float = 15.0) -> int:
        """The id of the ticket the worker opens for this customer's WhatsApp conversation."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.services.db.session() as s:
                ticket = s.scalars(select(Ticket).where(
                    Ticket.conversation_id == f"wa:{PHONE_NUMBER_ID}:{customer}")).first()
                if ticket is not None:
                    return ticket.id
            time.sleep(0.05)
        raise AssertionError(f"no ticket for {customer}")


def settings_for(database_url: str, graph_url: str, **overrides) -> Settings:
    """Service settings for tests: fast polling and retries, the fake Graph API."""
    values = dict(database_url=database_url, whatsapp_app_secret=APP_SECRET,
                  whatsapp_verify_token=VERIFY_TOKEN, whatsapp_access_token=ACCESS_TOKEN,
                  whatsapp_phone_number_id=PHONE_NUMBER_ID, whatsapp_api_base=graph_url,
                  worker_poll_seconds=0.01, whatsapp_retry_base_seconds=0.05,
                  whatsapp_retry_max_seconds=0.5, whatsapp_send_timeout=2.0,
                  api_key_cache_seconds=0.5)
    values.update(overrides)
    return Settings(**values)


def process_env(database_url: str, graph_url: str, **overrides: str) -> dict[str, str]:
    """Environment of a ``python -m tierline serve`` process talking to the fake Graph API."""
    return {**os.environ, "TIERLINE_DATABASE_URL": database_url,
            "TIERLINE_WHATSAPP_APP_SECRET": APP_SECRET, "TIERLINE_WHATSAPP_VERIFY_TOKEN": VERIFY_TOKEN,
            "TIERLINE_WHATSAPP_ACCESS_TOKEN": ACCESS_TOKEN,
            "TIERLINE_WHATSAPP_PHONE_NUMBER_ID": PHONE_NUMBER_ID,
            "TIERLINE_WHATSAPP_API_BASE": graph_url, "TIERLINE_WORKER_POLL_SECONDS": "0.01",
            "TIERLINE_LOG_LEVEL": "WARNING", **overrides}


def alive(pid: int) -> bool:
    """The process runs (it exists and is not a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def stop_service(proc: subprocess.Popen, others: set[int]) -> None:
    """Stop a ``tierline serve`` parent (SIGTERM, which drains), then SIGKILL any of its
    worker processes ``others`` still there (by PID)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    for pid in others:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


#: Settings overrides for tests of the notify outbox: quick polls, retries and leases.
FAST_NOTIFY = dict(notify_retry_base_seconds=0.05, notify_poll_seconds=0.05,
                   notify_timeout_seconds=1.0, notify_lease_seconds=3.0)


@contextlib.contextmanager
def serve(analyzer, database_url: str, **overrides) -> Iterator[Service]:
    """tierline with the webhook and sending enabled, talking to a fresh fake Graph API, its
    settings changed by ``overrides``."""
    graph = FakeGraphAPI()
    app = create_app(settings_for(database_url, graph.url, **overrides), analyzer=analyzer)
    try:
        with LiveServer(app) as server:
            yield Service(server, graph, app)
    finally:
        graph.close()


@pytest.fixture(scope="module")
def service(analyzer, database_url) -> Iterator[Service]:
    """tierline with the webhook and sending enabled, talking to a fake Graph API."""
    with serve(analyzer, database_url) as running:
        yield running


@contextlib.contextmanager
def steady_traffic(send: Callable[[int, int], int], clients: int) -> Iterator[list[int]]:
    """``clients`` threads each calling ``send(client, i)`` (i = 1, 2, ...; it returns an HTTP
    status) until the block ends; yields the list the statuses are appended to. The clients are
    stopped and joined however the block ends, and a client's exception is raised there."""
    stop = threading.Event()
    statuses: list[int] = []

    def client(n: int) -> None:
        i = 0
        while not stop.is_set():
            i += 1
            statuses.append(send(n, i))

    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        jobs = [pool.submit(client, n) for n in range(clients)]
        try:
            yield statuses
        finally:
            stop.set()
            for job in jobs:
                job.result()
