"""The live console in headless Chromium (Debian's ``chromium`` and ``chromium-driver``) against
the running service: the queue gains a row when a customer escalates and the ticket page a
bubble when the customer writes, both without a reload; another agent's claim shows on the
page; times are in the browser's time zone; the Italian console words the reasons and intents
in Italian; the sound toggle is off by default and remembered.

Screenshots at 1280×800 and at 390 px wide (a phone) go to ``reports/console/``. SQLite only:
the browser side does not depend on the database, and ``test_console_live.py`` runs the
event stream on both.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import datetime
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import select

from tierline.nlu.reasons import from_stored
from tierline.serving.console.wording import intent_name, reason_sentence
from tierline.serving.storage.models import MessageLog, Ticket, as_utc
from tierline.serving.tickets import create_agent
from tests.serving.fakes import PHONE_NUMBER_ID, message
from tests.browser import chromium, needs_chromium
from tests.serving.test_console_browser import SCREENSHOTS, submit, wait_until

pytestmark = needs_chromium
#: The browser's time zone: +05:30 all year, so no UTC clock time passes for a local one.
ZONE = "Asia/Kolkata"


@pytest.fixture(scope="module")
def database_url(tmp_path_factory) -> str:
    """SQLite only (see the module's docstring)."""
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'tierline.db'}"


@pytest.fixture(scope="module")
def browser() -> Iterator:
    with chromium("1280,800", {**os.environ, "TZ": ZONE}) as driver:
        yield driver


