"""The reviewer console in a real headless Chromium (Debian's chromium + chromium-driver via
selenium): sign in, the queue, a case whose picture is blurred until revealed, a decision that
shows in the case's history and the decision log and reaches the holder as a dispute, and an
auditor refused the queue.

With BLINDMATCH_CONSOLE_SCREENSHOTS=1 the test also writes bench/results/console_queue.png and
console_case.png (the case page, picture blurred) for the README.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from console_fixtures import (
    PASSWORDS,
    Scenario,
    drain,
    high_frequency_energy,
    start_scenario,
    stop_scenario,
)
from survivor_harness import CHROMIUM_FLAGS as FLAGS
from survivor_harness import LoopThread, browser_missing

pytestmark = pytest.mark.browser

RESULTS = Path(__file__).resolve().parent.parent / "bench" / "results"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[LoopThread, Scenario]]:
    missing = browser_missing()
    if missing:
        pytest.skip(missing)
    loop = LoopThread()
    sc = loop.run(start_scenario(tmp_path))
    try:
        yield loop, sc
    finally:
        loop.run(stop_scenario(sc))
        loop.close()


@pytest.fixture
def driver() -> Iterator[Any]:
    if browser_missing():
        pytest.skip(browser_missing() or "")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    with tempfile.TemporaryDirectory(prefix="bm-console-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = shutil.which("chromium") or shutil.which("chromium-browser") or ""
        for flag in FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={profile}")
        options.add_argument("--window-size=1180,860")
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        drv = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
        drv.set_page_load_timeout(60)
        try:
            yield drv
        finally:
            drv.quit()


def fetch(url: str, cookie: str) -> tuple[int, bytes]:
    req = urllib.request.Request(url, headers={"Cookie": f"bm_console={cookie}"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def sign_in(driver: Any, sc: Scenario, rid: str) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.ID, "reviewer_id").send_keys(rid)
    driver.find_element(By.ID, "password").send_keys(PASSWORDS[rid])
    driver.find_element(By.CSS_SELECTOR, "button[type=submit].primary").click()


def image_loaded(driver: Any) -> bool:
    return bool(
        driver.execute_script(
            "const i = document.getElementById('case-media');"
            "return i && i.complete && i.naturalWidth > 0;"
        )
    )


async def more_cases(sc: Scenario) -> None:
    """A fuller queue for the README's screenshot: an appeal, a re-review, a local match."""
    d = sc.platform.decisions
    release = {"provenance": "moderator-confirmed", "signal": "pdq", "categories": ["ncii"]}
    appealed = await d.open_case(
        content_ref="upload-17", source="peer", holder="hub", item_ref=os.urandom(16), band=16,
        variant="flip_h", release=release, allowlisted=False,
    )  # fmt: skip
    assert appealed is not None
    await d.decide(appealed.case_ref, "actioned", "rev-2", "the reported picture, mirrored")
    await d.open_appeal(appealed.case_ref, "this is my own photo, posted with consent")
    disputed = await d.open_case(
        content_ref="upload-23", source="peer", holder="hub", item_ref=os.urandom(16), band=31,
        variant="trimmed/identity", release={**release, "provenance": "peer-sourced"},
        allowlisted=False,
    )  # fmt: skip
    assert disputed is not None
    await sc.platform.db.execute(
        "UPDATE cases SET needs_rereview = 1 WHERE case_ref = ?", disputed.case_ref
    )
    await d.open_case(
        content_ref="upload-31", source="local", holder="platform", item_ref=os.urandom(16),
        band=8, variant="rotate180", release={**release, "provenance": "protected-source"},
        allowlisted=False,
    )  # fmt: skip
    sc.clock.advance(2400)


