"""The WhatsApp webhook over real HTTP: handshake, signatures, bad input, every message type,
duplicates, statuses, retries against a failing Graph API, and crash recovery."""

from __future__ import annotations

import concurrent.futures
import json
import time

import httpx
import pytest
from sqlalchemy import func, select

from tierline.serving.storage.models import InboundMessage, Job, OutboundMessage, Ticket
from tests.serving.fakes import (
    PHONE_NUMBER_ID,
    VERIFY_TOKEN,
    envelope,
    message,
    sign,
    status,
)


def count(service, model, *where) -> int:
    with service.services.db.session() as s:
        return s.scalar(select(func.count()).select_from(model).where(*where)) or 0


def new_customer(n: int) -> str:
    return f"44770090{n:04d}"


def test_verification_handshake(service):
    ok = httpx.get(f"{service.url}/webhooks/whatsapp", params={
        "hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1158201444"})
    assert ok.status_code == 200 and ok.text == "1158201444"
    bad = httpx.get(f"{service.url}/webhooks/whatsapp", params={
        "hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "x"})
    assert bad.status_code == 403


def test_unsigned_and_forged_deliveries_are_refused_and_store_nothing(service):
    body = json.dumps(envelope([message(text="hi", wamid="wamid.forged")])).encode()
    unsigned = httpx.post(f"{service.url}/webhooks/whatsapp", content=body)
    forged = httpx.post(f"{service.url}/webhooks/whatsapp", content=body,
                        headers={"x-hub-signature-256": sign(body, "not-the-secret")})
    assert unsigned.status_code == 401 and forged.status_code == 403
    assert "test-app-secret" not in forged.text
    assert count(service, InboundMessage, InboundMessage.wamid == "wamid.forged") == 0


def test_bad_bodies_get_clear_statuses(service):
    too_big = b"{" + b" " * (1_048_576 + 10) + b"}"
    r = httpx.post(f"{service.url}/webhooks/whatsapp", content=too_big,
                   headers={"x-hub-signature-256": sign(too_big)})
    assert r.status_code == 413
    for raw, expected in ((b'{"object": ', 400), (b"\xff\xfe", 400),
                          (json.dumps({"object": "page"}).encode(), 422),
                          (json.dumps({"object": "whatsapp_business_account", "entry": 5}).encode(), 422),
                          (b"[" * 5000 + b"]" * 5000, 422)):
        r = httpx.post(f"{service.url}/webhooks/whatsapp", content=raw,
                       headers={"x-hub-signature-256": sign(raw)})
        assert r.status_code in (expected, 400), (raw[:20], r.status_code, r.text)


def test_conversation_from_hi_through_menu_and_order_status(service):
    service.say(message(text="hi", customer=new_customer(1)))
    [welcome] = service.graph.wait_to(new_customer(1), 1)
    assert welcome["to"] == new_customer(1) and welcome["type"] == "interactive"
    assert [b["reply"]["id"] for b in welcome["interactive"]["action"]["buttons"]] == \
        ["menu_order", "menu_faq", "menu_agent"]
    assert welcome["_path"] == f"/{PHONE_NUMBER_ID}/messages"
    service.say(message("button_reply", text="Order status", button_id="menu_order",
                        customer=new_customer(1)))
    service.say(message(text="ND-100000", customer=new_customer(1)))
    texts = service.graph.wait_to(new_customer(1), 3)
    assert "order number" in texts[1]["text"]["body"]
    assert "ND-100000" in texts[2]["text"]["body"]


def test_redelivered_message_is_answered_once(service):
    body = envelope([message(text="hello", wamid="wamid.dup.1", customer=new_customer(2))],
                    customer=new_customer(2))
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda _: service.deliver(body).status_code, range(8)))
    assert codes == [200] * 8
    service.graph.wait_to(new_customer(2), 1)
    time.sleep(0.5)
    assert len(service.graph.wait_to(new_customer(2), 1)) == 1
    assert count(service, InboundMessage, InboundMessage.wamid == "wamid.dup.1") == 1
    assert count(service, OutboundMessage, OutboundMessage.idempotency_key.like("reply:wamid.dup.1:%")) == 1


def test_redelivered_escalation_opens_one_ticket(service):
    body = envelope([message(text="agent please", wamid="wamid.dup.agent", customer=new_customer(9))],
                    customer=new_customer(9))
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        assert set(pool.map(lambda _: service.deliver(body).status_code, range(6))) == {200}
    conv = f"wa:{PHONE_NUMBER_ID}:{new_customer(9)}"
    deadline = time.monotonic() + 10
    while count(service, Ticket, Ticket.conversation_id == conv) == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    assert count(service, Ticket, Ticket.conversation_id == conv) == 1


@pytest.mark.parametrize("kind", ["image", "audio", "video", "document", "location", "sticker",
                                  "unsupported"])
def test_media_and_unknown_types_get_a_polite_text_request(service, kind):
    customer = new_customer(100 + ["image", "audio", "video", "document", "location",
                                   "sticker", "unsupported"].index(kind))
    service.say(message(kind, customer=customer))
    [reply] = service.graph.wait_to(customer, 1)
    assert reply["to"] == customer and "type your question" in reply["text"]["body"]


def test_reactions_are_recorded_without_a_reply(service):
    before_jobs = count(service, Job, Job.status == "done")
    service.say(message("reaction", customer=new_customer(3)))
    deadline = time.monotonic() + 10
    while count(service, Job, Job.status == "done") == before_jobs and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    assert not [m for m in service.graph.received if m["to"] == new_customer(3)]


def test_menu_button_and_template_button_escalate(service):
    service.say(message("button_reply", text="Talk to an agent", button_id="menu_agent",
                        customer=new_customer(4)))
    service.say(message("button", text="Talk to an agent", payload="menu_agent",
                        customer=new_customer(5)))
    deadline = time.monotonic() + 10
    convs = [f"wa:{PHONE_NUMBER_ID}:{new_customer(n)}" for n in (4, 5)]
    while count(service, Ticket, Ticket.conversation_id.in_(convs)) < 2 and \
            time.monotonic() < deadline:
        time.sleep(0.05)
    for n in (4, 5):
        assert count(service, Ticket, Ticket.conversation_id == f"wa:{PHONE_NUMBER_ID}:{new_customer(n)}") == 1


def test_statuses_update_outbound_messages(service):
    service.say(message(text="hello", customer=new_customer(6)))
    service.graph.wait_to(new_customer(6), 1)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with service.services.db.session() as s:
            row = s.scalars(select(OutboundMessage).where(
                OutboundMessage.to == new_customer(6))).first()
            if row is not None and row.wamid:
                break
        time.sleep(0.05)
    service.deliver(envelope(statuses=[status(row.wamid, "delivered")]))
    service.deliver(envelope(statuses=[status(row.wamid, "read")]))
    service.deliver(envelope(statuses=[status(row.wamid, "delivered")]))  # late, out of order
    with service.services.db.session() as s:
        assert s.get(OutboundMessage, row.id).status == "read"


def test_messages_for_another_number_are_ignored(service):
    r = service.deliver(envelope([message(text="hi", wamid="wamid.other")], phone_number_id="999"))
    assert r.status_code == 200 and r.json()["ignored"] == 1
    assert count(service, InboundMessage, InboundMessage.wamid == "wamid.other") == 0


def wait_outbox_idle(service, timeout: float = 20.0) -> None:
    """No message pending or in flight (so scripted failures hit the next message only)."""
    deadline = time.monotonic() + timeout
    while count(service, OutboundMessage, OutboundMessage.status.in_(("pending", "sending"))) and \
            time.monotonic() < deadline:
        time.sleep(0.05)


def test_graph_api_failures_are_retried_and_delivered_once(service):
    wait_outbox_idle(service)
    service.graph.script = [500, 503, ("meta", 400, 130429), 429]
    attempts_before = service.graph.attempts
    service.say(message(text="hello", customer=new_customer(7)))
    [reply] = service.graph.wait_to(new_customer(7), 1)
    time.sleep(0.5)
    assert len(service.graph.wait_to(new_customer(7), 1)) == 1
    assert service.graph.attempts - attempts_before == 5


def test_a_job_left_running_by_a_crashed_worker_is_picked_up(service):
    from datetime import timedelta

    from tierline.serving.storage.models import utcnow
    worker = service.services.worker
    worker.stop()  # no live worker while we fake the crash
    try:
        service.say(message(text="hello", customer=new_customer(8)))
        [work] = worker.claim_batch()  # claimed as if by a worker that then died
        job_id = work.job_id
        with service.services.db.session() as s:
            s.get(Job, job_id).locked_at = utcnow() - timedelta(hours=1)
    finally:
        worker._stop.clear()
        worker.start()
    [reply] = service.graph.wait_to(new_customer(8), 1)
    with service.services.db.session() as s:
        assert s.get(Job, job_id).status == "done"


def test_database_outage_answers_503_and_recovers(service):
    from tierline.serving.storage.db import Database
    intake = service.services.intake  # what stores deliveries
    real = intake.db
    intake.db = Database("postgresql://nobody@127.0.0.1:1/none")
    try:
        r = service.deliver(envelope([message(text="hi", wamid="wamid.outage")]))
        assert r.status_code == 503
    finally:
        intake.db.dispose()
        intake.db = real
    r = service.deliver(envelope([message(text="hi", wamid="wamid.outage")]))
    assert r.status_code == 200 and r.json()["stored"] == 1
