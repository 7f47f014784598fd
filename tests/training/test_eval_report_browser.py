"""The evaluation report in a real browser: headless Chromium (Debian's ``chromium`` and
``chromium-driver``) opens ``report.html`` from disk (file://), every section renders, the
disagreement list links to transcripts in the same file, nothing is fetched from anywhere and
the console stays clean. The screenshot goes to ``reports/eval/report.png``.

The log is the hand-written four-language fixture (12 conversations, every customer line
labelled with its intent, four unreadable lines).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tierline.nlu.engine import TurnEngine
from tierline.training.batch_eval import evaluate_conversations, stack_sources
from tests.browser import headless_chromium, needs_chromium

pytestmark = needs_chromium
ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "chat_logs" / "conversations.jsonl"
SCREENSHOT = ROOT / "reports" / "eval" / "report.png"
SECTIONS = ("summary", "models", "input", "languages", "confusion", "reliability",
            "reasons-over-time", "handoffs", "disagreements", "transcripts", "conversations")


@pytest.fixture(scope="module")
def report_file(analyzer, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("eval")
    evaluate_conversations(FIXTURE, TurnEngine.shipped(analyzer=analyzer), out,
                           sources=stack_sources())
    return out / "report.html"


@pytest.fixture(scope="module")
def browser():
    yield from headless_chromium()


def test_the_report_renders_offline_with_linked_transcripts(report_file, browser):
    from selenium.webdriver.common.by import By

    html = report_file.read_text(encoding="utf-8")
    assert "http://" not in html and "https://" not in html and "<script" not in html
    browser.get(report_file.as_uri())
    for ident in SECTIONS:
        section = browser.find_element(By.ID, ident)
        assert section.is_displayed() and section.size["height"] > 40, ident
    # Charts are inline SVG that drew something.
    for ident in ("languages", "reliability", "reasons-over-time", "handoffs"):
        svgs = browser.find_elements(By.CSS_SELECTOR, f"#{ident} svg")
        assert svgs and all(s.size["width"] > 100 for s in svgs), ident
    assert browser.find_elements(By.CSS_SELECTOR, "#confusion table.matrix td[title]")
    assert "conversations.jsonl, line" not in browser.find_element(By.ID, "input").text
    assert [row.text.split()[:2] for row in
            browser.find_elements(By.CSS_SELECTOR, "#input tbody tr")] == [
        ["conversations.jsonl", "5"], ["conversations.jsonl", "9"],
        ["conversations.jsonl", "12"], ["conversations.jsonl", "14"]]
    models = browser.find_element(By.ID, "models").text
    assert "nlu@sha256:" in models and "nlu-multilingual@sha256:" in models
    # Every link stays in the file, and each disagreement opens its transcript.
    targets = browser.execute_script(
        "return [...document.querySelectorAll('[href],[src]')]"
        ".map(e => e.getAttribute('href') || e.getAttribute('src'))")
    assert targets and all(t.startswith("#") for t in targets)
    ids = set(browser.execute_script("return [...document.querySelectorAll('[id]')].map(e => e.id)"))
    assert {t[1:] for t in targets} <= ids
    links = browser.find_elements(By.CSS_SELECTOR, "#disagreements tbody a")
    assert links
    first = links[0].get_attribute("href").split("#")[1]
    links[0].click()
    assert browser.execute_script("return document.querySelector(':target').id") == first
    transcript = browser.find_element(By.ID, first)
    assert transcript.find_elements(By.CSS_SELECTOR, ".line.customer")
    assert "P(escalate)" in transcript.text
    assert browser.execute_script("return performance.getEntriesByType('resource').length") == 0
    assert [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "WARNING")] == []
    browser.execute_script("window.scrollTo(0, 0); location.hash = ''")
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1360, min(height, 14000))
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SCREENSHOT))
    assert SCREENSHOT.stat().st_size > 50_000
