"""The ticket page's tools and the admins' sandbox over real HTTP (httpx against uvicorn on
127.0.0.1, the fake Graph API as WhatsApp and as its media endpoint), on SQLite and
PostgreSQL: the customer panel (name, number, tier, order numbers, other tickets newest first
with outcome, label and CSAT), canned replies (checked at load, filled in), internal notes
(stored, in the timeline, never sent: the Graph API receives nothing), customers' media
(fetched once through the Graph API media endpoint, kept on disk, size-limited, served to the
ticket's team only) and the sandbox (admins only; plays the live flow in memory: no table
changes; exports a conversation-suite test case)."""

from __future__ import annotations

import json
import re
import struct
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, inspect, select

from tierline.nlu.flow import load_flow
from tierline.serving.channels.whatsapp.media import MediaError, MediaStore, MediaTooLarge
from tierline.serving.storage.models import (
    Base,
    EscalationLabel,
    InboundMessage,
    OutboundMessage,
    PeerDelivery,
    Ticket,
    TicketNote,
    utcnow,
)
from tierline.serving.storage.db import Database
from tierline.serving.tickets.canned import CannedError, fill, load_canned
from tierline.serving.tickets.lifecycle import known_teams
from tests.serving.conftest import Service, serve
from tests.serving.fakes import ACCESS_TOKEN, PHONE_NUMBER_ID, FakeGraphAPI, envelope, message
from tests.serving.test_console import csrf_of, signed_in
from tests.serving.test_ticket_decision_migration import alembic
from tests.serving.test_customer_identity import tokens, wait_until  # noqa: F401 - tokens: Gina, Bruno, Ada

CUSTOMER, OTHER = "447700900811", "447700900812"
MEDIA_LIMIT = 64 * 1024


