"""Helpers for driving the survivor page in a real headless Chromium (tests and bench).

A hub (and a platform) from :class:`LocalFederation` run on an event loop in a background thread,
with the survivor page served on a loopback port, so the blocking Selenium calls never stall the
servers. The browser is Debian's ``chromium`` through ``chromedriver``, started with the flags
below and a throw-away profile; its DevTools performance log records every network request.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--disable-default-apps",
    "--disable-extensions",
)


def browser_missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install 'blindmatch[dev]')"
    if not (shutil.which("chromium") or shutil.which("chromium-browser")):
        return "Debian's chromium is not installed (apt-get install chromium)"
    if not shutil.which("chromedriver"):
        return "chromedriver is not installed (apt-get install chromium-driver)"
    return None


def start_browser(profile_dir: str):  # type: ignore[no-untyped-def]
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or shutil.which("chromium-browser") or ""
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile_dir}")
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    driver.set_script_timeout(300)
    driver.execute_cdp_cmd("Network.enable", {"maxPostDataSize": 1024 * 1024})
    return driver


def network_requests(driver) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    """Every request the page started since the last call (drains the performance log)."""
    out = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            request = message["params"]["request"]
            out.append(
                {
                    "url": request.get("url", ""),
                    "method": request.get("method", ""),
                    "post_data": request.get("postData", ""),
                    "has_post_data": bool(request.get("hasPostData")),
                }
            )
    return out


def pick_files(driver, input_id: str, paths: Sequence[Path], timeout: float = 300) -> None:  # type: ignore[no-untyped-def]
    """Give files to a file input and wait until the page has fingerprinted all of them."""
    from selenium.webdriver.common.by import By

    count = "return document.querySelectorAll('#results li').length"
    before = driver.execute_script(count)
    element = driver.find_element(By.ID, input_id)
    element.send_keys("\n".join(str(Path(p).resolve()) for p in paths))
    # Wait for the new rows to exist (the change event may not have run yet) and be finished.
    wait_for(
        driver,
        f"return document.querySelectorAll('#results li').length >= {before + len(paths)}"
        " && !document.querySelector('#results li[data-state=\"working\"]')"
        " && document.body.getAttribute('data-busy') === '0'",
        timeout,
    )


def wait_for(driver, script: str, timeout: float = 30) -> Any:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    time.sleep(0.05)
    while True:
        value = driver.execute_script(script)
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for: {script}")
        time.sleep(0.05)


def page_results(driver) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    return driver.execute_script(
        """return Array.from(document.querySelectorAll('#results li')).map(li => ({
            file: li.getAttribute('data-file'), state: li.getAttribute('data-state'),
            hash: li.getAttribute('data-hash'), quality: li.getAttribute('data-quality'),
            code: li.getAttribute('data-code'), text: li.textContent}));"""
    )


class LoopThread:
    """An asyncio loop in a daemon thread; ``run(coro)`` waits for a result from outside."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float = 120) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        if not self.thread.is_alive():
            self.loop.close()


class SurvivorHub:
    """A LocalFederation (hub + platform) with the survivor page served by the hub."""

    def __init__(self, home: Path, *, limiter: Any = None) -> None:
        self.home = home
        self.limiter = limiter
        self.loop = LoopThread()
        self.url = ""

    def start(self) -> SurvivorHub:
        self.loop.run(self._start())
        return self

    async def _start(self) -> None:
        from aiohttp import web

        from blindmatch.node.devtools.localfed import LocalFederation, NodeSpec
        from blindmatch.node.survivor import build_survivor_app

        self.fed = await LocalFederation(self.home, background=True, sync_interval_s=0.2).start(
            [NodeSpec("hub", ("hub",)), NodeSpec("platform", holds_index=False)]
        )
        hub = self.fed["hub"]
        app = build_survivor_app(hub.node, hub.banks, limiter=self.limiter)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        await web.SockSite(self.runner, sock).start()
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}/survivor/"

    def stop(self) -> None:
        async def _stop() -> None:
            await self.runner.cleanup()
            await self.fed.stop()

        try:
            self.loop.run(_stop())
        finally:
            self.loop.close()


def temp_profile() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="bm-chromium-")


def http_requests(driver) -> list[dict]:  # type: ignore[no-untyped-def,type-arg]
    return [r for r in network_requests(driver) if not r["url"].startswith("chrome")]
