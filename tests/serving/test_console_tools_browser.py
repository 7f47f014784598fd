"""The ticket page's tools and the sandbox in a real browser (headless Chromium driven by
Selenium, as ``test_console_browser.py``), against the live service with the fake Graph API as
WhatsApp and its media endpoint: the customer panel, canned replies inserted filled in and sent,
an internal note in the timeline (nothing sent), a customer's photo, voice note, document and
over-limit video in place, and an admin trying the bot. Each is photographed at 1280×800 and
at a phone's 390 px width: ``reports/console/tools-*.png``. SQLite only (the HTTP tests of
``test_console_tools.py`` cover PostgreSQL), to keep the module short.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from tierline.serving.storage.models import Agent, EscalationLabel, OutboundMessage, Ticket, utcnow
from tierline.serving.tickets import create_agent
from tests.browser import needs_chromium
from tests.serving.conftest import Service, serve
from tests.serving.fakes import PHONE_NUMBER_ID, message
from tests.serving.test_console_browser import (  # noqa: F401 - the browser fixture
    SCREENSHOTS,
    browser,
    submit,
    wait_until,
)
from tests.serving.test_console_tools import PDF, PHOTO, VOICE, row_counts, say, transcript_lines

pytestmark = needs_chromium
CUSTOMER = "447700900861"
SIZES = {"1280": (1280, 800), "390": (390, 844)}


@pytest.fixture(scope="module")
def database_url(tmp_path_factory) -> str:
    """SQLite only: one service for the module."""
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'tierline.db'}"


@pytest.fixture(scope="module")
def service(analyzer, database_url, tmp_path_factory) -> Iterator[Service]:
    with serve(analyzer, database_url, media_cache_dir=tmp_path_factory.mktemp("media")) as running:
        yield running


def shots(driver, name: str, focus: str | None = None) -> None:
    """Photograph the page with a 1280×800 viewport and a phone's (390×844, mobile), scrolled
    to ``focus`` (an element id)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for label, (width, height) in SIZES.items():
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600})
        wait_until(driver, lambda d: d.execute_script("return window.innerWidth") == width)
        if focus:
            driver.execute_script(
                "document.getElementById(arguments[0]).scrollIntoView({block: 'start'});"
                "window.scrollBy(0, -8)", focus)
        # Nothing sticks out sideways on a phone: no horizontal scrolling.
        assert driver.execute_script(
            "return document.documentElement.scrollWidth") <= width, f"{name} at {width}px"
        driver.save_screenshot(str(SCREENSHOTS / f"tools-{name}-{label}.png"))
    driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def sign_in(driver, service: Service, token: str) -> None:
    from selenium.webdriver.common.by import By

    driver.delete_all_cookies()
    driver.get(f"{service.url}/console/login")
    driver.find_element(By.ID, "token").send_keys(token)
    submit(driver, driver.find_element(By.ID, "sign-in"))


@pytest.fixture(scope="module")
def ticket(service) -> int:
    """A general ticket of a customer with earlier tickets, an order number and media."""
    graph = service.graph
    graph.add_media("B-PHOTO", PHOTO, "image/png")
    graph.add_media("B-VOICE", VOICE, "audio/ogg; codecs=opus")
    graph.add_media("B-PDF", PDF, "application/pdf")
    graph.add_media("B-VIDEO", b"\x00" * 100, "video/mp4", declared_size=20 * 1024 * 1024)
    say(service, CUSTOMER, message(text="ND-482913 still hasnt arrived", customer=CUSTOMER))
    say(service, CUSTOMER, message(text="I want to talk to a human please", customer=CUSTOMER))
    ticket_id = service.wait_ticket(CUSTOMER)
    say(service, CUSTOMER, message("image", customer=CUSTOMER, media_id="B-PHOTO",
                                   mime_type="image/png", caption="the box arrived crushed"),
        message("audio", customer=CUSTOMER, media_id="B-VOICE", mime_type="audio/ogg; codecs=opus"),
        message("document", customer=CUSTOMER, media_id="B-PDF", mime_type="application/pdf",
                filename="receipt ND-482913.pdf"),
        message("video", customer=CUSTOMER, media_id="B-VIDEO", mime_type="video/mp4"))
    deadline = time.monotonic() + 15
    while transcript_lines(service, ticket_id) < 8:
        assert time.monotonic() < deadline, "media lines"
        time.sleep(0.05)
    with service.services.db.session() as s:  # the customer's earlier tickets
        now, conv = utcnow(), f"wa:{PHONE_NUMBER_ID}:{CUSTOMER}"
        old = [Ticket(conversation_id=conv, team=team, status="resolved", priority="normal",
                      priority_rank=1, context={"intent": intent}, csat=csat,
                      created_at=now.replace(year=now.year - 1, month=month), resolved_at=now)
               for team, intent, csat, month in (("general", "delivery_period", 5, 3),
                                                 ("general", "change_order", 3, 9),
                                                 ("billing", "get_refund", None, 6))]
        s.add_all(old)
    return ticket_id


