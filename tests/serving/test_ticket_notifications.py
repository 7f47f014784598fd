"""A new ticket notifies agents (Slack-style and signed webhook) and lands in Zendesk, once per
target, through the notify outbox: without delaying the customer's reply, through a peer
outage, never for a ticket whose transaction rolled back; ``tierline zendesk
reexport-missing`` exports the tickets Zendesk lacks.

The service runs in process on a real port, with a fake Graph API and fake peers that honour
``Idempotency-Key`` as Zendesk does (``tests/serving/fakes.py``), on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select, text

from tierline.serving.notify.notify import verify
from tierline.serving.storage.models import Job, PeerDelivery, Ticket
from tests.serving.conftest import FAST_NOTIFY, Service, process_env, serve
from tests.serving.fakes import IdempotentPeer, message

TARGETS = ("slack", "webhook", "zendesk")
HOOK_SECRET = "hook-secret"


class Peers:
    """Slack, the signed-webhook receiver and Zendesk."""

    def __init__(self) -> None:
        self.slack, self.hook, self.zendesk = IdempotentPeer(), IdempotentPeer(), IdempotentPeer(True)
        self.all = {"slack": self.slack, "webhook": self.hook, "zendesk": self.zendesk}

    def settings(self) -> dict:
        return dict(notify_slack_url=f"{self.slack.url}/services/T0/B0/x",
                    notify_webhook_url=f"{self.hook.url}/hook", notify_webhook_secret=HOOK_SECRET,
                    zendesk_base_url=self.zendesk.url, zendesk_email="ops@example.com",
                    zendesk_api_token="zd-token")

    def accepted(self, ticket_id: int) -> dict[str, dict]:
        """The request each target accepted for ``ticket_id`` (by target)."""
        return {target: peer.accepted[key(ticket_id, target)] for target, peer in self.all.items()
                if key(ticket_id, target) in peer.accepted}

    def wait(self, ticket_id: int, timeout: float = 20.0) -> dict[str, dict]:
        deadline = time.monotonic() + timeout
        while len(found := self.accepted(ticket_id)) < len(TARGETS):
            assert time.monotonic() < deadline, f"ticket {ticket_id}: only {sorted(found)} arrived"
            time.sleep(0.05)
        return found

    def posts_for(self, ticket_id: int) -> int:
        """Raw POSTs that carried one of ``ticket_id``'s keys, at every peer."""
        keys = {key(ticket_id, target) for target in TARGETS}
        return sum(p["headers"].get("idempotency-key") in keys
                   for peer in self.all.values() for p in peer.posts())


def key(ticket_id: int, target: str) -> str:
    return f"ticket:{ticket_id}:ticket.created:{target}"


@pytest.fixture(scope="module")
def peers(database_url) -> Iterator[Peers]:
    """Fresh peers per database: ticket ids, and so keys, start again at 1."""
    made = Peers()
    yield made
    for peer in made.all.values():
        peer.close()


@pytest.fixture(scope="module")
def service(analyzer, database_url, peers) -> Iterator[Service]:
    with serve(analyzer, database_url, **peers.settings(), **FAST_NOTIFY,
               notify_retry_max_seconds=0.3, job_max_attempts=3) as running:
        yield running


def deliveries(service: Service, ticket_id: int) -> dict[str, PeerDelivery]:
    with service.services.db.session() as s:
        return {row.target: row for row in s.scalars(select(PeerDelivery).where(
            PeerDelivery.ticket_id == ticket_id))}


def wait_sent(service: Service, ticket_id: int, timeout: float = 10.0) -> dict[str, PeerDelivery]:
    deadline = time.monotonic() + timeout
    while True:
        rows = deliveries(service, ticket_id)
        if len(rows) == len(TARGETS) and all(r.status == "sent" for r in rows.values()):
            return rows
        assert time.monotonic() < deadline, {t: (r.status, r.attempts) for t, r in rows.items()}
        time.sleep(0.05)


def test_new_ticket_reaches_slack_webhook_and_zendesk_once(service, peers):
    customer = "447700900801"
    service.say(message(text="hi", customer=customer))
    service.say(message(text="I want to talk to a human", customer=customer))
    service.graph.wait_to(customer, 2)
    ticket_id = service.wait_ticket(customer)
    got = peers.wait(ticket_id)
    slack, hook, zendesk = got["slack"]["body"].decode(), got["webhook"], got["zendesk"]
    assert "general" in slack and customer not in slack
    assert verify(hook["body"], HOOK_SECRET, hook["headers"]["x-tierline-signature-256"])
    assert hook["headers"]["x-tierline-delivery"] == key(ticket_id, "webhook")
    notice = json.loads(hook["body"])
    assert notice["reasons"][0] == "customer asked for a human agent"
    assert customer not in hook["body"].decode()
    created = json.loads(zendesk["body"])["ticket"]
    assert "I want to talk to a human" in created["comment"]["body"]
    assert created["external_id"] == f"tierline-{ticket_id}"
    rows = wait_sent(service, ticket_id)
    with service.services.db.session() as s:
        external = s.get(Ticket, ticket_id).external_id
    assert external == rows["zendesk"].external_id and external.isdigit()
    assert all(r.attempts == 1 and r.last_error is None for r in rows.values())
    assert peers.posts_for(ticket_id) == 3  # no raw duplicate either


