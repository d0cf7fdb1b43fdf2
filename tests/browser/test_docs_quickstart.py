"""docs/browser-sdk.md's quick start works when copied.

The page is taken verbatim from the doc (only the relay port changes), saved next to a copy of
the SDK fetched from the relay, served from another origin by a plain static server — as the
doc tells the user to do — and driven like a user and an agent would.
"""

from __future__ import annotations

import functools
import http.server
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.browser.conftest import wait_until
from tests.browser.helpers import base_of
from tests.conftest import RelayProcess, free_port

DOC = Path(__file__).resolve().parents[2] / "docs" / "browser-sdk.md"


def quickstart_html() -> str:
    text = DOC.read_text()
    section = text[text.index("## Quick start") : text.index("## API")]
    match = re.search(r"```html\n(.*?)```", section, re.DOTALL)
    assert match, "the quick start has no html block"
    return match.group(1)


@pytest.fixture
def static_site(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *args: None  # type: ignore[method-assign]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield tmp_path, f"http://localhost:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_quickstart_page_works_when_copied(
    page: Any,
    browser_relay: RelayProcess,
    agent: httpx2.Client,
    static_site: tuple[Path, str],
) -> None:
    site_dir, site_url = static_site
    html = quickstart_html()
    assert '"http://127.0.0.1:8080"' in html
    html = html.replace("http://127.0.0.1:8080", browser_relay.http)
    (site_dir / "index.html").write_text(html)
    # The doc's `curl -O <relay>/sdk/agent-socket.js`.
    sdk = agent.get(f"{browser_relay.http}/sdk/agent-socket.js")
    assert sdk.status_code == 200
    assert sdk.headers["content-type"].startswith("text/javascript")
    (site_dir / "agent-socket.js").write_bytes(sdk.content)

    page.goto(f"{site_url}/")
    page.get_by_role("button", name="Connect with AI").click()
    link_field = page.get_by_label("Link for your AI")
    link = wait_until(lambda: link_field.input_value())
    assert link.startswith(f"{browser_relay.http}/v1/t/as_")
    base = base_of(link)
    assert agent.post(f"{base}/increment", json={"by": 5}).json() == {"count": 5}
    assert page.locator("#count").inner_text() == "5"
    bad = agent.post(f"{base}/increment", json={"by": 1.5})
    assert (bad.status_code, bad.json()["error"]["code"]) == (400, "bad_input")
