"""A silent network drop to PostgreSQL (a black hole: the TCP connection stays up, nothing
arrives) must not hang the webhook: every delivery is answered 503 within a bound (its wait
for the intake's commit is bounded, and once the intake's queue is full further deliveries
are refused at once), and after the path comes back every message is stored exactly once.

Before: the intake thread waited forever on its socket and every webhook request with it.
PostgreSQL only (``TIERLINE_TEST_POSTGRES_URL``): an SQLite file cannot drop off the network.
"""

from __future__ import annotations

import concurrent.futures
import json
import time

import httpx
from sqlalchemy import func, select

from tierline.serving.app import create_app
from tierline.serving.storage.models import InboundMessage
from tests.conftest import LiveServer
from tests.serving.conftest import settings_for
from tests.serving.fakes import FakeGraphAPI, envelope, message, sign
from tests.serving.tcp_proxy import proxied

WAIT = 1.5  # intake_timeout_seconds
N = 24


def test_webhooks_answer_503_within_a_bound_while_postgresql_is_a_black_hole(analyzer,
                                                                              database_url):
    proxy, via_proxy = proxied(database_url)
    graph = FakeGraphAPI()
    app = create_app(settings_for(via_proxy, graph.url, intake_timeout_seconds=WAIT,
                                  intake_queue_max=8), analyzer=analyzer)
    customers = [f"4477009{70000 + n:05d}" for n in range(N)]

    def deliver(customer: str) -> tuple[int, float]:
        raw = json.dumps(envelope([message(text="hello", wamid=f"wamid.hole.{customer}",
                                           customer=customer)], customer=customer)).encode()
        t0 = time.monotonic()
        try:
            status = client.post(f"{server.url}/webhooks/whatsapp", content=raw, timeout=20,
                                headers={"x-hub-signature-256": sign(raw),
                                         "content-type": "application/json"}).status_code
        except httpx.TimeoutException:
            status = 0
        return status, time.monotonic() - t0

    # One client for all threads: a client each (an SSL context each) cost seconds of CPU.
    client = httpx.Client(limits=httpx.Limits(max_connections=N))
    try:
        with LiveServer(app) as server:
            assert deliver("447700969999")[0] == 200  # the path works
            proxy.hold()
            try:
                with concurrent.futures.ThreadPoolExecutor(N) as pool:
                    answers = list(pool.map(deliver, customers))
            finally:
                proxy.release()
            statuses = [s for s, _ in answers]
            slowest = max(t for _, t in answers)
            print(f"\nblack hole: {statuses.count(503)}/{N} deliveries answered 503, slowest "
                  f"{slowest:.2f}s (bound {WAIT}s + 1s); "
                  f"{sum(t < 0.5 for _, t in answers)} at once (queue full)")
            assert statuses == [503] * N and slowest < WAIT + 1.0
            # The path is back: Meta's retries are stored, each message once.
            deadline = time.monotonic() + 60
            pending = list(customers)
            while pending and time.monotonic() < deadline:
                pending = [c for c in pending if deliver(c)[0] != 200]
                time.sleep(0.2)
            assert not pending
            with app.state.services.db.session() as s:
                stored = s.scalar(select(func.count()).select_from(InboundMessage).where(
                    InboundMessage.wamid.like("wamid.hole.%")))
            assert stored == N + 1
    finally:
        client.close()
        proxy.release()
        proxy.cut()
        graph.close()
