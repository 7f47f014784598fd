"""The agent console in a real browser: headless Chromium (Debian's ``chromium`` and
``chromium-driver``, installed by ``make test``) driven by Selenium against the live service,
with the fake Graph API as WhatsApp. An agent signs in, sees the queue (and a new escalation
arrive without reloading), opens the ticket, replies (the message reaches the Graph API),
labels, resolves, switches to Italian and signs out. Screenshots go to ``reports/console/``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from tierline.serving.storage.models import EscalationLabel, Ticket
from tierline.serving.tickets import create_agent
from tests.browser import headless_chromium, needs_chromium
from tests.serving.fakes import message

pytestmark = needs_chromium
SCREENSHOTS = Path(__file__).resolve().parents[2] / "reports" / "console"


@pytest.fixture(scope="module")
def browser() -> Iterator:
    yield from headless_chromium()


def wait_until(driver, condition, timeout: float = 15.0):
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.1, ignored_exceptions=(
        NoSuchElementException, StaleElementReferenceException)).until(condition)


def submit(driver, element) -> None:
    """Click a form's button (or pick a self-submitting option) and wait for the next page."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions

    from selenium.common.exceptions import WebDriverException

    page = driver.find_element(By.TAG_NAME, "html")
    element() if callable(element) else element.click()
    stale = expected_conditions.staleness_of(page)

    def left(d) -> bool:
        try:
            return stale(d)
        except WebDriverException as exc:
            # Chromium sometimes answers "unhandled inspector error" about the old page while
            # it is being torn down: not an answer yet, ask again.
            if "inspector error" in str(exc):
                return False
            raise

    wait_until(driver, left)
    wait_until(driver, lambda d: d.execute_script("return document.readyState") == "complete")


def shot(driver, backend: str, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SCREENSHOTS / f"{backend}-{name}.png"))


