"""Accessibility and small screens, in a real headless Chromium: axe-core (vendored, run inside
each page) finds no violation on any console page or on the survivor page, at a desktop width
and at 390 px (a phone), and no page scrolls sideways at 390 px.

With BLINDMATCH_CONSOLE_SCREENSHOTS=1 it also writes the README's screenshots to
bench/results/ (console_queue.png, console_case.png, console_queue_390.png, survivor_page.png).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from a11y import axe_violations, describe
from console_fixtures import PASSWORDS, Scenario, start_scenario, stop_scenario
from survivor_harness import CHROMIUM_FLAGS, LoopThread, SurvivorHub, browser_missing
from test_console_browser import more_cases

pytestmark = pytest.mark.browser

RESULTS = Path(__file__).resolve().parent.parent / "bench" / "results"
WIDTHS = {"desktop": (1280, 900), "phone": (390, 844)}
SCREENSHOTS = bool(os.environ.get("BLINDMATCH_CONSOLE_SCREENSHOTS"))


@pytest.fixture(params=list(WIDTHS))
def driver(request: pytest.FixtureRequest) -> Iterator[Any]:
    missing = browser_missing()
    if missing:
        pytest.skip(missing)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    width, height = WIDTHS[request.param]
    with tempfile.TemporaryDirectory(prefix="bm-a11y-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = shutil.which("chromium") or shutil.which("chromium-browser") or ""
        for flag in CHROMIUM_FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={profile}")
        options.add_argument(f"--window-size={width},{height}")
        drv = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
        drv.set_page_load_timeout(60)
        # the layout viewport is exactly the phone's width, as on the device
        drv.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600},
        )
        drv.width_name = request.param
        try:
            yield drv
        finally:
            drv.quit()


def check_page(driver: Any, what: str) -> None:
    violations = axe_violations(driver)
    assert not violations, f"{what} at {driver.width_name}:\n{describe(violations)}"
    overflow = driver.execute_script(
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"{what} at {driver.width_name} scrolls sideways by {overflow}px"


def sign_in(driver: Any, sc: Scenario, rid: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(sc.console_url + "/login")
    WebDriverWait(driver, 30).until(ec.presence_of_element_located((By.ID, "reviewer_id")))
    driver.find_element(By.ID, "reviewer_id").send_keys(rid)
    driver.find_element(By.ID, "password").send_keys(PASSWORDS[rid])
    driver.find_element(By.CSS_SELECTOR, "button[type=submit].primary").click()
    WebDriverWait(driver, 60).until(lambda d: "/login" not in d.current_url)


def test_console_pages_have_no_axe_violations(tmp_path: Path, driver: Any) -> None:
    from selenium.webdriver.common.by import By

    missing = browser_missing()
    if missing:
        pytest.skip(missing)
    loop = LoopThread()
    sc = loop.run(start_scenario(tmp_path))
    try:
        loop.run(more_cases(sc))
        driver.get(sc.console_url + "/login")
        check_page(driver, "sign-in page")
        sign_in(driver, sc, "admin-1")
        assert driver.title.startswith("Review queue")
        check_page(driver, "queue")
        if SCREENSHOTS:
            RESULTS.mkdir(parents=True, exist_ok=True)
            phone = driver.width_name != "desktop"
            name = "console_queue_390.png" if phone else "console_queue.png"
            driver.save_screenshot(str(RESULTS / name))
        # every case in the queue, and the other pages an admin sees
        links = [a.get_attribute("href") for a in driver.find_elements(By.CSS_SELECTOR,
                 "tbody a[href*='/cases/']")]  # fmt: skip
        assert len(links) >= 3
        for link in links:
            driver.get(link)
            check_page(driver, f"case page {link.rsplit('/', 1)[1][:8]}")
        driver.get(f"{sc.console_url}/cases/{sc.case.case_ref.hex()}")
        if SCREENSHOTS and driver.width_name == "desktop":
            driver.save_screenshot(str(RESULTS / "console_case.png"))
        for path, what in (("/log", "decision log"), ("/reports", "reports"),
                           ("/admin/reviewers", "reviewers")):  # fmt: skip
            driver.get(sc.console_url + path)
            check_page(driver, what)
        driver.get(sc.console_url + "/cases/" + "0" * 32)
        check_page(driver, "not-found page")
    finally:
        loop.run(stop_scenario(sc))
        loop.close()


def test_survivor_page_has_no_axe_violations(tmp_path: Path, driver: Any) -> None:
    hub = SurvivorHub(tmp_path).start()
    try:
        driver.get(hub.url)
        check_page(driver, "survivor page")
        if SCREENSHOTS and driver.width_name == "desktop":
            RESULTS.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(str(RESULTS / "survivor_page.png"))
    finally:
        hub.stop()
