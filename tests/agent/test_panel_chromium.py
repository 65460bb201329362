"""The agent panel in a real headless Chromium (Debian's chromium + chromium-driver).

The page is served by the agent API and driven like an agent would: the CTI opens
it with the token and the extension in the URL fragment, the agent starts a payment,
watches the card number being keyed (dots and a count, never digits), restarts the
field, and reads the result. Screenshots go to the test artifacts directory.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.agent.harness import ACME_TOKEN, TEST_PANS, AgentStack
from tests.agent.peer import UntilBreak
from tests.esl.peer import Keys

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("PAYIVR_TEST_ARTIFACTS", REPO / "build" / "test-artifacts"))

pytestmark = pytest.mark.timeout(90)


def _skip_reason() -> str | None:
    if not (Path(CHROMIUM).exists() and Path(DRIVER).exists()):
        return "chromium / chromium-driver not installed (apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install selenium)"
    return None


@pytest.fixture()
def browser(tmp_path: Path) -> Iterator[Any]:
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium Manager download
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1000,1000",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.set_page_load_timeout(20)
    yield driver
    driver.quit()


def shot(driver: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"agent-panel-{name}.png"
    driver.save_screenshot(str(path))
    print(f"screenshot: {path}")
    return path


def wait_until(driver: Any, predicate: Any, timeout: float = 15.0) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(predicate)


def cell(driver: Any, field: str, css: str) -> str:
    from selenium.webdriver.common.by import By

    text: str = driver.find_element(By.CSS_SELECTOR, f'tr[data-field="{field}"] {css}').text
    return text


def test_panel_shows_progress_never_digits(
    tmp_path: Path, redis_url: str, browser: Any, record_property: Any
) -> None:
    from selenium.webdriver.common.by import By

    stack = AgentStack(tmp_path, redis_url, live_digit_count=True).start()  # per-key progress
    try:
        fake, done = stack.call(
            [UntilBreak("4111"), Keys("4111111111111111#"), Keys("1230"), Keys("123")],
            key_delay_s=0.12,
        )
        stack.find_call(agent="1001")
        browser.get(f"{stack.base}/panel/#token={ACME_TOKEN}&agent=1001")
        wait_until(
            browser, lambda d: "Call with extension 1001" in d.find_element(By.ID, "call-line").text
        )
        assert "token" not in browser.current_url  # the fragment is dropped once used
        browser.find_element(By.ID, "order").send_keys("W5001")
        browser.find_element(By.ID, "amount").send_keys("1250")
        browser.find_element(By.ID, "start-button").click()

        # First attempt: the caller keys four digits, the agent restarts the field.
        wait_until(browser, lambda d: "4 digits" in cell(d, "card_number", ".count"))
        restart = browser.find_element(By.CSS_SELECTOR, 'button.restart[data-field="card_number"]')
        assert restart.is_enabled()
        restart.click()
        wait_until(browser, lambda d: "attempt 2" in cell(d, "card_number", ".detail"))

        # Second attempt: progress appears while the digits are keyed.
        wait_until(browser, lambda d: "9 digits" in cell(d, "card_number", ".count"))
        assert cell(browser, "card_number", ".st") == "caller is keying"
        progress_shot = shot(browser, "progress")
        page_while_keying = browser.page_source

        wait_until(browser, lambda d: d.find_element(By.ID, "result-code").text == "APPROVED", 20)
        assert cell(browser, "card_number", ".st") == "valid"
        assert "visa" in cell(browser, "card_number", ".detail")
        assert "16 digits" in cell(browser, "card_number", ".count")
        assert "1111" in browser.find_element(By.ID, "result-card").text
        browser.set_window_size(1000, 1400)  # the whole panel, for the docs
        result_shot = shot(browser, "result")
        record_property("screenshots", f"{progress_shot} {result_shot}")

        for page in (page_while_keying, browser.page_source):
            for pan in TEST_PANS:
                assert pan[:6] not in page, "no card digits in the panel"
        logs = browser.get_log("browser") if hasattr(browser, "get_log") else []
        assert not [entry for entry in logs if entry.get("level") == "SEVERE"], logs
        stack.on_loop(fake.hang_up_now)
        done.result(10)
        wait_until(browser, lambda d: "ended" in d.find_element(By.ID, "call-line").text)
        assert fake.errors == [] and fake.leaks == []
    finally:
        time.sleep(0.05)
        stack.close()
