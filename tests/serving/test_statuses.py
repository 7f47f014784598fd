"""Delivery statuses (sent, delivered, read, failed) applied to the outbound messages they are
about, several deliveries in one batch (on PostgreSQL: two statements for the whole batch).

A status never goes back ("read", then a late "delivered", stays "read"), the furthest status
of a batch wins whatever their order, a row whose wamid was never recorded (the process died
after Meta accepted the send) is found by the idempotency key Meta echoes, a failure keeps its
error, and a status about no message of ours is counted as nothing."""

from __future__ import annotations

import random
import threading
import time

import pytest
from sqlalchemy import select

from tierline.serving.queue.store import store_deliveries
from tierline.serving.queue.sender import Claimed, OutboxSender, SendResult
from tierline.serving.storage.models import OutboundMessage
from tierline.serving.channels.whatsapp.client import GraphClient
from tierline.serving.channels.whatsapp.payload import parse_webhook
from tests.serving.fakes import PHONE_NUMBER_ID, envelope, status


def outbound(key: str, wamid: str | None, state: str) -> OutboundMessage:
    return OutboundMessage(idempotency_key=key, conversation_id=f"conv-{key}", to="447700900001",
                           phone_number_id=PHONE_NUMBER_ID, role="bot", payload={}, status=state,
                           wamid=wamid)


def test_a_batch_of_statuses_moves_each_message_forward_only(db):
    with db.session() as s:
        s.add_all([outbound("st-a", "wamid.st.a", "sent"), outbound("st-b", None, "sending"),
                   outbound("st-c", "wamid.st.c", "read"), outbound("st-d", "wamid.st.d", "sent")])
    failed = status("wamid.st.d", "failed")
    failed["errors"] = [{"code": 131026, "title": "Message undeliverable"}]
    deliveries = [
        parse_webhook(envelope(statuses=[status("wamid.st.a", "delivered"),
                                         status("wamid.st.a", "read"),
                                         status("wamid.st.a", "delivered")])),  # late, out of order
        parse_webhook(envelope(statuses=[status("wamid.st.b", "sent", callback="st-b")])),
        parse_webhook(envelope(statuses=[status("wamid.st.c", "delivered")])),
        parse_webhook(envelope(statuses=[failed])),
        parse_webhook(envelope(statuses=[status("wamid.not.ours", "read")])),
    ]
    results = store_deliveries(db, deliveries, PHONE_NUMBER_ID, lambda c, customer: {})
    assert [r.statuses for r in results] == [3, 1, 1, 1, 0]
    with db.session() as s:
        rows = {r.idempotency_key: r for r in s.scalars(select(OutboundMessage))}
    assert rows["st-a"].status == "read" and rows["st-a"].status_at is not None
    assert (rows["st-b"].wamid, rows["st-b"].status) == ("wamid.st.b", "sent")
    assert rows["st-c"].status == "read"
    assert rows["st-d"].status == "failed" and "131026" in rows["st-d"].last_error
    # The same statuses again (Meta retries): nothing moves back, nothing new is found.
    again = store_deliveries(db, deliveries, PHONE_NUMBER_ID, lambda c, customer: {})
    assert [r.statuses for r in again] == [3, 1, 1, 1, 0]
    with db.session() as s:
        assert {r.idempotency_key: r.status for r in s.scalars(select(OutboundMessage))} == {
            "st-a": "read", "st-b": "sent", "st-c": "read", "st-d": "failed"}


def test_statuses_and_the_senders_record_of_the_same_rows_do_not_deadlock(db):
    # The sender records outcomes with its rows locked in id order; a batch of statuses locks
    # the same rows (some found by wamid, some by the echoed key, their wamid not yet recorded).
    # Locked in two passes or in another order, the two deadlocked: PostgreSQL failed one side
    # after a second (a webhook answered 503). Both run here over and over, at the same time.
    if db.is_sqlite:
        pytest.skip("SQLite has no row locks: its writers take turns on a lock")
    keys = [f"st-lock-{n}" for n in range(16)]
    with db.session() as s:
        rows = [outbound(key, f"wamid.lock.{n}" if n % 2 else None, "sending")
                for n, key in enumerate(keys)]
        s.add_all(rows)
        s.flush()
        ids = [row.id for row in rows]
    sender = OutboxSender(db, GraphClient("http://127.0.0.1:9", "token"))
    claimed = [Claimed(row_id, PHONE_NUMBER_ID, {}, key, 1) for row_id, key in zip(ids, keys)]
    errors: list[Exception] = []
    stop = time.monotonic() + 3.0

    def record() -> None:  # the wamids of the even rows go back to unknown each time
        while time.monotonic() < stop:
            try:
                sender._record([(c, SendResult("sent", wamid=f"wamid.lock.{n}" if n % 2 else None))
                                for n, c in enumerate(claimed)])
            except Exception as exc:  # noqa: BLE001 - what the test looks for
                errors.append(exc)

    def statuses() -> None:
        order = list(range(len(keys)))
        while time.monotonic() < stop:
            random.shuffle(order)
            body = envelope(statuses=[status(f"wamid.lock.{n}", "delivered", callback=keys[n])
                                      for n in order])
            try:
                store_deliveries(db, [parse_webhook(body)], PHONE_NUMBER_ID, lambda c, customer: {})
            except Exception as exc:  # noqa: BLE001
                errors.append(exc)

    threads = [threading.Thread(target=record), threading.Thread(target=statuses)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
