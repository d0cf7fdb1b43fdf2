"""The page keeps its link working: socket killed, page reloaded, session ended (PROTOCOL.md §4).

The relay drops the page's socket with the debug endpoint (close 1011, session held): the SDK
resumes and the same link works again. A reload resumes from sessionStorage. When the relay ends
the session instead, the SDK registers a fresh one, mints a new link and the dialog says so.
"""

from __future__ import annotations

from typing import Any

import httpx2

from tests.browser.conftest import wait_until
from tests.browser.helpers import (
    BUTTON,
    DIALOG,
    NOTE,
    base_of,
    connect_page,
    in_button,
    pixel,
    read_link,
    rgba,
    session_id_of,
    session_status,
)
from tests.conftest import RelayProcess


def call_until_ok(agent: httpx2.Client, url: str, body: dict[str, Any]) -> list[int]:
    """POST until the app answers 200; return every status seen (503 while it is away)."""
    seen: list[int] = []

    def attempt() -> bool:
        resp = agent.post(url, json=body)
        seen.append(resp.status_code)
        if resp.status_code == 503:
            assert resp.json()["error"]["code"] == "app_offline"
        else:
            assert resp.status_code == 200, resp.text
        return resp.status_code == 200

    wait_until(attempt, timeout=20, interval=0.2)
    return seen


def test_page_resumes_after_the_socket_is_killed(
    page: Any, browser_relay: RelayProcess, agent: httpx2.Client
) -> None:
    link = connect_page(page, f"{browser_relay.http}/examples/pixel-art/")
    base, sid = base_of(link), session_id_of(link)
    statuses = page.evaluate_handle(
        """() => { const seen = [];
            document.querySelector('agent-socket-connect').session
                .addEventListener('status', (e) => seen.push(e.detail));
            return seen; }"""
    )
    assert agent.post(f"{base}/set_pixel", json={"x": 1, "y": 1, "color": "#123456"}).is_success

    kill = agent.post(f"{browser_relay.http}/_debug/kill-ws/{sid}")
    assert kill.status_code == 200
    call_until_ok(agent, f"{base}/set_pixel", {"x": 2, "y": 2, "color": "#abcdef"})
    assert pixel(page, 2, 2) == rgba("#abcdef")
    # The page saw the drop and came back on the same session; the dialog shows the same link.
    assert statuses.json_value()[:2] == ["reconnecting", "connected"]
    assert session_status(page) == "connected"
    assert in_button(page, "el.session.sessionId") == sid
    assert page.get_by_label("Link for your AI").input_value() == link
    assert page.locator(NOTE).is_hidden()
    state = agent.get(f"{browser_relay.http}/_debug/state/{sid}").json()
    assert state["appConnected"] is True and state["tokens"] == 1


def test_reload_keeps_the_link_and_the_picture(
    page: Any, browser_relay: RelayProcess, agent: httpx2.Client
) -> None:
    link = connect_page(page, f"{browser_relay.http}/examples/pixel-art/")
    base = base_of(link)
    resp = agent.post(
        f"{base}/fill_rect", json={"x": 4, "y": 4, "width": 8, "height": 8, "color": "#ff00ff"}
    )
    assert resp.status_code == 200

    page.reload()
    # The grid survives the reload (localStorage) ...
    page.wait_for_function("() => window.pixelArt")
    assert pixel(page, 7, 7) == rgba("#ff00ff")
    assert pixel(page, 12, 12) == rgba("#ffffff")
    # ... and the page reconnects by itself (sessionStorage), so the same link works.
    call_until_ok(agent, f"{base}/set_pixel", {"x": 20, "y": 20, "color": "#00ff00"})
    assert pixel(page, 20, 20) == rgba("#00ff00")
    # Opening the dialog again shows the same link; no second link was minted.
    page.locator(BUTTON).click()
    assert read_link(page) == link
    assert len(agent.get(f"{base}/tools.json").json()["tools"]) == 5
    sid = session_id_of(link)
    assert agent.get(f"{browser_relay.http}/_debug/state/{sid}").json()["tokens"] == 1


def test_fresh_session_mints_a_new_link_and_says_so(
    page: Any, browser_relay: RelayProcess, agent: httpx2.Client
) -> None:
    old_link = connect_page(page, f"{browser_relay.http}/examples/pixel-art/")
    old_sid = session_id_of(old_link)
    # The relay ends the session: the resume is refused (4401), so the SDK registers afresh.
    assert agent.post(f"{browser_relay.http}/_debug/kill-ws/{old_sid}?end=1").status_code == 200
    page.locator(NOTE).wait_for(state="visible")
    assert "link changed" in page.locator(NOTE).inner_text()
    new_link = read_link(page)
    assert new_link != old_link and session_id_of(new_link) != old_sid
    assert page.locator(DIALOG).is_visible()

    resp = agent.post(f"{base_of(new_link)}/set_pixel", json={"x": 0, "y": 0, "color": "#000000"})
    assert resp.status_code == 200
    assert pixel(page, 0, 0) == rgba("#000000")
    old = agent.post(f"{base_of(old_link)}/set_pixel", json={"x": 0, "y": 0, "color": "#000000"})
    assert (old.status_code, old.json()["error"]["code"]) == (503, "app_offline")
    assert "link changed" in page.locator("#log").inner_text()
