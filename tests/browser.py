"""Headless Chromium for the tests that look at pages: Debian's ``chromium`` and
``chromium-driver`` (installed by ``make test``), driven by Selenium; the console's JS errors
and CSP violations are kept for the tests to read (``driver.get_log("browser")``)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
#: Skips a module when the browser is not installed.
needs_chromium = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="headless Chromium not installed: apt-get install chromium chromium-driver (make test does)")


@contextmanager
def chromium(window_size: str = "1360,1000", env: dict[str, str] | None = None) -> Iterator:
    """Headless Chromium (British English) under Selenium, quit after use (``env``: its
    environment, e.g. a time zone ``TZ``)."""
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service as DriverService

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={window_size}", "--lang=en-GB"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # JS errors, CSP violations
    driver = webdriver.Chrome(service=DriverService(CHROMEDRIVER, env=env), options=options)
    driver.implicitly_wait(0)
    try:
        yield driver
    finally:
        driver.quit()


def headless_chromium() -> Iterator:
    """A 1360x1000 :func:`chromium` for a module-scoped fixture."""
    with chromium() as driver:
        yield driver