def shots(driver, name: str) -> None:
    """The page at 1280×800 and as a 390-px-wide phone (its screen, and the whole page)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": 1280, "height": 800, "deviceScaleFactor": 1, "mobile": False})
    driver.save_screenshot(str(SCREENSHOTS / f"live-{name}-1280x800.png"))
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": True})
    # Nothing may stick out sideways on a phone.
    overflow = driver.execute_script(
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth")
    driver.save_screenshot(str(SCREENSHOTS / f"live-{name}-390.png"))
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": 390, "height": min(height, 4000), "deviceScaleFactor": 1, "mobile": True})
    driver.save_screenshot(str(SCREENSHOTS / f"live-{name}-390-full.png"))
    driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    assert overflow <= 0, f"{name}: {overflow} px wider than a 390-px screen"


def no_reload_since_marked(driver) -> bool:
    return driver.execute_script("return window.__sameDocument === true")


def test_queue_and_ticket_change_live_and_read_in_the_agents_language(service, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    db = service.services.db
    token = create_agent(db, "Lia", ["general", "billing"])
    first, second = "447700909201", "447700909202"
    service.say(message(text="I was charged twice for my order and I want my money back NOW!!!",
                        customer=first))
    first_ticket = service.wait_ticket(first)
    service.graph.wait_to(first, 1)

    browser.get(f"{service.url}/console/login")
    browser.find_element(By.ID, "token").send_keys(token)
    submit(browser, browser.find_element(By.ID, "sign-in"))
    sound = browser.find_element(By.ID, "notify-sound")
    assert not sound.is_selected()  # off by default
    wait_until(browser, lambda d: d.find_element(By.ID, "live").text == "Live")

    # A customer escalates: the row arrives without a reload, the tab title counts it.
    browser.execute_script("window.__sameDocument = true")
    service.say(message(text="operator please", customer=second))
    second_ticket = service.wait_ticket(second)
    row = wait_until(browser, lambda d: d.find_element(
        By.CSS_SELECTOR, f'tr[data-ticket="{second_ticket}"]'), timeout=3)
    assert no_reload_since_marked(browser)
    assert "new" in row.get_attribute("class")
    assert browser.title == "(1) Queue · tierline console"
    shots(browser, "queue-en")

    # The ticket page: reasons as English sentences; a new customer message arrives live.
    submit(browser, browser.find_element(By.CSS_SELECTOR, f'a[href="/console/tickets/{first_ticket}"]'))
    with db.session() as s:
        context = s.get(Ticket, first_ticket).context
    reasons = from_stored(context.get("reason_codes"), context.get("reasons"))
    shown = [li.text for li in browser.find_elements(By.CSS_SELECTOR, "#ctx-reasons li")]
    assert shown == [reason_sentence(r, "en") for r in reasons] and shown
    assert browser.find_element(By.ID, "ctx-intent").text == intent_name(context["intent"], "en")
    wait_until(browser, lambda d: d.find_element(By.ID, "live").text == "Live")
    browser.execute_script("window.__sameDocument = true")
    service.say(message(text="Hello?? Is anyone reading this?", customer=first))
    bubble = wait_until(browser, lambda d: next((b for b in d.find_elements(
        By.CSS_SELECTOR, "#transcript .bubble.customer") if "anyone reading" in b.text), False),
        timeout=3)
    assert no_reload_since_marked(browser)
    # Its time in the browser's zone (+05:30), not in UTC.
    with db.session() as s:
        at = as_utc(s.scalars(select(MessageLog.at).where(
            MessageLog.conversation_id == f"wa:{PHONE_NUMBER_ID}:{first}",
            MessageLog.text == "Hello?? Is anyone reading this?")).one())
    local = at.astimezone(ZoneInfo(ZONE))
    shown_time = bubble.find_element(By.TAG_NAME, "time").text
    clock = (local.strftime("%H:%M"), f"{local.hour % 12 or 12}:{local.minute:02d}")  # 24 h, 12 h
    assert any(c in shown_time for c in clock) and "UTC" not in shown_time, shown_time

    # Another agent claims it: the page says so without a reload.
    other = create_agent(db, "Omar", ["billing", "general"])
    assert httpx.post(f"{service.url}/v1/agent/tickets/{first_ticket}/claim",
                      headers={"Authorization": f"Bearer {other}"}).status_code == 200
    wait_until(browser, lambda d: d.find_element(By.ID, "ticket-status").text == "claimed", timeout=3)
    assert browser.find_element(By.ID, "live-notice").is_displayed()
    assert no_reload_since_marked(browser)
    shots(browser, "ticket-en")

    # Italian: reasons as Italian sentences, intents by their Italian names.
    submit(browser, lambda: Select(browser.find_element(By.ID, "language")).select_by_value("it"))
    shown = [li.text for li in browser.find_elements(By.CSS_SELECTOR, "#ctx-reasons li")]
    assert shown == [reason_sentence(r, "it") for r in reasons]
    assert shown != [reason_sentence(r, "en") for r in reasons]
    assert browser.find_element(By.ID, "ctx-intent").text == intent_name(context["intent"], "it")
    assert browser.find_element(By.ID, "ticket-status").text == "in carico"
    assert datetime.now(ZoneInfo(ZONE)).strftime("%Y") in browser.find_element(
        By.CSS_SELECTOR, "#transcript time").text
    shots(browser, "ticket-it")

    browser.get(f"{service.url}/console/queue")
    with db.session() as s:
        second_context = s.get(Ticket, second_ticket).context
    # (The rows are rendered again when the page's event stream opens: read them afresh.)
    cell = lambda name: browser.find_element(  # noqa: E731
        By.CSS_SELECTOR, f'tr[data-ticket="{second_ticket}"] td.{name}').text
    wait_until(browser, lambda d: cell("intent") == intent_name(second_context["intent"], "it"))
    wait_until(browser, lambda d: cell("reasons").startswith(
        "Il cliente ha chiesto di parlare con un operatore."))
    shots(browser, "queue-it")

    # The sound toggle is remembered.
    browser.find_element(By.ID, "notify-sound").click()
    assert browser.execute_script("return localStorage.getItem('tierline.sound')") == "1"
    browser.refresh()
    assert browser.find_element(By.ID, "notify-sound").is_selected()
    browser.find_element(By.ID, "notify-sound").click()  # off again for whoever comes next

    errors = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []
