"""Headless Chromium for the tests that look at pages: Debian's ``chromium`` and
``chromium-driver`` (installed by ``make test``), driven by Selenium; the console's JS errors
and CSP violations are kept for the tests to read (``driver.get_log("browser")``)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
#: Skips a module when the browser is not installed.
needs_chromium = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="headless Chromium not installed: apt-get install chromium chromium-driver (make test does)")


def headless_chromium() -> Iterator:
    """A 1360x1000 headless Chromium (British English), quit after use."""
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service as DriverService

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1360,1000", "--lang=en-GB"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # JS errors, CSP violations
    driver = webdriver.Chrome(service=DriverService(CHROMEDRIVER), options=options)
    driver.implicitly_wait(0)
    yield driver
    driver.quit()