def test_deliveries_survive_a_peer_outage_and_arrive_later(service, peers):
    customer = "447700900802"
    peers.slack.outage, peers.zendesk.outage = 503, 500
    peers.hook.refuse()  # connections refused
    try:
        service.say(message(text="I want to talk to a human", customer=customer))
        service.graph.wait_to(customer, 1)  # the customer's reply does not wait for the peers
        ticket_id = service.wait_ticket(customer)
        deadline = time.monotonic() + 10
        while True:  # every target tried twice at least, and failed
            rows = deliveries(service, ticket_id)
            if all(r.attempts >= 2 and r.last_error for r in rows.values()):
                break
            assert time.monotonic() < deadline, {t: r.attempts for t, r in rows.items()}
            time.sleep(0.05)
        assert len(rows) == 3 and not peers.accepted(ticket_id)
        errors = {t: r.last_error for t, r in rows.items()}
        assert "HTTP 503" in errors["slack"] and "ConnectError" in errors["webhook"]
        assert "HTTP 500" in errors["zendesk"]
        assert not any(customer in e or "zd-token" in e or "outage" in e for e in errors.values())
    finally:
        peers.slack.outage = peers.zendesk.outage = None
        peers.hook.listen_again()
    peers.wait(ticket_id)
    rows = wait_sent(service, ticket_id)
    assert all(r.attempts >= 2 for r in rows.values())
    assert len(peers.accepted(ticket_id)) == 3 and service.graph.wait_to(customer, 1)


def test_a_rolled_back_ticket_sends_nothing(service, peers, database_url):
    """The database refuses the turn's transaction after the ticket and its notifications were
    written (a trigger fails the job's ``done``): none of them may reach a peer. Once the
    database takes it again, the retried turn opens one ticket, notified once per target."""
    customer = "447700900803"
    engine = service.services.db.engine
    rows_before = count_rows(service)
    with engine.begin() as connection:
        for statement in FAIL_DONE[engine.dialect.name]:
            connection.execute(text(statement))
    try:
        service.say(message(text="I want to talk to a human", customer=customer))
        deadline = time.monotonic() + 10
        while True:  # the turn ran and its transaction was rolled back
            with service.services.db.session() as s:
                job = s.scalars(select(Job).where(Job.last_error.is_not(None))
                                .order_by(Job.id.desc())).first()
            if job is not None and "refused" in job.last_error:
                break
            assert time.monotonic() < deadline, "the turn was not tried"
            time.sleep(0.05)
        posts_before = sum(len(peer.posts()) for peer in peers.all.values())
        time.sleep(0.5)  # ample for a delivery (polls every 0.05 s)
        with service.services.db.session() as s:
            assert s.scalars(select(Ticket).where(Ticket.conversation_id.endswith(customer))).all() == []
        assert count_rows(service) == rows_before
        assert sum(len(peer.posts()) for peer in peers.all.values()) == posts_before
    finally:
        with engine.begin() as connection:
            for statement in UNDO_FAIL_DONE[engine.dialect.name]:
                connection.execute(text(statement))
    ticket_id = service.wait_ticket(customer)  # the job's retry (2 s backoff) commits
    peers.wait(ticket_id)
    assert peers.posts_for(ticket_id) == 3


def count_rows(service: Service) -> int:
    with service.services.db.session() as s:
        return s.scalar(select(func.count()).select_from(PeerDelivery))


FAIL_DONE = {
    "sqlite": ["CREATE TRIGGER refuse_done BEFORE UPDATE OF status ON jobs "
               "WHEN NEW.status = 'done' BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"],
    "postgresql": ["CREATE FUNCTION refuse_done() RETURNS trigger LANGUAGE plpgsql AS "
                   "$$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$",
                   "CREATE TRIGGER refuse_done BEFORE UPDATE OF status ON jobs FOR EACH ROW "
                   "WHEN (NEW.status = 'done') EXECUTE FUNCTION refuse_done()"],
}
UNDO_FAIL_DONE = {
    "sqlite": ["DROP TRIGGER refuse_done"],
    "postgresql": ["DROP TRIGGER refuse_done ON jobs", "DROP FUNCTION refuse_done()"],
}


def test_reexport_missing_exports_the_tickets_zendesk_lacks(service, peers, database_url):
    """A ticket whose export failed for good (Zendesk refused it: 422) and one opened before
    Zendesk was configured (no row at all) are exported by the command, once each."""
    refused, earlier = "447700900804", "447700900805"
    peers.zendesk.outage = 422
    try:
        service.say(message(text="I want to talk to a human", customer=refused))
        failed_id = service.wait_ticket(refused)
        deadline = time.monotonic() + 10
        while deliveries(service, failed_id).get("zendesk", PeerDelivery()).status != "failed":
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        peers.zendesk.outage = None
    with service.services.db.session() as s:
        old = Ticket(conversation_id=f"wa:109876543210:{earlier}", status="open", team="general",
                     priority="normal", priority_rank=1, context={"reasons": [], "intent": "x"})
        s.add(old)
    exported = len(peers.zendesk.accepted)
    done = subprocess.run(
        [sys.executable, "-m", "tierline", "zendesk", "reexport-missing"],
        env=process_env(database_url, service.graph.url, TIERLINE_ZENDESK_BASE_URL=peers.zendesk.url,
                        TIERLINE_ZENDESK_EMAIL="ops@example.com",
                        TIERLINE_ZENDESK_API_TOKEN="zd-token"),
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "2 ticket export(s) queued for Zendesk"
    peers.zendesk.wait_accepted(exported + 2)
    for ticket_id in (failed_id, old.id):
        deadline = time.monotonic() + 10
        while (row := deliveries(service, ticket_id)["zendesk"]).status != "sent":
            assert time.monotonic() < deadline, (row.status, row.attempts)
            time.sleep(0.05)
        with service.services.db.session() as s:
            assert s.get(Ticket, ticket_id).external_id == row.external_id is not None
        assert key(ticket_id, "zendesk") in peers.zendesk.accepted