def test_review_in_chromium(world: tuple[LoopThread, Scenario], driver: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    loop, sc = world
    wait = WebDriverWait(driver, 30)
    ref = sc.case.case_ref.hex()

    screenshots = bool(os.environ.get("BLINDMATCH_CONSOLE_SCREENSHOTS"))
    if screenshots:
        loop.run(more_cases(sc))

    # Not signed in: the console sends the browser to the sign-in page.
    driver.get(sc.console_url + "/")
    wait.until(ec.presence_of_element_located((By.ID, "reviewer_id")))
    assert "/console/login" in driver.current_url and driver.title.startswith("Sign in")
    sign_in(driver, sc, "rev-1")
    wait.until(ec.title_contains("Review queue"))
    link = driver.find_element(By.LINK_TEXT, f"Case {ref[:8]}")
    rows = driver.find_elements(By.CSS_SELECTOR, "tbody tr")
    assert any("a picture a survivor reported to hub" in row.text for row in rows)
    assert len(rows) == 1 or screenshots
    if screenshots:
        RESULTS.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(RESULTS / "console_queue.png"))
    link.click()

    # The case page: the picture is the server-blurred grayscale view.
    wait.until(ec.presence_of_element_located((By.ID, "case-media")))
    wait.until(lambda d: image_loaded(d))
    img = driver.find_element(By.ID, "case-media")
    assert img.get_attribute("data-view") == "blurred"
    blurred_url = img.get_attribute("src")
    assert blurred_url.endswith(f"/console/cases/{ref}/media?view=blurred")
    assert "view=original" not in driver.page_source
    assert "survivor-submitted" in driver.page_source and "differs in at most" in driver.page_source
    if screenshots:
        driver.execute_script("window.scrollTo(0, 0)")
        driver.save_screenshot(str(RESULTS / "console_case.png"))
    cookie = driver.get_cookie("bm_console")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/console"
    original_url = blurred_url.replace("view=blurred", "view=original")
    status, blurred = fetch(blurred_url, cookie["value"])
    assert status == 200
    status, _ = fetch(original_url, cookie["value"])
    assert status == 403  # not before the reveal

    # Reveal: the page now shows the original, and the reveal is in the history.
    driver.find_element(By.ID, "reveal").click()
    wait.until(
        lambda d: d.find_element(By.ID, "case-media").get_attribute("data-view") == "original"
    )
    wait.until(lambda d: image_loaded(d))
    assert driver.find_element(By.ID, "case-media").get_attribute("src") == original_url
    assert "Original image revealed to rev-1" in driver.find_element(By.ID, "history").text
    status, original = fetch(original_url, cookie["value"])
    assert status == 200
    assert high_frequency_energy(original) > 8 * high_frequency_energy(blurred)

    # Decide: dismissed, with a reason; the history and the decision log show it.
    driver.find_element(By.ID, "o-dismissed").click()
    driver.find_element(By.ID, "reason").send_keys("Not the reported picture")
    driver.find_element(By.ID, "decide").click()
    wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, "[role=status]"), "saved"))
    history = driver.find_element(By.ID, "history").text
    assert "Decision: dismissed by rev-1" in history and "Not the reported picture" in history
    assert driver.find_element(By.ID, "case-media").get_attribute("data-view") == "blurred"
    driver.find_element(By.LINK_TEXT, "Decision log").click()
    wait.until(ec.title_contains("Decision log"))
    assert "Decision: dismissed by rev-1" in driver.find_element(By.TAG_NAME, "main").text
    case = loop.run(sc.platform.decisions.case(sc.case.case_ref))
    assert (case.state, case.decided_by) == ("dismissed", "rev-1")

    # The holder hears of it once the platform's outbox drains.
    loop.run(drain(sc.platform))
    opinion = loop.run(sc.hub.decisions.opinion("hub", sc.case.item_ref))
    assert opinion.disputes == 1

    # The page's own script and styles ran under the CSP: nothing was blocked.
    blocked = [
        m for m in driver.get_log("browser") if "Content Security Policy" in m.get("message", "")
    ]
    assert not blocked, blocked

    # Sign out; an auditor is refused the queue and the decision form.
    driver.find_element(By.XPATH, "//button[normalize-space()='Sign out']").click()
    wait.until(ec.presence_of_element_located((By.ID, "reviewer_id")))
    sign_in(driver, sc, "aud-1")
    wait.until(ec.title_contains("Decision log"))
    driver.get(sc.console_url + "/")
    assert driver.title.startswith("Not allowed")
    driver.get(f"{sc.console_url}/cases/{ref}")
    assert not driver.find_elements(By.ID, "decide")
    assert not driver.find_elements(By.ID, "case-media")
    assert sc.held_hex not in driver.page_source
