"""kill -9 with 200 escalations in flight: every notification and export arrives, once per key.

The service runs as a real process (``python -m tierline serve``) with Slack, a signed webhook
and Zendesk configured, all three fake peers on 127.0.0.1 that honour ``Idempotency-Key`` as
Zendesk does (the first request with a key acts, a repeat is answered without acting and
counted as a raw duplicate). 200 customers ask for a human at once; the service is killed
with SIGKILL while their tickets' 600 deliveries are going out, then started again: every
ticket's three deliveries must be accepted exactly once, and the raw duplicates (deliveries
made but not recorded when the process died) stay within one per target.
"""

from __future__ import annotations

import concurrent.futures
import json
import signal
import subprocess
import sys
import time

import httpx
from sqlalchemy import func, select

from tests.net import free_port, wait_ready
from tierline.serving.storage.db import Database
from tierline.serving.storage.models import PeerDelivery, Ticket
from tests.serving.conftest import process_env
from tests.serving.fakes import APP_SECRET, FakeGraphAPI, IdempotentPeer, envelope, message, sign

N = 200
TARGETS = ("slack", "webhook", "zendesk")


def start_service(env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tierline", "serve"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_kill_9_with_escalations_in_flight_delivers_every_notification_once(database_url):
    graph = FakeGraphAPI()
    peers = {"slack": IdempotentPeer(), "webhook": IdempotentPeer(),
             "zendesk": IdempotentPeer(zendesk=True)}
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    graph.status_target = (f"{url}/webhooks/whatsapp", APP_SECRET)
    env = process_env(
        database_url, graph.url, TIERLINE_PORT=str(port), TIERLINE_JOB_LEASE_SECONDS="2",
        TIERLINE_SENDING_LEASE_SECONDS="4", TIERLINE_WHATSAPP_RETRY_BASE_SECONDS="0.05",
        TIERLINE_NOTIFY_SLACK_URL=f"{peers['slack'].url}/services/T0/B0/x",
        TIERLINE_NOTIFY_WEBHOOK_URL=f"{peers['webhook'].url}/hook",
        TIERLINE_NOTIFY_WEBHOOK_SECRET="hook-secret",
        TIERLINE_ZENDESK_BASE_URL=peers["zendesk"].url, TIERLINE_ZENDESK_EMAIL="ops@example.com",
        TIERLINE_ZENDESK_API_TOKEN="zd-token", TIERLINE_NOTIFY_LEASE_SECONDS="2",
        TIERLINE_NOTIFY_TIMEOUT_SECONDS="1", TIERLINE_NOTIFY_POLL_SECONDS="0.1",
        TIERLINE_NOTIFY_RETRY_BASE_SECONDS="0.05", TIERLINE_NOTIFY_RETRY_MAX_SECONDS="0.5")
    proc = start_service(env)
    client = httpx.Client(timeout=10, limits=httpx.Limits(max_connections=8))

    def accepted() -> int:
        return sum(len(peer.accepted) for peer in peers.values())

    def escalate(customer: str) -> None:
        raw = json.dumps(envelope([message(text="I want to talk to a human",
                                           wamid=f"wamid.notify.{customer}", customer=customer)],
                                  customer=customer)).encode()
        while True:  # Meta retries until it gets a 2xx
            try:
                r = client.post(f"{url}/webhooks/whatsapp", content=raw, headers={
                    "x-hub-signature-256": sign(raw), "content-type": "application/json"})
                if r.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)

    db = Database(database_url)
    started = time.monotonic()
    try:
        wait_ready(url, timeout=90)
        ready = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(escalate, f"4477008{n:05d}") for n in range(N)]
            deadline = time.monotonic() + 60
            while accepted() < N // 8:  # 25 of the 600 deliveries made, the rest to come
                assert time.monotonic() < deadline, f"only {accepted()} deliveries arrived"
                time.sleep(0.01)
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            killed, at_kill = time.monotonic(), accepted()
            proc = start_service(env)
            for future in futures:
                future.result(timeout=120)
        acknowledged = time.monotonic()
        deadline = time.monotonic() + 90
        while accepted() < 3 * N:
            assert time.monotonic() < deadline, {t: len(p.accepted) for t, p in peers.items()}
            time.sleep(0.1)
        all_arrived = time.monotonic()
        # A peer has the last deliveries a moment before the service has recorded their
        # outcome (and Zendesk's ticket id): wait for the records, bounded.
        deadline = time.monotonic() + 30
        while True:
            with db.session() as s:
                unrecorded = s.scalar(select(func.count()).select_from(PeerDelivery).where(
                    PeerDelivery.status != "sent"))
            if not unrecorded or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        with db.session() as s:
            tickets = s.scalars(select(Ticket.id)).all()
            external = dict(s.execute(select(Ticket.id, Ticket.external_id)).all())
            statuses = dict(s.execute(select(PeerDelivery.status, func.count())
                                      .group_by(PeerDelivery.status)).all())
            errors = s.execute(select(PeerDelivery.target, PeerDelivery.last_error).where(
                PeerDelivery.status != "sent")).all()
        assert len(tickets) == N, "one ticket per customer"
        assert at_kill < 3 * N, "the kill came after every delivery"
        for target, peer in peers.items():
            assert set(peer.accepted) == {f"ticket:{t}:ticket.created:{target}" for t in tickets}
        assert all(external[t] for t in tickets) and len(set(external.values())) == N
        assert statuses == {"sent": 3 * N}, (statuses, errors)
        duplicates = {target: peer.duplicates for target, peer in peers.items()}
        # Only a delivery made but not yet recorded at the kill is made again: one per target.
        assert sum(duplicates.values()) <= len(TARGETS), duplicates
        print(f"\nready after {ready - started:.1f} s; kill -9 {killed - ready:.1f} s into the load "
              f"with {at_kill}/{3 * N} deliveries accepted; every escalation acknowledged "
              f"{acknowledged - killed:.1f} s after the kill (restart included), all {3 * N} "
              f"deliveries accepted {all_arrived - killed:.1f} s after it, once per key; raw "
              f"duplicates answered by the peers' idempotency: {duplicates}")
    finally:
        client.close()
        proc.kill()
        proc.wait(10)
        db.dispose()
        graph.close()
        for peer in peers.values():
            peer.close()
