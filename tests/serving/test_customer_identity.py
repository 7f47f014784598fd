"""Who the customer is, for the agents who may know, over real HTTP on SQLite and PostgreSQL.

Through the signed webhook: the sender's number is stored in E.164 (a VIP listed as
"+44 7700 900321" in the flow's customers.csv is found from Meta's "447700900321") with their
WhatsApp profile name; the ticket's team (and admins) see the name and the full number on the
console's ticket page and in the agent API's ticket JSON, an agent of another team sees neither
(404, and the transfer's answer is masked); queue rows, notifications, metrics and error bodies
stay masked. Notifications link the ticket's console page under ``TIERLINE_PUBLIC_URL`` and name
team, priority and reasons. Order numbers written in any message, in four languages as WhatsApp
users type them, reach the ticket's context and the console. (The logs: the profile name is one
of the values ``test_secrets_in_logs.py`` looks for in the service's DEBUG output.)
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import JSON, DateTime, String, column, insert, inspect, table

from tierline.paths import DATA_DIR
from tierline.serving.channels.whatsapp.payload import parse_webhook
from tierline.serving.notify.notify import verify
from tierline.serving.storage.db import Database
from tierline.serving.storage.models import Agent, Conversation, Ticket, utcnow
from tierline.serving.tickets import create_agent
from tierline.serving.tickets.queue import customer_identity
from tests.serving.conftest import FAST_NOTIFY, Service, serve
from tests.serving.fakes import PHONE_NUMBER_ID, IdempotentPeer, envelope, message
from tests.serving.test_console import signed_in
from tests.serving.test_ticket_decision_migration import alembic

PUBLIC_URL = "https://support.example.com/help"
HOOK_SECRET = "identity-hook-secret"
VIP, VIP_NAME = "447700900321", "Giulia Rossi"
AGENT_BUTTON = dict(kind="button_reply", text="Talk to an agent", button_id="menu_agent")


def said(service: Service, customer: str, name: str | None, *messages: dict) -> None:
    """Deliver ``messages`` from ``customer`` with their profile name (None: no contacts)."""
    body = envelope(list(messages), customer=customer)
    contacts = body["entry"][0]["changes"][0]["value"]
    if name is None:
        del contacts["contacts"]
    else:
        contacts["contacts"][0]["profile"]["name"] = name
    assert service.deliver(body).status_code == 200


def auth(token: str) -> dict:
    return {"authorization": f"Bearer {token}"}


def conversation(service: Service, customer: str) -> Conversation:
    with service.services.db.session() as s:
        return s.get(Conversation, f"wa:{PHONE_NUMBER_ID}:{customer}")


def wait_until(check, what: str, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, what
        time.sleep(0.05)
    return found


@pytest.fixture(scope="module")
def flow_path(tmp_path_factory) -> str:
    """The shipped flow with a VIP listed in customers.csv the way a business writes numbers."""
    folder = tmp_path_factory.mktemp("bot") / "bot"
    shutil.copytree(DATA_DIR / "bot", folder)
    with open(folder / "customers.csv", "a", encoding="utf-8") as fh:
        fh.write(f"+44 7700 900321,{VIP_NAME},vip\n")
    return str(folder / "bot.yaml")


@pytest.fixture(scope="module")
def peers(database_url) -> Iterator[dict[str, IdempotentPeer]]:
    made = {"slack": IdempotentPeer(), "webhook": IdempotentPeer()}
    yield made
    for peer in made.values():
        peer.close()


@pytest.fixture(scope="module")
def service(analyzer, database_url, flow_path, peers) -> Iterator[Service]:
    with serve(analyzer, database_url, flow_path=flow_path, public_url=PUBLIC_URL + "/",
               notify_slack_url=f"{peers['slack'].url}/services/T0/B0/x",
               notify_webhook_url=f"{peers['webhook'].url}/hook",
               notify_webhook_secret=HOOK_SECRET, **FAST_NOTIFY) as running:
        yield running


@pytest.fixture(scope="module")
def tokens(service) -> dict[str, str]:
    db = service.services.db
    return {"general": create_agent(db, "Gina", ["general"]),
            "billing": create_agent(db, "Bruno", ["billing"]),
            "admin": create_agent(db, "Ada", [], admin=True)}


def test_the_payload_names_the_sender_and_their_number_is_e164():
    body = envelope([message(text="hi", customer="447700900001"),
                     message(text="hi", customer="393331234567")], customer="447700900001")
    body["entry"][0]["changes"][0]["value"]["contacts"] = [
        {"profile": {"name": "  Giulia\u0000 Rossi "}, "wa_id": "447700900001"},
        {"profile": {"name": 5}, "wa_id": "393331234567"}, "garbage"]
    [first, second], _ = parse_webhook(body)
    assert (first.customer_id, first.wa_id, first.customer_name) == (
        "+447700900001", "447700900001", "Giulia Rossi")
    assert first.conversation_id == f"wa:{PHONE_NUMBER_ID}:447700900001"
    assert (second.customer_id, second.customer_name) == ("+393331234567", None)


def test_migration_0009_adds_the_name_to_existing_conversations_and_goes_back(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'old.db'}")
    alembic(db, "0008")
    conversations = table("conversations", column("id", String), column("channel", String),
                          column("customer_id", String), column("state", JSON),
                          column("created_at", DateTime), column("updated_at", DateTime))
    with db.engine.begin() as c:  # a conversation stored by the release before
        c.execute(insert(conversations).values(
            id=f"wa:{PHONE_NUMBER_ID}:447700900399", channel="whatsapp",
            customer_id="447700900399", state={}, created_at=utcnow(), updated_at=utcnow()))
    db.migrate()
    with db.session() as s:
        old = s.get(Conversation, f"wa:{PHONE_NUMBER_ID}:447700900399")
        assert (old.customer_id, old.customer_name) == ("447700900399", None)
        assert customer_identity(Agent(teams=[], is_admin=True), Ticket(team="general"), old)[
            "customer_phone"] == "+447700900399"  # shown in E.164 all the same
    alembic(db, "0008", down=True)
    assert "customer_name" not in {c["name"] for c in inspect(db.engine).get_columns("conversations")}
    db.dispose()


def test_identity_is_masked_for_anyone_outside_the_tickets_team():
    ticket = Ticket(team="billing", context={})
    conv = Conversation(customer_id="+447700900322", customer_name="Marco  Bianchi")
    outsider, member, admin = (Agent(teams=["general"], is_admin=False),
                               Agent(teams=["billing"], is_admin=False),
                               Agent(teams=[], is_admin=True))
    assert customer_identity(outsider, ticket, conv) == {
        "customer_name": "M*** B***", "customer_phone": "+4477********"}
    for agent in (member, admin):
        assert customer_identity(agent, ticket, conv) == {
            "customer_name": "Marco  Bianchi", "customer_phone": "+447700900322"}
    api = Conversation(customer_id="cust-42", customer_name=None)  # a runtime's own id
    assert customer_identity(member, ticket, api) == {"customer_name": None, "customer_phone": None}


def test_a_vip_listed_with_spaces_is_found_from_metas_digits(service):
    said(service, VIP, VIP_NAME, message(text="hi", customer=VIP))
    service.graph.wait_to(VIP, 1)  # replies go to the wa_id as Meta wrote it
    conv = conversation(service, VIP)
    assert (conv.customer_id, conv.customer_name) == ("+447700900321", VIP_NAME)
    assert conv.state["tier"] == "vip"
    said(service, VIP, "Giulia R.", message(customer=VIP, **AGENT_BUTTON))
    ticket_id = service.wait_ticket(VIP)
    with service.services.db.session() as s:
        assert s.get(Ticket, ticket_id).context["tier"] == "vip"
    assert conversation(service, VIP).customer_name == "Giulia R."  # the latest profile name
    said(service, VIP, None, message(text="hello?", customer=VIP))  # no contacts: name kept
    service.graph.wait_to(VIP, 3)
    assert conversation(service, VIP).customer_name == "Giulia R."


def test_the_tickets_team_sees_who_the_customer_is_and_another_team_does_not(service, tokens):
    customer, name, phone = "447700900322", "Marco Bianchi", "+447700900322"
    said(service, customer, name, message(text="hi", customer=customer),
         message(customer=customer, **AGENT_BUTTON))
    ticket_id = service.wait_ticket(customer)
    url = f"{service.url}/v1/agent/tickets"
    for who in ("general", "admin"):
        detail = httpx.get(f"{url}/{ticket_id}", headers=auth(tokens[who])).json()
        assert (detail["team"], detail["customer_name"], detail["customer_phone"]) == (
            "general", name, phone)
        assert detail["customer"] == "44770*******"  # the masked form queue rows show
    with signed_in(service, tokens["general"]) as gina:
        page = gina.get(f"/console/tickets/{ticket_id}").text
        assert f'id="customer-name">{name}<' in page and f'id="customer-phone">{phone}<' in page
        rows = gina.get("/console/queue.json").text + gina.get("/console/queue").text
        assert str(ticket_id) in rows and name not in rows and phone[1:] not in rows
    queue = httpx.get(url, headers=auth(tokens["general"])).text
    assert str(ticket_id) in queue and name not in queue and phone[1:] not in queue

    def hidden_from_billing() -> None:
        refused = httpx.get(f"{url}/{ticket_id}", headers=auth(tokens["billing"]))
        assert refused.status_code == 404
        with signed_in(service, tokens["billing"]) as bruno:
            page = bruno.get(f"/console/tickets/{ticket_id}")
            queue = bruno.get("/console/queue.json").text
        assert page.status_code == 404
        for body in (refused.text, page.text, queue):
            assert name not in body and phone[1:] not in body

    hidden_from_billing()
    # Gina hands the ticket to the technical team: her answer is already another team's view.
    moved = httpx.post(f"{url}/{ticket_id}/transfer", headers=auth(tokens["general"]),
                       json={"team": "technical"})
    assert moved.status_code == 200 and moved.json()["team"] == "technical"
    assert name not in moved.text and phone[1:] not in moved.text
    assert httpx.get(f"{url}/{ticket_id}", headers=auth(tokens["general"])).status_code == 404
    hidden_from_billing()
    metrics = httpx.get(f"{service.url}/metrics").text
    assert name not in metrics and phone[1:] not in metrics


def test_notifications_link_the_ticket_and_name_team_priority_and_reasons(service, peers):
    customer, name = "447700900323", "Sara Verdi"
    said(service, customer, name, message(text="hi", customer=customer),
         message(customer=customer, **AGENT_BUTTON))
    ticket_id = service.wait_ticket(customer)
    key = f"ticket:{ticket_id}:ticket.created:"
    slack = wait_until(lambda: peers["slack"].accepted.get(key + "slack"), "no Slack notice")
    hook = wait_until(lambda: peers["webhook"].accepted.get(key + "webhook"), "no webhook notice")
    link = f"{PUBLIC_URL}/console/tickets/{ticket_id}"
    with service.services.db.session() as s:
        ticket = s.get(Ticket, ticket_id)
        team, priority, reasons = ticket.team, ticket.priority, ticket.context["reasons"]
    assert reasons and reasons[0] == "customer asked for a human agent"

    assert verify(hook["body"], HOOK_SECRET, hook["headers"]["x-tierline-signature-256"])
    notice = json.loads(hook["body"])
    assert (notice["url"], notice["team"], notice["priority"], notice["reasons"]) == (
        link, team, priority, reasons)
    assert notice["customer"] == "44770*******"

    sent = json.loads(slack["body"])
    assert f"<{link}|open ticket>" in sent["text"]
    assert f"[{priority}] Ticket #{ticket_id} for {team}: {reasons[0]}" in sent["text"]
    assert sent["blocks"][-1]["elements"][0]["url"] == link
    for body in (slack["body"].decode(), hook["body"].decode()):
        assert customer not in body and name not in body


#: Per language: a first message with an order number typed loosely, then (after the agent
#: button hands the conversation over) one with another number, written while the agent has it.
ORDER_SCRIPTS = {
    "en": ("447700900331", "hey my parcel nd123456 still hasnt arrived??",
           "oh and also order #ND-654321 pls", ["ND-123456", "ND-654321"]),
    "it": ("447700900332", "ciao, l'ordine nd 223344 nn è ancora arrivato",
           "ah c'è anche ND–554433 😩", ["ND-223344", "ND-554433"]),
    "es": ("447700900333", "hola!! mi pedido ND 334455 no llega",
           "tmb el pedido nd_665544 porfa", ["ND-334455", "ND-665544"]),
    "pt": ("447700900334", "oi, meu pedido Nd-445566 ainda não chegou",
           "e tbm o pedido nd.776655 kkk", ["ND-445566", "ND-776655"]),
}


@pytest.mark.parametrize("language", list(ORDER_SCRIPTS))
def test_order_numbers_from_any_message_reach_the_ticket(service, tokens, language):
    customer, first, later, numbers = ORDER_SCRIPTS[language]
    said(service, customer, None, message(text=first, customer=customer),
         message(customer=customer, **AGENT_BUTTON))
    ticket_id = service.wait_ticket(customer)
    with service.services.db.session() as s:  # written at opening: the first message's number
        assert s.get(Ticket, ticket_id).context["order_numbers"] == numbers[:1]
    said(service, customer, None, message(text=later, customer=customer))
    url, admin = f"{service.url}/v1/agent/tickets/{ticket_id}", auth(tokens["admin"])
    context = wait_until(lambda: (c := httpx.get(url, headers=admin).json()["context"])
                         ["order_numbers"] == numbers and c, f"{language}: {numbers} not shown")
    assert context["order_number"] == numbers[0]
    with signed_in(service, tokens["admin"]) as ada:
        page = ada.get(f"/console/tickets/{ticket_id}").text
    assert f'id="ctx-orders">{", ".join(numbers)}<' in page
    assert httpx.post(f"{url}/resolve", headers=admin).status_code == 200
    with service.services.db.session() as s:  # resolving keeps the later ones with the ticket
        assert s.get(Ticket, ticket_id).context["order_numbers"] == numbers
    assert httpx.get(url, headers=admin).json()["context"]["order_numbers"] == numbers