def test_an_agent_uses_the_ticket_tools_in_the_browser(service, browser, ticket):
    from selenium.webdriver.common.by import By

    db = service.services.db
    token = create_agent(db, "Giulia", ["general"])
    with db.session() as s:
        first = s.scalars(select(Ticket.id).where(Ticket.team == "general", Ticket.id != ticket)
                          .order_by(Ticket.id)).first()
        agent_id = s.scalars(select(Agent.id).where(Agent.name == "Giulia")).one()
        s.add(EscalationLabel(ticket_id=first, agent_id=agent_id, escalation_needed="yes"))
    sign_in(browser, service, token)
    browser.get(f"{service.url}/console/tickets/{ticket}")

    # The customer panel: who, tier, order numbers, other tickets newest first, linked.
    panel = browser.find_element(By.ID, "customer-panel")
    assert browser.find_element(By.ID, "customer-name").text == "Giulia Rossi"
    assert browser.find_element(By.ID, "customer-phone").text == f"+{CUSTOMER}"
    assert browser.find_element(By.ID, "ctx-orders").text == "ND-482913"
    rows = panel.find_elements(By.CSS_SELECTOR, "#past-tickets li[data-ticket]")
    assert [r.find_element(By.TAG_NAME, "a").text for r in rows] == [
        f"#{first + 1}", f"#{first}"]
    assert "CSAT 5/5" in rows[1].text and "Label: yes" in rows[1].text
    assert browser.find_element(By.ID, "other-teams-tickets").text == "+1 more with other teams"
    shots(browser, "customer-panel", focus="customer-panel")

    # Canned replies: a click inserts the team's reply, filled in; it is sent like any reply.
    chips = {c.text: c for c in browser.find_elements(By.CSS_SELECTOR, "#canned button.chip")}
    assert list(chips)[:2] == ["Order delayed", "Order delivered, not received"]
    chips["Greeting"].click()
    box = browser.find_element(By.ID, "reply-text")
    greeting = "Hi Giulia Rossi, this is Giulia from the support team. I'm looking into it now."
    assert box.get_attribute("value") == greeting
    box.send_keys(" ")
    chips["Order delayed"].click()
    assert "order ND-482913: it is delayed" in box.get_attribute("value")
    assert not browser.find_element(By.ID, "canned-missing").is_displayed()
    shots(browser, "canned-replies", focus="reply-form")
    submit(browser, browser.find_element(By.ID, "send-reply"))
    assert browser.find_element(By.ID, "flash").text == "Reply sent."
    sent = service.graph.wait_to(CUSTOMER, 3)  # handoff message, "unsupported" none, the reply
    assert sent[-1]["text"]["body"].startswith(greeting)

    # An internal note: in the timeline, marked internal; nothing reaches WhatsApp.
    sent_before = len(service.graph.received)
    with db.session() as s:
        outbox_before = s.scalar(select(func.count()).select_from(OutboundMessage))
    browser.find_element(By.ID, "note-text").send_keys("Courier confirmed the box was damaged: refund approved.")
    submit(browser, browser.find_element(By.ID, "add-note"))
    assert browser.find_element(By.ID, "flash").text.startswith("Note added")
    note = browser.find_elements(By.CSS_SELECTOR, "#transcript .bubble.note")[-1]
    assert "Internal note · Giulia" in note.text and "refund approved" in note.text
    time.sleep(0.3)  # the sender polls every 10 ms: anything queued would have gone
    assert len(service.graph.received) == sent_before
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(OutboundMessage)) == outbox_before
    browser.execute_script("arguments[0].id = 'the-note'", note)
    shots(browser, "internal-note", focus="the-note")

    # The customer's media in place: the photo shown, the voice note playable, the document a
    # download, the video over 16 MB a notice.
    image = browser.find_element(By.CSS_SELECTOR, "figure.media-image img")
    wait_until(browser, lambda d: d.execute_script(
        "return arguments[0].complete && arguments[0].naturalWidth", image) == 240)
    audio = browser.find_element(By.CSS_SELECTOR, "figure.media-audio audio")
    assert audio.get_attribute("controls") is not None
    assert browser.execute_script(
        "return fetch(arguments[0]).then(r => r.status)", audio.get_attribute("src")) == 200
    link = browser.find_element(By.CSS_SELECTOR, "figure.media-document a.download")
    assert link.text == "receipt ND-482913.pdf"
    notice = browser.find_element(By.CSS_SELECTOR, "figure.media-video .media-notice").text
    assert notice.startswith("Video · 20.0 MB (limit 16.0 MB): Over the size limit")
    browser.execute_script("arguments[0].id = 'first-media'",
                           browser.find_element(By.CSS_SELECTOR, "figure.media-image"))
    shots(browser, "media", focus="first-media")
    errors = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []


