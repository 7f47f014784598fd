"""Hostile and broken webhook deliveries, one by one, over real HTTP.

Each bad delivery must get its documented status, leave a log line that says why, and never
reach the bot: no inbound message, no job, no outbound reply is created. Good but unusual
deliveries (50,000 characters, emoji and right-to-left text) are stored exactly and answered.

*Replay*: someone (Meta itself, or whoever captured a delivery) sends a signed body again. The
signature covers the body, so a replayed signature is only valid for that very body; the
body's message ids (``wamid``) are unique in the database, so a replay, even many at once, is
acknowledged (Meta must stop retrying) and changes nothing: one message, one job, one reply.
There is no timestamp window: Meta itself redelivers for up to 7 days.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import time

import httpx
import pytest
from sqlalchemy import func, select

from tierline.serving.storage.models import InboundMessage, Job, OutboundMessage
from tests.serving.fakes import APP_SECRET, envelope, message, sign

WEBHOOK_LOGGER = "tierline.serving.api.webhook"


def counts(service) -> tuple[int, int, int]:
    """Rows that would show the delivery reached the bot: inbound messages, jobs, replies."""
    with service.services.db.session() as s:
        return tuple(s.scalar(select(func.count()).select_from(m)) or 0
                     for m in (InboundMessage, Job, OutboundMessage))


def post(service, raw: bytes, signature: str | None = "valid", **headers) -> httpx.Response:
    """POST raw bytes to the webhook; signed with the app secret unless told otherwise."""
    if signature == "valid":
        headers["x-hub-signature-256"] = sign(raw, APP_SECRET)
    elif signature is not None:
        headers["x-hub-signature-256"] = signature
    return httpx.post(f"{service.url}/webhooks/whatsapp", content=raw, timeout=30,
                      headers={"content-type": "application/json", **headers})


def body_with(message_overrides: dict | None = None, value_overrides: dict | None = None) -> bytes:
    """A well-formed delivery with some fields replaced (``None`` values delete the field)."""
    payload = envelope([message(text="hello")])
    value = payload["entry"][0]["changes"][0]["value"]
    for key, new in (value_overrides or {}).items():
        value.pop(key) if new is None else value.__setitem__(key, new)
    for key, new in (message_overrides or {}).items():
        value["messages"][0].pop(key) if new is None else value["messages"][0].__setitem__(key, new)
    return json.dumps(payload).encode()


VALID_JSON_PREFIX = b'{"object": "whatsapp_business_account", "entry": [{"changes": [{"value": '
REFUSED = {
    # name: (raw body, signature, expected status, words of the log line)
    "malformed JSON": (b'{"object": "whatsapp_business_account", "entry": [', "valid", 400, "not valid JSON"),
    "invalid UTF-8": (VALID_JSON_PREFIX + b'{"messages": [{"text": {"body": "caf\xc3\x28"}}]}}]}]}',
                      "valid", 400, "not valid JSON"),
    "deeply nested JSON": (b'{"a": ' * 100_000 + b"1" + b"}" * 100_000, "valid", 400, "not valid JSON"),
    "not a WhatsApp object": (json.dumps({"object": "page", "entry": []}).encode(), "valid", 422,
                              "unexpected shape"),
    "entry of the wrong type": (json.dumps({"object": "whatsapp_business_account", "entry": 5}).encode(),
                                "valid", 422, "unexpected shape"),
    "entry missing": (json.dumps({"object": "whatsapp_business_account"}).encode(), "valid", 422,
                      "unexpected shape"),
    "messages not a list": (body_with(value_overrides={"messages": 5}), "valid", 422, "unexpected shape"),
    "metadata not an object": (body_with(value_overrides={"metadata": "x"}), "valid", 422, "unexpected shape"),
    "text not an object": (body_with({"text": "hello"}), "valid", 422, "unexpected shape"),
    "interactive not an object": (body_with({"type": "interactive", "interactive": ["x"]}), "valid", 422,
                                  "unexpected shape"),
    "message id missing": (body_with({"id": None}), "valid", 422, "unexpected shape"),
    "message id a number": (body_with({"id": 12345}), "valid", 422, "unexpected shape"),
    "message id too long": (body_with({"id": "wamid." + "x" * 300}), "valid", 422, "unexpected shape"),
    "sender missing": (body_with({"from": None}), "valid", 422, "unexpected shape"),
    "sender an object": (body_with({"from": {"wa_id": "447700900123"}}), "valid", 422, "unexpected shape"),
    "sender too long": (body_with({"from": "4" * 100}), "valid", 422, "unexpected shape"),
    "unsigned": (body_with(), None, 401, "without X-Hub-Signature-256"),
    "forged signature": (body_with(), sign(body_with(), "not-the-app-secret"), 403, "bad signature"),
    "signature of another body": (body_with({"id": "wamid.other-body"}), sign(body_with({"id": "wamid.x"})),
                                  403, "bad signature"),
    "sha1 signature": (body_with(), "sha1=" + "0" * 40, 403, "bad signature"),
    "empty signature": (body_with(), "", 401, "without X-Hub-Signature-256"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_bad_delivery_gets_its_status_a_log_line_and_never_reaches_the_bot(service, caplog, case):
    raw, signature, expected, logged = REFUSED[case]
    before = counts(service)
    with caplog.at_level(logging.WARNING, logger=WEBHOOK_LOGGER):
        r = post(service, raw, signature)
    assert r.status_code == expected, (case, r.status_code, r.text[:300])
    assert set(r.json()) == {"detail"} and APP_SECRET not in r.text
    assert any(logged in rec.getMessage() for rec in caplog.records
               if rec.name == WEBHOOK_LOGGER), [rec.getMessage() for rec in caplog.records]
    time.sleep(0.05)  # a job would be claimed within a poll (10 ms)
    assert counts(service) == before, f"{case} reached the bot"


def test_bodies_over_the_limit_are_413_declared_or_streamed(service, caplog):
    limit = service.app.state.settings.max_body_bytes
    before = counts(service)
    declared = b"{" + b" " * limit + b"}"
    with caplog.at_level(logging.WARNING, logger="tierline.serving.body_limit"):  # every route's limit
        assert post(service, declared).status_code == 413

        def chunks():  # no content-length: chunked transfer, cut off once over the limit
            for _ in range(limit // 65536 + 2):
                yield b" " * 65536

        r = httpx.post(f"{service.url}/webhooks/whatsapp", content=chunks(), timeout=30,
                       headers={"x-hub-signature-256": "sha256=" + "0" * 64})
    assert r.status_code == 413 and r.json()["detail"].startswith("body larger than")
    assert sum("bytes refused" in rec.getMessage() for rec in caplog.records) == 2
    assert counts(service) == before


def test_messages_for_another_phone_number_id_are_ignored_and_logged(service, caplog):
    before = counts(service)
    raw = json.dumps(envelope([message(text="hi", wamid="wamid.wrong-number")],
                              phone_number_id="555000111")).encode()
    with caplog.at_level(logging.WARNING):
        r = post(service, raw)
    assert r.status_code == 200 and r.json() == {"stored": 0, "duplicates": 0, "ignored": 1,
                                                 "statuses": 0}
    assert any("another phone_number_id" in rec.getMessage() for rec in caplog.records)
    time.sleep(0.05)
    assert counts(service) == before


def stored_text(service, wamid: str) -> str:
    with service.services.db.session() as s:
        return s.scalars(select(InboundMessage.text).where(InboundMessage.wamid == wamid)).one()


@pytest.mark.parametrize("name, text, stored", [
    ("50k characters", ("where is my order? " * 2700)[:50_000], None),
    ("emoji", "👍🏽 where is my order 👨‍👩‍👧‍👦🇮🇹 ?!", None),
    ("right to left", "\u202eأين طلبي؟ "
                      "\u05d0\u05d9\u05e4\u05d4 \u05d4\u05d4\u05d6\u05de\u05e0\u05d4 \u05e9\u05dc\u05d9", None),
    # PostgreSQL text cannot hold NUL: both databases store U+FFFD (it used to be a 503 forever).
    ("NUL character", "where\x00is my order", "where\ufffdis my order"),
])
def test_unusual_but_valid_text_is_stored_exactly_and_answered(service, name, text, stored):
    customer = f"4477009{abs(hash(name)) % 100000:05d}"
    wamid = f"wamid.unusual.{abs(hash(name))}"
    raw = json.dumps(envelope([message(text=text, wamid=wamid, customer=customer)],
                              customer=customer), ensure_ascii=False).encode()
    r = post(service, raw)
    assert r.status_code == 200 and r.json()["stored"] == 1
    assert stored_text(service, wamid) == (stored or text)
    [reply] = service.graph.wait_to(customer, 1)
    assert reply["to"] == customer


def test_a_replayed_signed_delivery_is_acknowledged_and_answered_once(service):
    customer = "447700900777"
    raw = json.dumps(envelope([message(text="hello", wamid="wamid.replayed", customer=customer)],
                              customer=customer)).encode()
    signature = sign(raw)
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda _: post(service, raw, signature).json(), range(32)))
    assert sum(a["stored"] for a in answers) == 1
    assert sum(a["duplicates"] for a in answers) == 31
    service.graph.wait_to(customer, 1)
    time.sleep(0.3)
    assert len(service.graph.wait_to(customer, 1)) == 1
    with service.services.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Job).join(
            InboundMessage, Job.inbound_id == InboundMessage.id).where(
            InboundMessage.wamid == "wamid.replayed")) == 1
