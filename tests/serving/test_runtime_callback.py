"""A bot runtime's conversation end to end over real HTTP: ``/v1/decide`` escalates, an agent
claims, replies and resolves, and each step reaches the runtime as a signed callback (the
notify outbox, target ``runtime``); the runtime's next ``/v1/decide`` with the customer's
score records it. A runtime outage delays the events but loses none, delivers each key once
and keeps a conversation's events in order.

The runtime is a fake peer on 127.0.0.1 that honours ``Idempotency-Key``
(``tests/serving/fakes.py``); SQLite and PostgreSQL. Without a callback configured, replies
are ``not_sent`` as before (``test_agents_api.py``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import select

from tierline.nlu.flow import load_flow
from tierline.serving.notify.notify import verify
from tierline.serving.notify.runtime import RUNTIME, enqueue_runtime_event
from tierline.serving.storage.models import PeerDelivery, Ticket
from tierline.serving.tickets import create_agent
from tests.serving.conftest import FAST_NOTIFY, Service, serve
from tests.serving.fakes import IdempotentPeer

SECRET = "rt-callback-secret-7f3e"
FLOW = load_flow()


@pytest.fixture(scope="module")
def runtime(database_url) -> Iterator[IdempotentPeer]:
    """The bot runtime's callback endpoint (fresh per database: keys restart with the ids)."""
    peer = IdempotentPeer()
    yield peer
    peer.close()


@pytest.fixture(scope="module")
def service(analyzer, database_url, runtime) -> Iterator[Service]:
    with serve(analyzer, database_url, **FAST_NOTIFY, notify_retry_max_seconds=0.2,
               runtime_callback_url=f"{runtime.url}/tierline/events",
               runtime_callback_secret=SECRET) as running:
        yield running


@pytest.fixture(scope="module")
def agent(service) -> dict:
    return {"authorization": f"Bearer {create_agent(service.services.db, 'Gina', [], admin=True)}"}


def decide(service: Service, conversation: str, text: str, customer: str) -> dict:
    r = httpx.post(f"{service.url}/v1/decide", headers=service.api_headers(), timeout=10, json={
        "conversation_id": conversation, "customer": {"id": customer}, "text": text,
        "at": "2026-11-24T11:00:00+01:00"})
    assert r.status_code == 200, r.text
    return r.json()


def act(service: Service, agent: dict, ticket_id: int, action: str, **body) -> dict:
    r = httpx.post(f"{service.url}/v1/agent/tickets/{ticket_id}/{action}", headers=agent,
                   timeout=10, **({"json": body} if body else {}))
    assert r.status_code == 200, r.text
    return r.json()


def ticket_id_of(service: Service, conversation: str) -> int:
    with service.services.db.session() as s:
        return s.scalars(select(Ticket.id).where(Ticket.conversation_id == f"api:{conversation}")).one()


def events_of(runtime: IdempotentPeer, conversation: str, n: int, timeout: float = 10.0) -> list[dict]:
    """The first ``n`` events the runtime accepted for ``conversation`` (in acceptance order),
    each checked: signed with the secret, named, keyed, and free of the customer's id."""
    deadline = time.monotonic() + timeout
    while True:
        with runtime.lock:
            accepted = list(runtime.accepted.values())
        mine = [r for r in accepted if json.loads(r["body"])["conversation_id"] == conversation]
        if len(mine) >= n:
            break
        assert time.monotonic() < deadline, f"{len(mine)} of {n} events for {conversation}"
        time.sleep(0.03)
    events = []
    for request in mine[:n]:
        headers, event = request["headers"], json.loads(request["body"])
        assert request["path"] == "/tierline/events"
        assert verify(request["body"], SECRET, headers["x-tierline-signature-256"])
        assert not verify(request["body"], "another-secret", headers["x-tierline-signature-256"])
        assert headers["x-tierline-event"] == f"conversation.{event['kind']}"
        assert headers["x-tierline-delivery"] == headers["idempotency-key"] == event["event_id"]
        events.append(event)
    return events


