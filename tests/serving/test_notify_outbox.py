"""The notify outbox on its own: rows written with their tickets, drained by
:class:`NotificationSender` over real HTTP to fake peers on 127.0.0.1 that honour
``Idempotency-Key`` as Zendesk does; SQLite and PostgreSQL.

The service end to end (a ticket opened by a customer's message, peer outages, a rolled-back
ticket, the re-export command) is in ``test_ticket_notifications.py``; ``kill -9`` in
``test_notify_crash_recovery.py``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import delete, select

from tierline.serving.notify.notify import SignedWebhookNotifier, SlackNotifier
from tierline.serving.notify.outbox import NotificationSender, enqueue_ticket_notifications
from tierline.serving.storage.models import PeerDelivery, Ticket
from tests.serving.fakes import IdempotentPeer

SECRET = "whsec-outbox-5d4c3b"
CUSTOMER = "447700900555"


def open_tickets(db, n: int, targets: tuple[str, ...]) -> list[int]:
    """``n`` tickets with their deliveries queued, in one transaction as the worker does."""
    with db.session() as s:
        tickets = [Ticket(conversation_id=f"wa:109876543210:{CUSTOMER}", status="open",
                          team="billing", priority="high", priority_rank=0,
                          context={"reasons": ["customer asked for a human agent"],
                                   "p_escalate": 0.9, "intent": "contact_human_agent"})
                   for _ in range(n)]
        s.add_all(tickets)
        s.flush()
        enqueue_ticket_notifications(s, tickets, targets)
        return [t.id for t in tickets]


def rows_of(db, ticket_ids: list[int]) -> list[PeerDelivery]:
    with db.session() as s:
        return list(s.scalars(select(PeerDelivery).where(PeerDelivery.ticket_id.in_(ticket_ids))
                              .order_by(PeerDelivery.id)))


def wait_rows(db, ticket_ids: list[int], done, timeout: float = 15.0) -> list[PeerDelivery]:
    deadline = time.monotonic() + timeout
    while True:
        rows = rows_of(db, ticket_ids)
        if rows and all(done(row) for row in rows):
            return rows
        assert time.monotonic() < deadline, [(r.id, r.status, r.attempts) for r in rows]
        time.sleep(0.05)


@pytest.fixture()
def outbox(db) -> Iterator:
    """Makes started senders on the test's database; stops them (and empties the table)."""
    senders: list[NotificationSender] = []

    def make(notifiers: dict, **kwargs) -> NotificationSender:
        kwargs = {"base_delay": 0.05, "max_delay": 0.2, "lease_seconds": 3.0,
                  "poll_seconds": 0.05, **kwargs}
        sender = NotificationSender(db, notifiers, **kwargs)
        sender.start()
        senders.append(sender)
        return sender

    yield make
    for sender in senders:
        sender.stop(timeout=5)
    with db.session() as s:
        s.execute(delete(PeerDelivery))


@pytest.fixture()
def peer() -> Iterator[IdempotentPeer]:
    fake = IdempotentPeer()
    yield fake
    fake.close()


def test_two_processes_draining_one_outbox_deliver_each_key_once(db, outbox, peer):
    ids = open_tickets(db, 40, ("webhook",))
    for _ in range(2):  # two service processes, each with its own sender
        outbox({"webhook": SignedWebhookNotifier(f"{peer.url}/hook", SECRET, timeout=1.0)})
    accepted = peer.wait_accepted(40)
    rows = wait_rows(db, ids, lambda r: r.status == "sent")
    assert set(accepted) == {f"ticket:{i}:ticket.created:webhook" for i in ids}
    assert len(peer.posts()) == 40 and peer.duplicates == 0  # not even a raw duplicate
    assert all(r.attempts == 1 and r.sent_at is not None for r in rows)


def test_a_lost_answer_is_retried_with_the_same_key_and_accepted_once(db, outbox, peer):
    peer.lose_answers, peer.slow_seconds = 1, 1.5  # acted on, answered after the client gave up
    [ticket_id] = open_tickets(db, 1, ("webhook",))
    outbox({"webhook": SignedWebhookNotifier(f"{peer.url}/hook", SECRET, timeout=0.5)})
    [row] = wait_rows(db, [ticket_id], lambda r: r.status == "sent")
    key = f"ticket:{ticket_id}:ticket.created:webhook"
    posts = peer.posts()
    assert [p["headers"]["x-tierline-delivery"] for p in posts] == [key, key]
    assert list(peer.accepted) == [key] and peer.duplicates == 1 and row.attempts == 2


def test_a_failing_peer_is_retried_until_max_age_then_kept_as_failed(db, outbox, peer, caplog):
    caplog.set_level(logging.WARNING, logger="tierline.serving.notify.outbox")
    peer.outage = 503
    slack_url = f"{peer.url}/services/T0/B0/SECRETPART"
    [ticket_id] = open_tickets(db, 1, ("slack",))
    outbox({"slack": SlackNotifier(slack_url, timeout=1.0)}, max_age_seconds=0.6)
    [row] = wait_rows(db, [ticket_id], lambda r: r.status == "failed")
    assert row.attempts >= 3 and len(peer.posts()) == row.attempts and not peer.accepted
    assert row.last_error.startswith("slack webhook answered HTTP 503 (attempt")
    assert [r.levelname for r in caplog.records].count("ERROR") == 1
    assert "SECRETPART" not in caplog.text + row.last_error
    assert CUSTOMER not in caplog.text + row.last_error and "outage" not in row.last_error


def test_a_4xx_fails_at_once_and_a_429_is_retried(db, outbox, peer):
    peer.outage = 404  # a Slack webhook that was revoked
    [gone] = open_tickets(db, 1, ("slack",))
    outbox({"slack": SlackNotifier(f"{peer.url}/s", timeout=1.0)})
    [row] = wait_rows(db, [gone], lambda r: r.status == "failed")
    assert row.attempts == 1 and "HTTP 404" in row.last_error
    peer.outage = 429
    [slowed] = open_tickets(db, 1, ("slack",))
    wait_rows(db, [slowed], lambda r: r.attempts >= 2)
    peer.outage = None
    [row] = wait_rows(db, [slowed], lambda r: r.status == "sent")
    assert list(peer.accepted) == [f"ticket:{slowed}:ticket.created:slack"]


def test_a_claim_left_by_a_dead_process_is_delivered_after_its_lease(db, outbox, peer):
    ids = open_tickets(db, 3, ("webhook",))
    notifier = SignedWebhookNotifier(f"{peer.url}/hook", SECRET, timeout=0.5)
    dead = NotificationSender(db, {"webhook": notifier}, lease_seconds=1.0)
    assert len(dead.claim_batch("webhook")) == 3  # claimed, then the process "died"
    claimed = time.monotonic()
    outbox({"webhook": notifier}, lease_seconds=1.0)
    peer.wait_accepted(3)
    assert time.monotonic() - claimed >= 1.0  # not before the lease expired
    rows = wait_rows(db, ids, lambda r: r.status == "sent")
    assert [r.attempts for r in rows] == [2, 2, 2] and peer.duplicates == 0