def png(width: int = 240, height: int = 160) -> bytes:
    """A small PNG (a colour gradient), as a customer's photo."""
    rows = b"".join(b"\x00" + bytes(v for x in range(width) for v in (
        40 + 180 * x // width, 90 + 120 * y // height, 200)) for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


PHOTO, VOICE, PDF = png(), b"OggS" + bytes(2000), b"%PDF-1.4\n% an invoice\n" + bytes(500)


@pytest.fixture(scope="module")
def service(analyzer, database_url, tmp_path_factory) -> Iterator[Service]:
    with serve(analyzer, database_url, media_cache_dir=tmp_path_factory.mktemp("media"),
               media_max_bytes=MEDIA_LIMIT) as running:
        yield running


@pytest.fixture(scope="module")
def ticket(service) -> int:
    """A general ticket of CUSTOMER (order numbers written), with the customer's media sent
    after the handoff: a photo, a voice note, a document and a video over the size limit."""
    graph = service.graph
    graph.add_media("MID-PHOTO", PHOTO, "image/png")
    graph.add_media("MID-VOICE", VOICE, "audio/ogg; codecs=opus")
    graph.add_media("MID-PDF", PDF, "application/pdf")
    graph.add_media("MID-VIDEO", b"\x00" * 100, "video/mp4", declared_size=MEDIA_LIMIT * 40)
    say(service, CUSTOMER, message(text="I want to talk to a human about my order ND-123456",
                                   customer=CUSTOMER))
    ticket_id = service.wait_ticket(CUSTOMER)
    say(service, CUSTOMER, message("image", customer=CUSTOMER, media_id="MID-PHOTO", mime_type="image/png",
                        caption="the box arrived crushed"),
                message("audio", customer=CUSTOMER, media_id="MID-VOICE",
                        mime_type="audio/ogg; codecs=opus"),
                message("document", customer=CUSTOMER, media_id="MID-PDF",
                        mime_type="application/pdf", filename="../invoice ND-123456.pdf"),
                message("video", customer=CUSTOMER, media_id="MID-VIDEO", mime_type="video/mp4"))
    wait_until(lambda: transcript_lines(service, ticket_id) >= 6, "the media messages' lines")
    return ticket_id


def say(service: Service, customer: str, *messages: dict, name: str = "Giulia Rossi") -> None:
    """Deliver ``messages`` of ``customer``, whose WhatsApp profile name is ``name``."""
    body = envelope(list(messages), customer=customer)
    body["entry"][0]["changes"][0]["value"]["contacts"][0]["profile"]["name"] = name
    assert service.deliver(body).status_code == 200


def transcript_lines(service: Service, ticket_id: int) -> int:
    from tierline.serving.storage.models import MessageLog

    with service.services.db.session() as s:
        conv = s.get(Ticket, ticket_id).conversation_id
        return s.scalar(select(func.count()).select_from(MessageLog)
                        .where(MessageLog.conversation_id == conv))


def row_counts(service: Service) -> dict[str, int]:
    """Rows of every table of the service's database."""
    with service.services.db.session() as s:
        return {name: s.scalar(select(func.count()).select_from(table))
                for name, table in Base.metadata.tables.items()}


# --- canned replies --------------------------------------------------------------------------

def test_the_shipped_canned_replies_load_and_fill_in():
    flow = load_flow()
    canned = load_canned(Path(flow.path("canned.yaml")), known_teams(flow.escalation.routing),
                         flow.languages)
    billing_it = canned.offered("billing", "it")
    assert billing_it[0].title == "Tempi del rimborso" and billing_it[-1].team == "all"
    assert {r.language for r in canned.replies} == set(flow.languages)
    text, missing = fill("Hi {customer_name}, order {order_number} · {agent_name}",
                         {"customer_name": "Giulia", "agent_name": "Gina", "order_number": None})
    assert (text, missing) == ("Hi Giulia, order {order_number} · Gina", ["order_number"])
    assert fill("{{literal}} {agent_name}", {"agent_name": "Gina"}) == ("{literal} Gina", [])


#: A wrong canned replies file, and what its error must say.
BAD_CANNED = {
    "teams: {billing: {en: [{title: Refund, text: 'order {order_id} refunded'}]}}":
        "teams.billing.en[0] ('Refund'): unknown placeholder {order_id}; the placeholders are "
        "{customer_name}, {order_number}, {agent_name}",
    "teams: {sales: {en: [{title: Hi, text: hi}]}}": "teams.sales: not a team of the flow's routing",
    "teams: {all: {fr: [{title: Salut, text: salut}]}}": "teams.all.fr: not a language of the flow",
    "teams: {all: {en: [{title: Brace, text: 'a { b'}]}}": "teams.all.en[0] ('Brace'): ",
    "teams: {all: {en: [{title: Fmt, text: '{agent_name!r}'}]}}": "takes no format",
    "teams: {all: {en: [{title: '', text: x}]}}": "teams.all.en.0.title",
    "teams: {all: {en: [{title: x, text: y, extra: z}]}}": "extra",
    "teams: [": "not valid YAML",
}


def test_a_bad_canned_file_names_the_entry(tmp_path):
    for n, (entry, error) in enumerate(BAD_CANNED.items()):
        path = tmp_path / f"canned-{n}.yaml"
        path.write_text(entry)
        with pytest.raises(CannedError) as raised:
            load_canned(path, ["billing", "general", "technical"], ["en", "it", "es", "pt"])
        assert error in str(raised.value) and str(path) in str(raised.value), entry


def test_a_bad_canned_file_stops_the_service_at_start(analyzer, tmp_path):
    from tierline.serving.services import Services
    from tierline.serving.settings import Settings

    bad = tmp_path / "canned.yaml"
    bad.write_text("teams: {general: {it: [{title: Ciao, text: 'Ciao {nome}'}]}}")
    with pytest.raises(CannedError, match=r"teams\.general\.it\[0\] \('Ciao'\): unknown placeholder \{nome\}"):
        Services(Settings(database_url=f"sqlite:///{tmp_path / 'db'}", canned_replies_path=bad),
                 analyzer=analyzer)


def test_the_ticket_page_offers_the_teams_canned_replies_filled_in(service, tokens, ticket):
    with signed_in(service, tokens["general"]) as gina:
        page = gina.get(f"/console/tickets/{ticket}").text
    chips = re.findall(r'<button type="button" class="chip" data-canned="([^"]*)"[^>]*>([^<]*)<', page)
    titles = [title for _, title in chips]
    assert titles[:2] == ["Order delayed", "Order delivered, not received"]  # general's, then all's
    assert "Greeting" in titles and "Refund timing" not in titles  # billing's are not offered
    greeting = dict((title, text) for text, title in chips)["Greeting"]
    assert greeting == "Hi Giulia Rossi, this is Gina from the support team. I&#39;m looking into it now."
    assert "ND-123456" in dict((title, text) for text, title in chips)["Order delayed"]


# --- customer panel --------------------------------------------------------------------------

def test_the_customer_panel_lists_the_customers_other_tickets_newest_first(service, tokens, ticket):
    db = service.services.db
    admin_id = _agent_id(service, "Ada")
    conv = f"wa:{PHONE_NUMBER_ID}:{CUSTOMER}"
    with db.session() as s:  # earlier tickets of the same customer (and one of another team)
        now = utcnow()
        old = [Ticket(conversation_id=conv, team=team, status=status, priority="normal",
                      priority_rank=1, context={"intent": intent}, csat=csat,
                      created_at=now.replace(year=now.year - 1, month=1, day=day),
                      resolved_at=now if status == "resolved" else None)
               for team, status, intent, csat, day in (
                   ("general", "resolved", "track_order", 4, 3),
                   ("general", "resolved", "complaint", None, 20),
                   ("billing", "resolved", "get_refund", 2, 10))]
        s.add_all(old)
        s.flush()
        s.add(EscalationLabel(ticket_id=old[0].id, agent_id=admin_id, escalation_needed="earlier",
                              corrected_intent="delivery_period"))
        ids = [t.id for t in old]
    with signed_in(service, tokens["general"]) as gina:
        page = gina.get(f"/console/tickets/{ticket}").text
        api = httpx.get(f"{service.url}/v1/agent/tickets/{ticket}/customer", timeout=10,
                        headers={"authorization": f"Bearer {tokens['general']}"}).json()
    panel = page[page.index('id="customer-panel"'):]
    assert 'id="customer-name">Giulia Rossi<' in panel
    assert f'id="customer-phone">+{CUSTOMER}<' in panel
    assert 'id="customer-tier">standard<' in panel and 'id="ctx-orders">ND-123456<' in panel
    listed = [int(n) for n in re.findall(r'<li data-ticket="(\d+)">', panel)]
    assert listed == [ids[1], ids[0]]  # newest first; the current ticket and billing's left out
    first = panel[panel.index(f'data-ticket="{ids[0]}"'):]
    assert f'href="/console/tickets/{ids[0]}"' in first
    assert re.search(r"resolved, handed back to the bot · Label: should have been earlier "
                     r"\(delivery_period\) · CSAT 4/5", first)
    assert "+1 more with other teams" in panel
    assert "WhatsApp</a>" in panel and "4 tickets (1 open)" in panel
    assert [t["id"] for t in api["tickets"]] == [ids[1], ids[0]]
    assert api["other_teams_tickets"] == 1 and api["order_numbers"] == ["ND-123456"]
    # Another team's agent: the ticket, its panel and its API answer are not found.
    with signed_in(service, tokens["billing"]) as bruno:
        assert bruno.get(f"/console/tickets/{ticket}").status_code == 404
    r = httpx.get(f"{service.url}/v1/agent/tickets/{ticket}/customer", timeout=10,
                  headers={"authorization": f"Bearer {tokens['billing']}"})
    assert r.status_code == 404


def _agent_id(service: Service, name: str) -> int:
    from tierline.serving.storage.models import Agent

    with service.services.db.session() as s:
        return s.scalars(select(Agent.id).where(Agent.name == name)).one()


# --- internal notes --------------------------------------------------------------------------

def test_a_note_is_stored_shown_as_internal_and_never_sent(service, tokens, ticket):
    graph = service.graph
    sent_before = len(graph.received)
    with service.services.db.session() as s:
        outbox_before = s.scalar(select(func.count()).select_from(OutboundMessage))
        peers_before = s.scalar(select(func.count()).select_from(PeerDelivery))
    with signed_in(service, tokens["general"]) as gina:
        page = gina.get(f"/console/tickets/{ticket}").text
        r = gina.post(f"/console/tickets/{ticket}/notes",
                      data={"csrf": csrf_of(page), "text": "Customer <b>called</b> too; refund OK'd"})
        assert r.status_code == 303 and r.headers["location"].endswith("done=note_saved")
        page = gina.get(r.headers["location"]).text
        assert "Note added (internal: not sent to the customer)." in page
        note = re.search(r'<li class="bubble note" data-note="(\d+)">(.*?)</li>', page, re.S)
        assert note and "Internal note · Gina" in note.group(2)
        assert "Customer &lt;b&gt;called&lt;/b&gt; too; refund OK&#39;d" in note.group(2)
        # Refused: no CSRF token, an empty note.
        assert gina.post(f"/console/tickets/{ticket}/notes", data={"text": "x"}).status_code == 403
        r = gina.post(f"/console/tickets/{ticket}/notes", data={"csrf": csrf_of(page), "text": " "})
        assert r.headers["location"].endswith("error=err_input")
    auth = {"authorization": f"Bearer {tokens['general']}"}
    r = httpx.post(f"{service.url}/v1/agent/tickets/{ticket}/notes", json={"text": "by API"},
                   headers=auth, timeout=10)
    assert r.status_code == 201 and r.json()["agent"] == "Gina"
    notes = httpx.get(f"{service.url}/v1/agent/tickets/{ticket}/notes", headers=auth, timeout=10).json()
    assert [n["text"] for n in notes] == ["Customer <b>called</b> too; refund OK'd", "by API"]
    # Another team's agent: not found, by the console and by the API; nothing stored.
    with signed_in(service, tokens["billing"]) as bruno:
        page = bruno.get("/console/queue").text
        r = bruno.post(f"/console/tickets/{ticket}/notes", data={"csrf": csrf_of(page), "text": "x"})
        assert r.status_code == 404
    other = {"authorization": f"Bearer {tokens['billing']}"}
    for method, body in (("GET", None), ("POST", {"text": "x"})):
        r = httpx.request(method, f"{service.url}/v1/agent/tickets/{ticket}/notes", json=body,
                          headers=other, timeout=10)
        assert r.status_code == 404
    assert httpx.get(f"{service.url}/v1/agent/tickets/{ticket}/notes", timeout=10).status_code == 401
    # Nothing went, or was queued to go, to the customer or any peer.
    time.sleep(0.5)  # the sender polls every 10 ms: anything queued would have gone by now
    assert len(graph.received) == sent_before
    with service.services.db.session() as s:
        assert s.scalar(select(func.count()).select_from(OutboundMessage)) == outbox_before
        assert s.scalar(select(func.count()).select_from(PeerDelivery)) == peers_before
        assert s.scalar(select(func.count()).select_from(TicketNote)) == 2


# --- media -----------------------------------------------------------------------------------

def test_media_are_shown_in_place_fetched_once_and_size_limited(service, tokens, ticket):
    graph = service.graph
    with signed_in(service, tokens["general"]) as gina:
        page = gina.get(f"/console/tickets/{ticket}").text
        found = {kind: url_a or url_b for kind, url_a, url_b in re.findall(
            r'<figure class="media media-(\w+)" data-media-state="ok">\s*'
            r'(?:<a (?:class="download" )?href="([^"]+)"|<audio controls preload="none" src="([^"]+)")', page)}
        assert set(found) == {"image", "audio", "document"}
        assert '<img src="%s" alt="the box arrived crushed">' % found["image"] in page
        assert "Image: the box arrived crushed" in page
        assert 'class="download" href="%s" download>invoice ND-123456.pdf<' % found["document"] in page
        too_large = re.search(r'data-media-state="too_large">\s*<p class="media-notice">([^<]*)<', page)
        assert too_large and too_large.group(1).startswith("Video · 2.5 MB (limit 64 KB): Over the size limit")

        r = gina.get(found["image"])
        assert r.status_code == 200 and r.content == PHOTO
        assert r.headers["content-type"] == "image/png"
        assert r.headers["x-content-type-options"] == "nosniff"
        assert "sandbox" in r.headers["content-security-policy"]
        assert "no-store" in r.headers["cache-control"]
        r = gina.get(found["audio"])
        assert r.content == VOICE and r.headers["content-type"] == "audio/ogg"
        r = gina.get(found["document"])
        assert r.content == PDF and r.headers["content-type"] == "application/octet-stream"
        assert r.headers["content-disposition"] == 'attachment; filename="invoice ND-123456.pdf"'

        # Fetched once: the details and the bytes of each file, then from the disk cache.
        fetched = list(graph.media_requests)
        assert sorted(p for p in fetched if p.startswith("_media/")) == [
            "_media/MID-PDF", "_media/MID-PHOTO", "_media/MID-VOICE"]
        assert gina.get(found["image"]).content == PHOTO
        gina.get(f"/console/tickets/{ticket}")
        assert graph.media_requests == fetched

        # Over the limit: never downloaded, answered with a notice.
        r = gina.get(f"/console/tickets/{ticket}/media/{inbound_id(service, 'video')}")
        assert r.status_code == 413 and "Over the size limit" in r.text
        assert "_media/MID-VIDEO" not in graph.media_requests
        # Not a media message of this ticket's conversation.
        assert gina.get(found["image"].rsplit("/", 1)[0] + "/1").status_code == 404

    # Another team's agent and a signed-out browser never get the file.
    with signed_in(service, tokens["billing"]) as bruno:
        r = bruno.get(found["image"])
        assert r.status_code == 404 and r.content != PHOTO
    r = httpx.get(f"{service.url}{found['image']}", timeout=10, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/console/login"


def inbound_id(service: Service, kind: str) -> int:
    """The stored message of CUSTOMER's of this media type."""
    with service.services.db.session() as s:
        return s.scalars(select(InboundMessage.id).where(
            InboundMessage.customer_id == f"+{CUSTOMER}", InboundMessage.type == kind)).one()


def test_the_media_store_stops_a_download_past_the_limit(tmp_path):
    graph = FakeGraphAPI()
    try:
        graph.add_media("LIAR", bytes(5000), "image/png", declared_size=10)  # says 10 bytes
        store = MediaStore(graph.url, ACCESS_TOKEN, tmp_path, max_bytes=1000, timeout=5)
        with pytest.raises(MediaTooLarge):
            store.file("LIAR")
        assert not list(tmp_path.glob("*.bin"))  # nothing kept
        graph.add_media("OK", PHOTO, "image/png")
        store = MediaStore(graph.url, ACCESS_TOKEN, tmp_path, max_bytes=len(PHOTO), timeout=5)
        path, info = store.file("OK")
        assert path.read_bytes() == PHOTO and info.size == len(PHOTO)
        # A file the Graph API cannot describe: not asked about again at once (a ticket page
        # during an outage costs one timeout per file, not one per view).
        asked = len(graph.media_requests)
        for _ in range(2):
            with pytest.raises(MediaError, match="HTTP 400|moments ago"):
                store.info("GONE")
        assert len(graph.media_requests) == asked + 1
    finally:
        graph.close()


def test_migration_0013_adds_the_notes_table_and_takes_it_back(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'notes.db'}")
    alembic(db, "0012")
    assert "ticket_notes" not in inspect(db.engine).get_table_names()
    db.migrate()
    assert {c["name"] for c in inspect(db.engine).get_columns("ticket_notes")} == {
        "id", "ticket_id", "agent_id", "text", "created_at"}
    alembic(db, "0012", down=True)
    assert "ticket_notes" not in inspect(db.engine).get_table_names()
    db.dispose()


# --- sandbox ---------------------------------------------------------------------------------

def sandbox_step(client: httpx.Client, page: str, **fields: str) -> httpx.Response:
    """Submit the sandbox form as the page has it, with ``fields`` changed."""
    form = {name: value for name, value in re.findall(
        r'<input type="hidden" name="(\w+)"(?: id="[^"]*")? value="([^"]*)"', page)}
    form = {k: v.replace("&#34;", '"').replace("&quot;", '"').replace("&amp;", "&")
            .replace("&#39;", "'").replace("&lt;", "<").replace("&gt;", ">") for k, v in form.items()}
    for name in ("language", "tier", "hours"):
        chosen = re.search(rf'<select name="{name}".*?<option value="([^"]*)" selected', page, re.S)
        form[name] = chosen.group(1) if chosen else ""
    form.update(fields)
    return client.post(fields.pop("_action", "/console/sandbox"), data=form)


def test_the_sandbox_is_for_admins_only(service, tokens):
    with signed_in(service, tokens["general"]) as gina:
        r = gina.get("/console/sandbox")
        assert r.status_code == 403 and "Only admins can use this page." in r.text
        assert 'id="nav-sandbox"' not in gina.get("/console/queue").text
        csrf = csrf_of(gina.get("/console/queue").text)
        for path in ("/console/sandbox", "/console/sandbox/export"):
            assert gina.post(path, data={"csrf": csrf, "text": "hi"}).status_code == 403
    r = httpx.get(f"{service.url}/console/sandbox", timeout=10, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/console/login"


def test_the_sandbox_plays_the_live_flow_in_memory_and_exports_a_test_case(service, tokens):
    from tierline.training.batch_eval import LogConversation, score_conversations

    before, sent_before = row_counts(service), len(service.graph.received)
    with signed_in(service, tokens["admin"]) as ada:
        page = ada.get("/console/sandbox").text
        assert 'id="nav-sandbox"' in page and "Write the first message" in page
        page = sandbox_step(ada, page, text="hi", tier="vip", hours="closed").text
        assert 'data-analysis="1"' in page and "the bot answers" in page
        menu = re.findall(r'<button type="submit" name="button_id" value="([^"]+)" class="chip">', page)
        assert "menu_agent" in menu
        r = sandbox_step(ada, page, button_id="menu_agent")
        assert r.status_code == 200
        page = r.text
        turn2 = page[page.index('data-analysis="2"'):]
        turn2 = turn2[:turn2.index("</dl>")]
        assert "hand off to general" in turn2 and "priority high" in turn2
        assert "outside business hours" in turn2 and "asked for a human agent" in turn2
        assert re.search(r'class="p-escalate">\d\.\d\d <small>\(threshold 0\.30\)', turn2)
        page = sandbox_step(ada, page, text="HELLO??? ANYONE THERE???").text
        assert "already with an agent: the bot stays quiet" in page
        # A button the bot did not show is refused; nothing is added.
        assert sandbox_step(ada, page, button_id="menu_orders").status_code == 422

        case = json.loads(re.search(r'<textarea id="sandbox-case" readonly rows="5">([^<]*)<',
                                    page).group(1).replace("&#34;", '"').replace("&#39;", "'"))
        assert case["expected"]["handoff_by_turn"] == 2
        r = sandbox_step(ada, page, _action="/console/sandbox/export", expected_turn="2",
                         expected_team="general", note="VIP off hours taps the agent button")
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
        assert "attachment" in r.headers["content-disposition"]
        line = r.text
    assert line.endswith("\n") and line.count("\n") == 1
    exported = LogConversation.model_validate_json(line)
    assert [m.text for m in exported.messages] == ["hi", "Talk to an agent", "HELLO??? ANYONE THERE???"]
    assert exported.messages[1].button_id == "menu_agent"
    assert exported.customer.tier == "vip" and exported.language == "en"
    assert (exported.expected.handoff_by_turn, exported.expected.team) == (2, "general")
    # The exported case plays the same in the evaluation of the conversation suite.
    [played] = score_conversations(service.services.engine, [exported]).results
    assert (played.outcome.engine_turn, played.outcome.engine_team) == (2, "general")
    # In memory: no table changed (no conversation, decision, ticket, KPI or label), no message.
    assert row_counts(service) == before
    assert len(service.graph.received) == sent_before