@pytest.mark.parametrize("language, opener, customer", [
    ("en", "I want to talk to a human agent please", "447700900931"),
    ("it", "buongiorno, mi avete addebitato due volte, voglio un operatore", "447700900932"),
], ids=["en", "it"])
def test_the_runtime_hears_the_agent_and_the_hand_back_and_its_score_is_recorded(
        service, runtime, agent, language, opener, customer):
    conversation = f"shop:rt-{language}"
    out = decide(service, conversation, opener, customer)
    assert out["escalate"] and out["language"] == language and out["csat"] is None
    ticket_id = ticket_id_of(service, conversation)

    act(service, agent, ticket_id, "claim")
    [joined] = events_of(runtime, conversation, 1)
    assert (joined["kind"], joined["seq"], joined["ticket_id"]) == ("agent_joined", 1, ticket_id)
    assert joined["text"] == FLOW.text("agent_joined", language)
    assert joined["agent"] == "Gina" and joined["language"] == language

    reply = "Ciao, sono Gina." if language == "it" else "Hi, Gina here."
    assert act(service, agent, ticket_id, "reply", text=reply) == {"outbound_id": None,
                                                                   "sent_as": "callback"}
    said = events_of(runtime, conversation, 2)[1]
    assert (said["kind"], said["seq"], said["text"], said["agent"]) == ("agent_reply", 2, reply, "Gina")

    act(service, agent, ticket_id, "resolve")
    back = events_of(runtime, conversation, 3)[2]
    assert (back["kind"], back["seq"]) == ("handed_back", 3)
    assert back["text"] == FLOW.text("csat_question", language)
    assert back["choices_title"] == FLOW.text("csat_button", language)
    assert [c["id"] for c in back["choices"]] == ["csat_5", "csat_4", "csat_3", "csat_2", "csat_1"]
    bodies = [r["body"].decode() for r in runtime.posts()]
    assert not any(customer in body for body in bodies)  # the runtime knows the conversation by id

    # The runtime asks; the customer's "5" comes back through /v1/decide and is recorded.
    thanked = decide(service, conversation, "5", customer)
    assert thanked["csat"] == 5 and thanked["reply"] == FLOW.text("csat_thanks", language)
    assert not thanked["escalate"] and thanked["state"]["step"] != "with_agent"
    with service.services.db.session() as s:
        assert s.get(Ticket, ticket_id).csat == 5
    # The question is answered once: the next message is the bot's turn again.
    assert decide(service, conversation, "4", customer)["csat"] is None


def test_a_runtime_outage_delays_the_events_in_order_and_each_arrives_once(service, runtime, agent):
    conversation, customer = "shop:rt-outage", "447700900933"
    decide(service, conversation, "I want to talk to a human agent please", customer)
    ticket_id = ticket_id_of(service, conversation)
    duplicates = runtime.duplicates
    runtime.outage = 503
    try:
        act(service, agent, ticket_id, "claim")
        act(service, agent, ticket_id, "reply", text="first")
        act(service, agent, ticket_id, "reply", text="second")
        act(service, agent, ticket_id, "resolve")
        deadline = time.monotonic() + 10
        while True:  # the first event is retried; the later ones wait behind it
            with service.services.db.session() as s:
                rows = s.scalars(select(PeerDelivery).where(PeerDelivery.ticket_id == ticket_id)
                                 .order_by(PeerDelivery.id)).all()
            if len(rows) == 4 and rows[0].attempts >= 3:
                break
            assert time.monotonic() < deadline, [(r.status, r.attempts) for r in rows]
            time.sleep(0.05)
        assert [r.attempts for r in rows[1:]] == [0, 0, 0]
        assert rows[0].last_error == "runtime callback answered HTTP 503"
        # The runtime comes back, but the first answer it gives is lost (the client times out
        # after it acted): the retry carries the same key and is recognised.
        runtime.lose_answers, runtime.slow_seconds = 1, 1.5
    finally:
        runtime.outage = None
    events = events_of(runtime, conversation, 4, timeout=15)
    assert [(e["seq"], e["kind"]) for e in events] == [
        (1, "agent_joined"), (2, "agent_reply"), (3, "agent_reply"), (4, "handed_back")]
    assert [e["text"] for e in events[1:3]] == ["first", "second"]
    # Each key acted on once; the lost answer's retry was recognised, not acted on again.
    assert len({e["event_id"] for e in events}) == 4 and runtime.duplicates == duplicates + 1
    deadline = time.monotonic() + 10
    while True:  # the last answer reached the runtime a moment before its row is recorded
        with service.services.db.session() as s:
            rows = s.scalars(select(PeerDelivery).where(PeerDelivery.ticket_id == ticket_id)).all()
        if {r.status for r in rows} == {"sent"}:
            break
        assert time.monotonic() < deadline, [(r.status, r.attempts) for r in rows]
        time.sleep(0.05)
    assert {r.target for r in rows} == {RUNTIME}


def test_each_message_key_is_queued_once(service, agent):
    conversation = "shop:rt-once"
    decide(service, conversation, "I want to talk to a human agent please", "447700900934")
    ticket_id = ticket_id_of(service, conversation)
    db = service.services.db
    for _ in range(2):
        with db.session() as s:
            queued = enqueue_runtime_event(s, f"api:{conversation}", ticket_id, "agent_reply",
                                           f"agent:{ticket_id}:fixed", "hello", "en")
    assert queued is None  # the second time: already queued
    with db.session() as s:
        [row] = s.scalars(select(PeerDelivery).where(PeerDelivery.ticket_id == ticket_id)).all()
    assert row.idempotency_key == f"runtime:agent:{ticket_id}:fixed" and row.payload["seq"] == 1
