"""The agent API against hostile callers, over real HTTP: tokens (missing, invalid, expired),
another team's ticket, SQL-injection-shaped filters and oversized bodies.

Another team's ticket answers **404, not 403**: ticket ids are sequential, so a 403 would
confirm that the id exists (and, by probing, how many tickets other teams have). A ticket of
another team and an id that was never used give the very same answer.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import func, select

from tierline.serving.storage.models import Agent, OutboundMessage, Ticket, as_utc, utcnow
from tierline.serving.tickets import create_agent, token_hash
from tests.serving.fakes import message

CUSTOMER = "447700900881"


def auth(token: str) -> dict:
    return {"authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def tokens(service):
    db = service.services.db
    return {"general": create_agent(db, "Gina", ["general"]),
            "billing": create_agent(db, "Bruno", ["billing"]),
            "admin": create_agent(db, "Ada", [], admin=True),
            "expired": create_agent(db, "Old", ["billing"], expires_at=utcnow() - timedelta(seconds=1)),
            "expired_admin": create_agent(db, "Old admin", [], admin=True,
                                          expires_at=utcnow() - timedelta(days=3)),
            "valid_until_tomorrow": create_agent(db, "Temp", ["billing"],
                                                 expires_at=utcnow() + timedelta(days=1))}


@pytest.fixture(scope="module")
def billing_ticket(service) -> int:
    service.say(message(text="I was charged twice for the same order, agent please", customer=CUSTOMER))
    ticket_id = service.wait_ticket(CUSTOMER)
    with service.services.db.session() as s:
        assert s.get(Ticket, ticket_id).team == "billing"
    return ticket_id


def operations(ticket_id: int) -> list[tuple[str, str, dict | None]]:
    """Every ticket operation of the agent API (method, path, JSON body)."""
    base = f"/v1/agent/tickets/{ticket_id}"
    return [("GET", base, None), ("POST", f"{base}/claim", None),
            ("POST", f"{base}/reply", {"text": "hello"}), ("POST", f"{base}/transfer", {"team": "general"}),
            ("POST", f"{base}/resolve", None), ("PUT", f"{base}/label", {"escalation_needed": "yes"})]


def call(service, method: str, path: str, body: dict | None = None, **kw) -> httpx.Response:
    return httpx.request(method, f"{service.url}{path}", json=body, timeout=15, **kw)


def ticket_count(service) -> int:
    with service.services.db.session() as s:
        return s.scalar(select(func.count()).select_from(Ticket)) or 0


@pytest.mark.parametrize("header", [None, "Bearer", "Basic Z2luYTpwdw==", "bearer nope",
                                    "Bearer " + "x" * 5000, "Bearer ' OR '1'='1"])
def test_missing_or_invalid_tokens_are_401_everywhere(service, billing_ticket, header):
    headers = {} if header is None else {"authorization": header}
    for method, path, body in [("GET", "/v1/agent/tickets", None), *operations(billing_ticket)]:
        r = call(service, method, path, body, headers=headers)
        assert r.status_code == 401, (method, path, r.status_code)
        assert r.headers["www-authenticate"] == "Bearer"
        assert r.json()["detail"] in ("missing bearer token", "invalid token")
        credentials = (header or "").partition(" ")[2]
        assert not credentials or credentials not in r.text  # the token is never echoed


def test_expired_tokens_are_401_and_unexpired_ones_work(service, tokens, billing_ticket):
    for name in ("expired", "expired_admin"):
        for method, path, body in [("GET", "/v1/agent/tickets", None), *operations(billing_ticket)]:
            r = call(service, method, path, body, headers=auth(tokens[name]))
            assert r.status_code == 401 and r.json() == {"detail": "invalid token"}, (name, path)
    r = call(service, "GET", f"/v1/agent/tickets/{billing_ticket}", headers=auth(tokens["valid_until_tomorrow"]))
    assert r.status_code == 200 and r.json()["id"] == billing_ticket
    with service.services.db.session() as s:  # nothing the expired agents tried was done
        assert s.get(Ticket, billing_ticket).status == "open"


def test_cli_adds_an_agent_whose_token_expires(service, database_url):
    env = {**os.environ, "TIERLINE_DATABASE_URL": database_url}
    run = subprocess.run([sys.executable, "-m", "tierline", "agents", "add", "--name", "Short",
                          "--teams", "billing", "--expires-in-days", "0.5"],
                         env=env, capture_output=True, text=True, timeout=120, check=True)
    token = run.stdout.strip().splitlines()[-1]
    with service.services.db.session() as s:
        agent = s.scalars(select(Agent).where(Agent.token_sha256 == token_hash(token))).one()
        left = as_utc(agent.expires_at) - utcnow()
        assert timedelta(hours=11, minutes=59) < left <= timedelta(hours=12)
    assert call(service, "GET", "/v1/agent/tickets", headers=auth(token)).status_code == 200
    with service.services.db.session() as s:  # twelve hours later...
        s.scalars(select(Agent).where(Agent.token_sha256 == token_hash(token))).one().expires_at = \
            utcnow() - timedelta(seconds=1)
    assert call(service, "GET", "/v1/agent/tickets", headers=auth(token)).status_code == 401
    bad = subprocess.run([sys.executable, "-m", "tierline", "agents", "add", "--name", "Neg",
                          "--expires-in-days", "-1"], env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2


def test_another_teams_ticket_is_404_exactly_like_a_missing_one(service, tokens, billing_ticket):
    general = auth(tokens["general"])
    missing = 2_000_000_000
    for (method, path, body), (_, missing_path, _) in zip(operations(billing_ticket), operations(missing),
                                                          strict=True):
        theirs = call(service, method, path, body, headers=general)
        nowhere = call(service, method, missing_path, body, headers=general)
        assert theirs.status_code == nowhere.status_code == 404, (method, path)
        assert theirs.json() == nowhere.json() == {"detail": "no such ticket"}
        assert CUSTOMER not in theirs.text and "billing" not in theirs.text
    with service.services.db.session() as s:
        ticket = s.get(Ticket, billing_ticket)
        assert ticket.team == "billing" and ticket.status == "open" and ticket.assigned_agent_id is None
        assert s.scalar(select(func.count()).select_from(OutboundMessage).where(
            OutboundMessage.role == "agent")) == 0


INJECTIONS = ["billing' OR '1'='1", "general; DROP TABLE tickets; --", "' UNION SELECT token_sha256 FROM agents --",
              "general\x00", "%' OR 1=1 --"]


@pytest.mark.parametrize("team", INJECTIONS)
def test_sql_shaped_team_filter_is_refused_or_matches_nothing(service, tokens, billing_ticket, team):
    before = ticket_count(service)
    r = call(service, "GET", "/v1/agent/tickets", headers=auth(tokens["general"]), params={"team": team})
    assert r.status_code == 403 and r.json() == {"detail": "not one of your teams"}
    r = call(service, "GET", "/v1/agent/tickets", headers=auth(tokens["admin"]), params={"team": team})
    assert r.status_code in (200, 422) and (r.status_code == 422 or r.json() == [])
    assert "token_sha256" not in r.text.replace(team, "") and CUSTOMER not in r.text
    assert ticket_count(service) == before >= 1  # the table is intact


def test_sql_shaped_values_elsewhere_are_422_and_stored_text_stays_text(service, tokens, billing_ticket):
    admin = auth(tokens["admin"])
    for params in ({"status": "open' OR 1=1 --"}, {"limit": "1; DROP TABLE tickets"},
                   {"limit": "0"}, {"limit": "100000"}):
        assert call(service, "GET", "/v1/agent/tickets", headers=admin, params=params).status_code == 422
    for path in ("/v1/agent/tickets/1%20OR%201=1", "/v1/agent/tickets/-1", "/v1/agent/tickets/99999999999"):
        assert call(service, "GET", path, headers=admin).status_code == 422
    r = call(service, "POST", f"/v1/agent/tickets/{billing_ticket}/transfer",
             {"team": "billing'; DROP TABLE tickets; --"}, headers=admin)
    assert r.status_code == 422 and "unknown team" in r.json()["detail"]
    note = "x'); DELETE FROM tickets; --"
    r = call(service, "PUT", f"/v1/agent/tickets/{billing_ticket}/label",
             {"escalation_needed": "yes", "note": note}, headers=admin)
    assert r.status_code == 200 and r.json()["note"] == note
    detail = call(service, "GET", f"/v1/agent/tickets/{billing_ticket}", headers=admin).json()
    assert detail["label"]["note"] == note and ticket_count(service) >= 1


def test_oversized_replies_and_labels_are_422_and_nothing_is_sent(service, tokens, billing_ticket):
    billing = auth(tokens["billing"])

    def outbox() -> int:
        with service.services.db.session() as s:
            return s.scalar(select(func.count()).select_from(OutboundMessage)) or 0

    before = outbox()
    for text in ("x" * 4097, "y" * 1_000_000, ""):
        r = call(service, "POST", f"/v1/agent/tickets/{billing_ticket}/reply", {"text": text}, headers=billing)
        assert r.status_code == 422
        assert len(r.content) < 2000, "a 422 must not echo the oversized input back"
    r = call(service, "PUT", f"/v1/agent/tickets/{billing_ticket}/label",
             {"escalation_needed": "yes", "note": "n" * 2001}, headers=billing)
    assert r.status_code == 422
    assert outbox() == before
    r = call(service, "POST", f"/v1/agent/tickets/{billing_ticket}/reply", {"text": "z" * 4096}, headers=billing)
    assert r.status_code == 200 and outbox() == before + 1  # the limit itself is fine
