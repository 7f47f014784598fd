"""Small holes under hostile or odd input, each over real HTTP: a signed status with
``"errors": 5`` (was a 500), ``Retry-After: 1e12`` (an OverflowError that lost the batch's
outcomes), a console sign-in from ``Origin: null`` (was accepted), another team's KPIs (any
agent could read them), a reply to a ticket another agent claimed (was accepted)."""

from __future__ import annotations

import json
import time

import httpx
from sqlalchemy import select

from tierline.serving.storage.models import OutboundMessage
from tierline.serving.tickets import create_agent
from tests.serving.fakes import envelope, message, status
from tests.serving.test_console import signed_in


def test_a_status_with_errors_of_the_wrong_type_is_not_a_500(service):
    body = envelope(statuses=[{**status("wamid.unknown.1", "failed"), "errors": 5}])
    r = service.deliver(body)
    assert r.status_code == 200, r.text  # the malformed errors are ignored


def test_a_huge_retry_after_is_capped_and_the_batch_is_recorded(service):
    customers = ["447700908001", "447700908002", "447700908003"]
    service.graph.script = [{"status": 429, "code": 130429, "headers": {"Retry-After": "1e12"}}]
    started = time.monotonic()
    for customer in customers:  # one delivery each: replies claimed in one batch
        service.say(message(text="hello", customer=customer))
    for customer in customers:
        service.graph.wait_to(customer, 1, timeout=15)
    took = time.monotonic() - started
    cap = service.app.state.settings.whatsapp_retry_max_seconds
    # Recorded once the sender has the answer (its next step), a moment after the fake Graph
    # API counted the message as accepted.
    deadline = time.monotonic() + 5
    while True:
        with service.services.db.session() as s:
            rows = s.scalars(select(OutboundMessage).where(OutboundMessage.to.in_(customers))).all()
        if {r.status for r in rows} <= {"sent", "delivered", "read"} or time.monotonic() > deadline:
            break
        time.sleep(0.005)
    assert {r.status for r in rows} <= {"sent", "delivered", "read"}
    print(f"\nRetry-After 1e12: capped at {cap}s; all {len(customers)} replies sent in {took:.1f}s")


def test_console_sign_in_from_a_null_origin_is_refused(service):
    token = create_agent(service.services.db, "Nora", ["general"])
    r = httpx.post(f"{service.url}/console/login", data={"token": token},
                   headers={"origin": "null"}, follow_redirects=False)
    assert r.status_code == 403 and "set-cookie" not in r.headers


def test_an_agent_reads_only_its_own_teams_kpis(service):
    billing = create_agent(service.services.db, "Bea", ["billing"])
    admin = create_agent(service.services.db, "Ada", [], admin=True)
    service.say(message(text="agent", customer="447700908101"))  # a ticket of team general
    service.wait_ticket("447700908101")
    with signed_in(service, billing) as bea:
        assert bea.get("/console/kpis", params={"team": "general"}).status_code == 404
        page = bea.get("/console/kpis")
        assert page.status_code == 200
        assert ">general<" not in page.text and 'value="general"' not in page.text
    with signed_in(service, admin) as ada:
        assert ada.get("/console/kpis", params={"team": "general"}).status_code == 200
        assert ">general<" in ada.get("/console/kpis").text


def test_a_reply_to_a_ticket_another_agent_claimed_is_refused(service):
    first = {"authorization": f"Bearer {create_agent(service.services.db, 'Ann', ['general'])}"}
    second = {"authorization": f"Bearer {create_agent(service.services.db, 'Bob', ['general'])}"}
    service.say(message(text="agent", customer="447700908201"))
    ticket = service.wait_ticket("447700908201")
    base = f"{service.url}/v1/agent/tickets/{ticket}"
    assert httpx.post(f"{base}/claim", headers=first).status_code == 200
    r = httpx.post(f"{base}/reply", headers=second, json={"text": "I'll take it from here"})
    assert r.status_code == 409 and "another agent" in json.dumps(r.json())
    assert httpx.post(f"{base}/reply", headers=first, json={"text": "hello"}).status_code == 200