def test_an_admin_tries_the_bot_in_the_browser(service, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    token = create_agent(service.services.db, "Ada", [], admin=True)
    before, sent_before = row_counts(service), len(service.graph.received)
    sign_in(browser, service, token)
    submit(browser, browser.find_element(By.ID, "nav-sandbox"))
    assert browser.current_url.endswith("/console/sandbox")
    Select(browser.find_element(By.ID, "sandbox-tier")).select_by_value("vip")
    Select(browser.find_element(By.ID, "sandbox-hours")).select_by_value("closed")
    browser.find_element(By.ID, "sandbox-text").send_keys("ciao")
    submit(browser, browser.find_element(By.ID, "sandbox-send"))
    first = browser.find_element(By.CSS_SELECTOR, '[data-analysis="1"]')
    assert "the bot answers" in first.text and "language IT" in first.text
    assert browser.find_elements(By.CSS_SELECTOR, "#sandbox-turns .reply-buttons button")
    browser.find_element(By.ID, "sandbox-text").send_keys(
        "SONO DUE SETTIMANE CHE ASPETTO IL MIO ORDINE!!! VERGOGNA")
    submit(browser, browser.find_element(By.ID, "sandbox-send"))
    second = browser.find_element(By.CSS_SELECTOR, '[data-analysis="2"]')
    assert "hand off to general" in second.text and "outside business hours" in second.text
    assert second.find_element(By.CSS_SELECTOR, ".cues").text.startswith("(Cues:")
    case = json.loads(browser.find_element(By.ID, "sandbox-case").get_attribute("value"))
    assert case["customer"]["tier"] == "vip" and case["expected"]["handoff_by_turn"] == 2
    assert [m["text"] for m in case["messages"]][1].startswith("SONO DUE SETTIMANE")
    shots(browser, "sandbox", focus="sandbox-turns")
    browser.execute_script("arguments[0].id = 'sandbox-last'", second)
    shots(browser, "sandbox-turn", focus="sandbox-export")
    assert row_counts(service) == before and len(service.graph.received) == sent_before
    errors = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []
