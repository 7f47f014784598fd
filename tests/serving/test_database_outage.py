"""PostgreSQL goes away in the middle of a load and comes back: webhooks answer 503 meanwhile
(so Meta delivers again), nothing is acknowledged that was not stored, and the service
recovers by itself: every acknowledged message is answered exactly once, nobody restarts
anything.

The service reaches PostgreSQL through a small TCP proxy on 127.0.0.1; the outage is the proxy
closing its listening socket *and* every open connection (what a database restart or a lost
network path looks like to the client: pooled connections die mid-transaction, new ones are
refused). SQLite is a file inside the process and cannot become unreachable this way, so the
test runs on PostgreSQL only (``TIERLINE_TEST_POSTGRES_URL``).
"""

from __future__ import annotations

import collections
import concurrent.futures
import json
import threading
import time

import httpx
from sqlalchemy import func, select

from tierline.serving.app import create_app
from tierline.serving.channels.whatsapp.payload import recipient_of
from tierline.serving.storage.models import InboundMessage
from tests.conftest import LiveServer
from tests.serving.conftest import settings_for
from tests.serving.fakes import APP_SECRET, FakeGraphAPI, envelope, message, sign
from tests.serving.tcp_proxy import proxied

N = 40


def test_database_outage_answers_503_and_recovers_by_itself(analyzer, database_url):
    proxy, via_proxy = proxied(database_url)
    graph = FakeGraphAPI()
    # Short leases: work cut off mid-transaction is retried within seconds, not a minute.
    app = create_app(settings_for(via_proxy, graph.url, job_lease_seconds=2.0,
                                  sending_lease_seconds=4.0), analyzer=analyzer)
    customers = [f"4477009{60000 + n:05d}" for n in range(N)]
    acknowledged: set[str] = set()
    answers: collections.Counter = collections.Counter()
    slowest = 0.0
    lock = threading.Lock()
    with LiveServer(app) as server:
        url = f"{server.url}/webhooks/whatsapp"
        graph.status_target = (url, APP_SECRET)  # Meta's "sent" statuses reconcile cut-off sends

        def deliver(customer: str) -> None:
            """Meta's behaviour: redeliver until a 2xx."""
            nonlocal slowest
            raw = json.dumps(envelope([message(text="hello", wamid=f"wamid.outage.{customer}",
                                               customer=customer)], customer=customer)).encode()
            while True:
                t0 = time.monotonic()
                try:
                    status = httpx.post(url, content=raw, timeout=30, headers={
                        "x-hub-signature-256": sign(raw), "content-type": "application/json"}).status_code
                except httpx.HTTPError:
                    status = 0
                with lock:
                    answers[status] += 1
                    slowest = max(slowest, time.monotonic() - t0)
                    if status == 200:
                        acknowledged.add(customer)
                if status == 200:
                    return
                time.sleep(0.1)

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            futures = [pool.submit(deliver, c) for c in customers]
            while len(acknowledged) < N // 4:
                time.sleep(0.01)
            proxy.cut()
            cut_at = len(acknowledged)
            time.sleep(0.5)
            during = httpx.get(f"{server.url}/readyz", timeout=15)
            time.sleep(1.5)  # the worker and the sender run into the outage too
            proxy.restore()
            for f in futures:
                f.result(timeout=60)
        deadline = time.monotonic() + 60
        while {m["to"] for m in graph.received} < set(customers) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(5)  # past the sending lease: an unconfirmed send would have been repeated
        after = httpx.get(f"{server.url}/readyz", timeout=15)
        with app.state.services.db.session() as s:
            stored = set(map(recipient_of, s.scalars(select(InboundMessage.conversation_id).where(
                InboundMessage.wamid.like("wamid.outage.%"))).all()))
            assert s.scalar(select(func.count()).select_from(InboundMessage).where(
                InboundMessage.wamid.like("wamid.outage.%"))) == N
    graph.close()
    proxy.cut()
    replies = collections.Counter(m["to"] for m in graph.received)
    assert cut_at < N, "the outage came after the load"
    assert answers[503] > 0, answers  # refused while the database was away, so Meta retried
    assert set(answers) <= {200, 503}, answers  # never a 500, never a dropped connection
    # Bounded (typically 0.2 s on this machine; the bound leaves room for a loaded CI box).
    assert slowest < 20, f"a webhook answer took {slowest:.1f}s during the outage: {answers}"
    assert during.status_code == 503 and during.json()["checks"]["database"] == "unreachable"
    assert after.status_code == 200
    assert acknowledged == stored == set(customers)  # nothing acknowledged that was not stored
    assert [c for c in customers if replies[c] != 1] == [], replies  # each answered exactly once
    print(f"outage after {cut_at}/{N} acknowledged: {answers[503]} answers 503 (slowest {slowest:.2f}s), "
          f"{answers[200]} 200; {len(graph.received)} replies, 0 lost, 0 duplicated")