def test_agent_takes_an_escalation_end_to_end_in_the_browser(service, browser, database_url):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    backend = "postgres" if database_url.startswith("postgres") else "sqlite"
    db = service.services.db
    token = create_agent(db, "Giulia", ["general"])
    first, second = "447700900701", "447700900702"
    service.say(message(text="I want to talk to a person, the bot can't help", customer=first))
    first_ticket = service.wait_ticket(first)
    service.graph.wait_to(first, 1)  # the handoff message went out

    # Sign in.
    browser.get(f"{service.url}/console/login")
    browser.find_element(By.ID, "token").send_keys(token)
    submit(browser, browser.find_element(By.ID, "sign-in"))
    assert browser.current_url.endswith("/console/queue")
    assert browser.find_element(By.ID, "agent-name").text == "Giulia"
    assert "tierline_console" in {c["name"] for c in browser.get_cookies()}
    assert browser.execute_script("return document.cookie").find("tierline_console") < 0  # HTTP-only
    assert browser.find_elements(By.CSS_SELECTOR, f'tr[data-ticket="{first_ticket}"]')
    shot(browser, backend, "01-queue")

    # A new escalation appears without reloading; the tab title announces it.
    browser.execute_script("window.__sameDocument = true")
    service.say(message(text="operator please", customer=second))
    second_ticket = service.wait_ticket(second)
    wait_until(browser, lambda d: d.find_elements(By.CSS_SELECTOR, f'tr[data-ticket="{second_ticket}"]'))
    assert browser.execute_script("return window.__sameDocument") is True  # no reload happened
    assert browser.title.startswith("(1) Queue")
    shot(browser, backend, "02-queue-new-ticket")

    # Open the ticket: transcript bubbles and the context panel.
    submit(browser, browser.find_element(By.CSS_SELECTOR, f'a[href="/console/tickets/{first_ticket}"]'))
    bubbles = browser.find_elements(By.CSS_SELECTOR, "#transcript .bubble")
    assert "customer" in bubbles[0].get_attribute("class")
    assert "talk to a person" in bubbles[0].text
    assert any("bot" in b.get_attribute("class") for b in bubbles)
    assert browser.find_element(By.ID, "ctx-team").text == "general"
    shot(browser, backend, "03-ticket")

    # Reply: it reaches WhatsApp (the fake Graph API).
    browser.find_element(By.ID, "reply-text").send_keys("Ciao, sono Giulia: ci penso io.")
    submit(browser, browser.find_element(By.ID, "send-reply"))
    assert browser.find_element(By.ID, "flash").text == "Reply sent."
    sent = service.graph.wait_to(first, 2)
    assert sent[-1]["type"] == "text" and sent[-1]["text"]["body"] == "Ciao, sono Giulia: ci penso io."
    assert "agent" in browser.find_elements(By.CSS_SELECTOR, "#transcript .bubble")[-1].get_attribute("class")

    # Label with one click on Save (the form comes pre-filled; the agent changes two fields).
    browser.find_element(By.ID, "needed-earlier").click()
    Select(browser.find_element(By.ID, "corrected-intent")).select_by_value("contact_human_agent")
    browser.find_element(By.ID, "label-note").send_keys("asked twice before the handoff")
    submit(browser, browser.find_element(By.ID, "save-label"))
    assert browser.find_element(By.ID, "flash").text == "Label saved."
    with db.session() as s:
        [label] = s.scalars(select(EscalationLabel).where(EscalationLabel.ticket_id == first_ticket)).all()
        assert (label.escalation_needed, label.corrected_intent, label.note) == (
            "earlier", "contact_human_agent", "asked twice before the handoff")
    assert browser.find_element(By.ID, "needed-earlier").is_selected()
    shot(browser, backend, "04-labelled")

    # Resolve.
    submit(browser, browser.find_element(By.ID, "resolve"))
    assert browser.find_element(By.ID, "ticket-status").text == "resolved"
    with db.session() as s:
        assert s.get(Ticket, first_ticket).status == "resolved"
    assert not browser.find_elements(By.ID, "reply-form")
    shot(browser, backend, "05-resolved")

    # One click: the second ticket's label form is pre-filled with the model's verdict.
    browser.get(f"{service.url}/console/tickets/{second_ticket}")
    submit(browser, browser.find_element(By.ID, "save-label"))
    assert browser.find_element(By.ID, "flash").text == "Label saved."
    with db.session() as s:
        context = s.get(Ticket, second_ticket).context
        [label] = s.scalars(select(EscalationLabel).where(EscalationLabel.ticket_id == second_ticket)).all()
    threshold = service.services.engine.analyzer.config.frustration_threshold
    assert (label.escalation_needed, label.corrected_intent, label.frustrated) == (
        "yes", context["intent"], context["frustration"] >= threshold)
    browser.get(f"{service.url}/console/tickets/{first_ticket}")

    # Italian, chosen by the agent: the selector submits itself and the page comes back translated.
    submit(browser, lambda: Select(browser.find_element(By.ID, "language")).select_by_value("it"))
    assert browser.find_element(By.ID, "nav-queue").text == "Coda"
    assert browser.find_element(By.ID, "ticket-status").text == "risolto"
    assert browser.find_element(By.ID, "logout").text == "Esci"
    shot(browser, backend, "06-italian")

    browser.get(f"{service.url}/console/kpis")
    assert len(browser.find_elements(By.CSS_SELECTOR, "svg.chart")) == 8
    shot(browser, backend, "07-kpis")

    # Sign out: the cookie is gone and the queue asks for sign-in again.
    submit(browser, browser.find_element(By.ID, "logout"))
    assert browser.current_url.endswith("/console/login")
    assert "tierline_console" not in {c["name"] for c in browser.get_cookies()}
    browser.get(f"{service.url}/console/queue")
    assert browser.current_url.endswith("/console/login")
    shot(browser, backend, "08-signed-out")
    # No script error and no Content-Security-Policy violation on any page along the way.
    errors = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []
