"""Delivery statuses (sent, delivered, read, failed) applied to the outbound messages they are
about, several deliveries in one batch (on PostgreSQL: two statements for the whole batch).

A status never goes back ("read", then a late "delivered", stays "read"), the furthest status
of a batch wins whatever their order, a row whose wamid was never recorded (the process died
after Meta accepted the send) is found by the idempotency key Meta echoes, a failure keeps its
error, and a status about no message of ours is counted as nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from serving.inbox import store_deliveries
from serving.storage.db import Database
from serving.storage.models import OutboundMessage
from serving.whatsapp.payload import parse_webhook
from tests.serving.fakes import PHONE_NUMBER_ID, envelope, status


@pytest.fixture()
def db(database_url):
    database = Database(database_url)
    database.migrate()
    yield database
    database.dispose()


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
