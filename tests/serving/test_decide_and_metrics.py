"""``/v1/decide`` keeps conversation state server-side; ``/metrics`` exposes the counters;
phone numbers never reach the logs."""

from __future__ import annotations

import logging
import time

import httpx

from tierline.serving.logging_setup import MaskPhoneNumbers, mask_phone
from tests.serving.fakes import message


def decide(service, conversation: str, text: str, **extra) -> dict:
    body = {"conversation_id": conversation, "customer": {"id": "cust-1", **extra.pop("customer", {})},
            "text": text, "at": "2026-11-24T11:00:00+01:00", **extra}
    r = httpx.post(f"{service.url}/v1/decide", json=body, timeout=10, headers=service.api_headers())
    assert r.status_code == 200, r.text
    return r.json()


def test_decide_keeps_state_across_calls(service):
    first = decide(service, "c-1", "hi")
    assert not first["escalate"] and first["buttons"][0][0] == "menu_order"
    assert decide(service, "c-1", "1")["state"]["step"] == "awaiting_order_number"
    third = decide(service, "c-1", "ND-100000")
    assert "ND-100000" in third["reply"] and third["state"]["step"] == "menu"


def test_decide_escalates_with_reasons_team_and_priority(service):
    out = decide(service, "c-2", "I was charged twice for my order", customer={"tier": "vip"})
    assert out["escalate"] and out["team"] == "billing" and out["priority"] == "high"
    assert "sensitive topic: payment_issue" in out["reasons"]
    assert 0.0 <= out["p_escalate"] <= 1.0


def test_concurrent_calls_are_batched_and_each_conversation_keeps_every_turn(service):
    """64 calls at once on 8 conversations (``/v1/decide`` turns them in batches, several
    calls of one conversation in a batch): every call answered, no turn of a conversation
    lost or applied twice, and each conversation's transcript holds each of its messages once."""
    from concurrent.futures import ThreadPoolExecutor

    from sqlalchemy import select

    from tierline.serving.storage.models import DecisionRow, MessageLog

    decider = service.services.decider
    sizes: list[int] = []
    process = decider.process
    decider.process = lambda calls: (sizes.append(len(calls)), process(calls))[1]
    try:
        calls = [(f"burst-{i % 8}", f"message {i // 8} of {i % 8}") for i in range(64)]
        with ThreadPoolExecutor(32) as pool:
            outs = list(pool.map(lambda c: decide(service, c[0], c[1]), calls))
    finally:
        decider.process = process
    assert max(sizes) > 1  # calls shared batches
    final_turns = {}
    for (conversation, _), out in zip(calls, outs):
        final_turns[conversation] = max(final_turns.get(conversation, 0), out["state"]["turns"])
    assert final_turns == {f"burst-{k}": 8 for k in range(8)}
    with service.services.db.session() as s:
        for k in range(8):
            said = s.scalars(select(MessageLog.text).where(
                MessageLog.conversation_id == f"api:burst-{k}", MessageLog.role == "customer")
                .order_by(MessageLog.id)).all()
            assert sorted(said) == sorted(f"message {n} of {k}" for n in range(8))
            assert len(s.scalars(select(DecisionRow.id).where(
                DecisionRow.conversation_id == f"api:burst-{k}")).all()) == 8


def test_decide_rejects_bad_input(service):
    for body in ({"conversation_id": "x", "text": "hi"}, {"conversation_id": "", "customer": {"id": "a"}, "text": "hi"},
                 {"conversation_id": "x", "customer": {"id": "a"}, "text": "a" * 50_001}):
        assert httpx.post(f"{service.url}/v1/decide", json=body,
                          headers=service.api_headers()).status_code == 422


def test_metrics_count_messages_and_escalations(service):
    service.say(message(text="agent", customer="447700900601"))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        text = httpx.get(f"{service.url}/metrics").text
        if "tierline_escalations_total{" in text:
            break
        time.sleep(0.05)
    assert "tierline_messages_in_total" in text
    assert 'tierline_escalations_total{reason="asked_for_human",team="general"}' in text
    assert "tierline_queue_depth" in text and "tierline_webhook_seconds_bucket" in text
    assert "447700900601" not in text


def test_phone_numbers_are_masked_in_logs(caplog):
    assert mask_phone("from +447700900123 and 393331234567") == "from +4477******** and 39333*******"
    logger = logging.getLogger("tierline.test")
    handler_filter = MaskPhoneNumbers()
    record = logger.makeRecord("tierline.test", logging.INFO, __file__, 1,
                               "message from %s", ("447700900123",), None)
    handler_filter.filter(record)
    assert record.getMessage() == "message from 44770*******"


def test_concurrent_analyze_requests_are_micro_batched(service):
    import concurrent.futures

    batcher = service.services.batcher
    batches, requests = batcher.batches, batcher.requests
    clear = {"where is my order": "track_order", "I want a refund": "get_refund",
             "I forgot my password": "recover_password", "hello there": "greeting"}
    texts = list(clear) * 12
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        results = list(pool.map(lambda t: httpx.post(
            f"{service.url}/v1/analyze", json={"texts": [t]}, timeout=30,
            headers=service.api_headers()).json(), texts))
    assert [r["results"][0]["intent"] for r in results] == [clear[t] for t in texts]
    served = batcher.requests - requests
    assert served == 48 and batcher.batches - batches < served  # some calls shared a model run


def test_json_log_lines_are_masked():
    import json as _json

    from tierline.serving.logging_setup import JsonFormatter
    record = logging.getLogger("t").makeRecord("t", logging.WARNING, __file__, 1,
                                              "reply to %s failed", ("+447700900123",), None)
    MaskPhoneNumbers().filter(record)
    line = _json.loads(JsonFormatter().format(record))
    assert line["message"] == "reply to +4477******** failed" and line["level"] == "WARNING"


def test_tracebacks_in_logs_are_masked_too():
    import io

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(MaskPhoneNumbers())
    logger = logging.getLogger("tierline.mask-test")
    logger.addHandler(handler)
    try:
        try:
            raise ValueError("INSERT ... VALUES ('447700900123', 'hello')")
        except ValueError:
            logger.exception("job %s failed for %s", 7, "+447700900123")
    finally:
        logger.removeHandler(handler)
    output = stream.getvalue()
    assert "447700900123" not in output and "44770*******" in output and "ValueError" in output


def test_decide_routes_an_italian_conversation_to_the_multilingual_pair(service):
    asked = decide(service, "c-it", "voglio parlare con un operatore")
    engine = service.services.engine
    assert asked["escalate"] and asked["reply"] == engine.flow.text("handoff", "it")
    assert asked["state"]["language"] == "it"
    assert engine.routed is not None and engine.routed.loaded
    english = decide(service, "c-en", "where is my order?")
    assert english["state"]["language"] == "en" and not english["escalate"]
    from tierline.serving.storage.models import DecisionRow

    with service.services.db.session() as s:
        stacks = {d.conversation_id: d.model_stack for d in s.query(DecisionRow).filter(
            DecisionRow.conversation_id.in_(["api:c-it", "api:c-en"]))}
    assert stacks == {"api:c-it": "multilingual", "api:c-en": "default"}
