"""Browser tests: a real Chromium (Debian's, via Playwright for Python) against a real relay.

Every test gets a fresh browser context (empty sessionStorage and localStorage) on one shared
Chromium, and talks to a relay process started for this suite. The suite is skipped, with the
reason shown, when /usr/bin/chromium is not installed.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.conftest import RelayProcess, running_relay

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
#: The browser suite's relay: debug endpoints on; a liveness timeout above the SDK's 25 s
#: heartbeat (the shared e2e relay closes apps silent for 15 s, which a page idling through a
#: slow test would hit); a hold window long enough to resume on a loaded machine.
BROWSER_RELAY_ARGS = (
    "--debug",
    "--max-sync-tool-ms", "10000",
    "--heartbeat-timeout-ms", "60000",
    "--resume-grace-ms", "30000",
    "--ws-rate-limit", "1000000",
)  # fmt: skip
LINK_RE = re.compile(
    r"^http://127\.0\.0\.1:\d+/v1/t/(as_([0-9A-HJKMNP-TV-Z]{8})_[A-Za-z0-9_-]{22})/agents\.md$"
)


# Module scope, not session: Playwright's sync API marks an event loop as running in this
# thread while it is open, which would break every asyncio test that runs after it in the same
# pytest worker.
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(
            f"browser tests need Debian's chromium at {CHROMIUM} (apt-get install chromium)"
        )
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright for Python is not installed"
    )
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def browser_relay(browser: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayProcess]:
    with running_relay(*BROWSER_RELAY_ARGS, tmp=tmp_path_factory.mktemp("browser-relay")) as proc:
        yield proc


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A page in a fresh context; page errors fail the test (console errors are kept)."""
    context = browser.new_context(viewport={"width": 1100, "height": 800})
    context.set_default_timeout(15_000)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.console_messages = []  # type: ignore[attr-defined]
    pg.on("console", lambda msg: pg.console_messages.append(f"{msg.type}: {msg.text}"))  # type: ignore[attr-defined]
    try:
        yield pg
    finally:
        context.close()
    assert not errors, f"uncaught errors in the page: {errors}"


@pytest.fixture
def agent() -> Iterator[httpx2.Client]:
    """An HTTP client as an AI tool runtime uses it (no Sec-Fetch-* headers)."""
    with httpx2.Client(timeout=15) as client:
        yield client


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


def wait_until(check: Callable[[], Any], timeout: float = 15, interval: float = 0.1) -> Any:
    """Poll ``check`` until it returns something truthy; fail with its last value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s (last value: {last!r})")
