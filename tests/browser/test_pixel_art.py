"""The pixel-art demo in a real Chromium: an agent paints over HTTP, the canvas changes.

Issue 5: open the page from a real relay, click the button, read the link from the dialog, call
the tools as an agent would, and read the canvas's actual pixels back from the page.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx2

from tests.browser.conftest import wait_until
from tests.browser.helpers import (
    BUTTON,
    DIALOG,
    STATUS_TEXT,
    base_of,
    connect_page,
    in_button,
    pixel,
    rgba,
)
from tests.conftest import RelayProcess

TOOLS = {
    ("POST", "/set_pixel"),
    ("POST", "/set_pixels"),
    ("POST", "/fill_rect"),
    ("POST", "/clear"),
    ("GET", "/get_grid"),
}
WHITE = rgba("#ffffff")


def error_code(resp: httpx2.Response) -> str:
    assert resp.status_code == 400, (resp.status_code, resp.text)
    assert resp.headers["content-type"].startswith("application/json")
    body = resp.json()
    assert set(body) == {"error"} and isinstance(body["error"]["message"], str)
    return str(body["error"]["code"])


def test_dialog_shows_link_copy_and_status(page: Any, browser_relay: RelayProcess) -> None:
    link = connect_page(page, f"{browser_relay.http}/examples/pixel-art/")
    dialog = page.locator(DIALOG)
    assert dialog.is_visible()
    # Accessible: a modal dialog named by its heading, a labelled link field, a Copy button,
    # one line telling the user what to do, a live status.
    assert page.get_by_role("dialog", name="Connect with AI").is_visible()
    assert page.get_by_label("Link for your AI").input_value() == link
    assert page.get_by_role("button", name="Copy").is_enabled()
    assert "paste it into your AI chat" in dialog.inner_text()
    assert page.locator(STATUS_TEXT).inner_text().startswith("Connected")
    # The link field has focus when the dialog opens.
    assert in_button(page, "root.activeElement?.className") == "link"
    # Copy puts the link on the clipboard.
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=browser_relay.http)
    page.get_by_role("button", name="Copy").click()
    wait_until(lambda: in_button(page, "root.querySelector('.copy').textContent") == "Copied")
    assert page.evaluate("() => navigator.clipboard.readText()") == link
    assert page.locator("agent-socket-connect .status").get_attribute("role") == "status"
    # Escape closes the dialog and focus returns to the button.
    page.keyboard.press("Escape")
    wait_until(lambda: in_button(page, "!root.querySelector('dialog').open"))
    assert in_button(page, "root.activeElement?.className") == "btn"
    # Keyboard opens it again with the same link (no second link is minted).
    page.keyboard.press("Enter")
    page.locator(DIALOG).wait_for(state="visible")
    assert page.get_by_label("Link for your AI").input_value() == link
    assert "(connected)" in (page.locator(BUTTON).get_attribute("aria-label") or "")


def test_agent_paints_the_canvas(
    page: Any, browser_relay: RelayProcess, agent: httpx2.Client, artifacts: Path
) -> None:
    link = connect_page(page, f"{browser_relay.http}/examples/pixel-art/")
    base = base_of(link)

    doc = agent.get(link)
    assert doc.status_code == 200
    for words in ("fill_rect", "set_pixels", "Plan first", "#rrggbb"):
        assert words in doc.text, words
    listing = agent.get(f"{base}/tools.json").json()
    assert listing["app"]["id"] == "pixel-art"
    assert {(t["method"], t["path"]) for t in listing["tools"]} == TOOLS
    assert all(isinstance(t.get("input_schema"), dict) for t in listing["tools"])

    # One pixel.
    resp = agent.post(f"{base}/set_pixel", json={"x": 3, "y": 4, "color": "#FF0000"})
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"ok": True, "x": 3, "y": 4, "color": "#ff0000"}
    assert pixel(page, 3, 4) == rgba("#ff0000")
    assert pixel(page, 4, 4) == WHITE

    # A rectangle: inside painted, the border just outside untouched.
    resp = agent.post(
        f"{base}/fill_rect", json={"x": 10, "y": 20, "width": 5, "height": 3, "color": "#1e90ff"}
    )
    assert resp.status_code == 200 and resp.json()["filled"] == 15
    for x, y in [(10, 20), (14, 22), (12, 21)]:
        assert pixel(page, x, y) == rgba("#1e90ff")
    for x, y in [(9, 20), (15, 20), (10, 19), (10, 23)]:
        assert pixel(page, x, y) == WHITE

    # A batch: a diagonal line in green, 32 pixels in one call.
    diagonal = [{"x": i, "y": 31 - i, "color": "#00aa00"} for i in range(32)]
    resp = agent.post(f"{base}/set_pixels", json={"pixels": diagonal})
    assert resp.status_code == 200 and resp.json()["count"] == 32
    for i in (0, 15, 31):
        assert pixel(page, i, 31 - i) == rgba("#00aa00")

    # The largest batch allowed: the whole bottom half.
    half = [{"x": i % 32, "y": 16 + i // 32, "color": "#ffd700"} for i in range(512)]
    assert agent.post(f"{base}/set_pixels", json={"pixels": half}).status_code == 200
    full = [{"x": i % 32, "y": i // 32, "color": "#ffd700"} for i in range(1024)]
    full_resp = agent.post(f"{base}/set_pixels", json={"pixels": full[:1024]})
    assert full_resp.status_code == 200 and full_resp.json()["count"] == 1024
    assert pixel(page, 0, 0) == rgba("#ffd700") and pixel(page, 31, 31) == rgba("#ffd700")

    # Bad input: answered 400 with the right code, nothing painted.
    bad = [
        ("/set_pixel", {"x": "3", "y": 4, "color": "#000000"}, "bad_input"),
        ("/set_pixel", {"x": 3.5, "y": 4, "color": "#000000"}, "bad_input"),
        ("/set_pixel", {"x": 3, "y": 4, "color": "red"}, "bad_input"),
        ("/set_pixel", {"x": 3, "y": 4}, "bad_input"),
        ("/set_pixel", [1, 2, 3], "bad_input"),
        ("/set_pixel", {"x": 32, "y": 0, "color": "#000000"}, "out_of_range"),
        ("/set_pixel", {"x": 0, "y": -1, "color": "#000000"}, "out_of_range"),
        ("/set_pixels", {"pixels": "all"}, "bad_input"),
        ("/set_pixels", {"pixels": []}, "bad_input"),
        ("/set_pixels", {"pixels": [*full, {"x": 0, "y": 0, "color": "#000000"}]}, "too_many"),
        ("/set_pixels", {"pixels": [{"x": 1, "y": 1, "color": "#000000"}, {"x": 99, "y": 1,
                                                                         "color": "#000000"}]},
         "out_of_range"),
        ("/fill_rect", {"x": 0, "y": 0, "width": 0, "height": 5, "color": "#000000"}, "empty_rect"),
        ("/fill_rect", {"x": 0, "y": 0, "width": 4, "height": -2, "color": "#000000"},
         "empty_rect"),
        ("/fill_rect", {"x": 30, "y": 0, "width": 4, "height": 1, "color": "#000000"},
         "out_of_range"),
        ("/fill_rect", {"x": 0, "y": 0, "width": "4", "height": 1, "color": "#000000"},
         "bad_input"),
        ("/clear", {"color": 123}, "bad_input"),
    ]  # fmt: skip
    for path, body, code in bad:
        assert error_code(agent.post(f"{base}{path}", json=body)) == code, (path, body)
    resp = agent.post(
        f"{base}/set_pixel", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert error_code(resp) == "bad_input"
    # The refused batch was all-or-nothing: (1, 1) kept its color.
    assert pixel(page, 1, 1) == rgba("#ffd700")
    assert pixel(page, 0, 0) == rgba("#ffd700")

    # Paint a small picture for the artifact, then read the grid back.
    assert agent.post(f"{base}/clear", json={"color": "#87ceeb"}).status_code == 200
    calls = [
        ("/fill_rect", {"x": 0, "y": 24, "width": 32, "height": 8, "color": "#228b22"}),
        ("/fill_rect", {"x": 22, "y": 3, "width": 6, "height": 6, "color": "#ffd700"}),
        ("/fill_rect", {"x": 6, "y": 16, "width": 10, "height": 8, "color": "#b22222"}),
        ("/fill_rect", {"x": 9, "y": 19, "width": 3, "height": 5, "color": "#5c4033"}),
    ]
    for path, body in calls:
        assert agent.post(f"{base}{path}", json=body).status_code == 200
    roof = [
        {"x": x, "y": y, "color": "#8b0000"}
        for y in range(10, 16)
        for x in range(5 + 15 - y, 17 - (15 - y))
    ]
    assert agent.post(f"{base}/set_pixels", json={"pixels": roof}).status_code == 200
    grid = agent.get(f"{base}/get_grid").json()
    assert grid["width"] == 32 and grid["height"] == 32 and len(grid["rows"]) == 32
    assert grid["rows"][0][0] == "#87ceeb"
    assert grid["rows"][30][5] == "#228b22"
    assert grid["rows"][5][24] == "#ffd700"
    assert pixel(page, 24, 5) == rgba("#ffd700")
    assert pixel(page, 10, 21) == rgba("#5c4033")

    # Every action shows up in the log beside the canvas, newest first.
    log_text = page.locator("#log").inner_text()
    for entry in ("set_pixel (3, 4) #ff0000", "fill_rect (10, 20) 5×3", "set_pixels ×32",
                  "too_many", "empty_rect", "clear #87ceeb", "get_grid"):  # fmt: skip
        assert entry in log_text, entry
    assert page.locator("#log li").first.inner_text().endswith("get_grid")

    page.locator(DIALOG).evaluate("d => d.close()")
    page.wait_for_timeout(1300)  # let the highlight fade out of the screenshot
    page.locator(".board").screenshot(path=str(artifacts / "pixel-art-canvas.png"))
    assert (artifacts / "pixel-art-canvas.png").stat().st_size > 1000


def test_page_itself_cannot_call_tools(
    page: Any, browser_relay: RelayProcess, agent: httpx2.Client
) -> None:
    """CSRF (PROTOCOL.md §2.5): a browser request to a tool URL is refused, from any page."""
    link = connect_page(page, f"{browser_relay.http}/examples/pixel-art/")
    base = base_of(link)
    result = page.evaluate(
        """async (base) => {
            const post = await fetch(base + '/set_pixel', {method: 'POST',
                headers: {'content-type': 'application/json'},
                body: JSON.stringify({x: 0, y: 0, color: '#000000'})});
            const get = await fetch(base + '/get_grid');
            const doc = await fetch(base + '/agents.md');
            return [post.status, await post.json(), get.status, await get.json(), doc.status];
        }""",
        base,
    )
    post_status, post_body, get_status, get_body, doc_status = result
    assert (post_status, post_body["error"]["code"]) == (403, "csrf_denied")
    assert (get_status, get_body["error"]["code"]) == (403, "csrf_denied")
    assert doc_status == 200  # agents.md is exempt (read-only)

    # A page on another site firing a blind form-style POST does not paint either.
    other = page.context.new_page()
    other.goto(f"http://localhost:{browser_relay.port}/examples/")
    other.evaluate(
        """async (base) => { try { await fetch(base + '/fill_rect', {
            method: 'POST', mode: 'no-cors', headers: {'content-type': 'text/plain'},
            body: JSON.stringify({x: 0, y: 0, width: 32, height: 32, color: '#000000'})}); }
            catch (e) {} }""",
        base,
    )
    other.close()
    assert pixel(page, 0, 0) == WHITE
    assert agent.get(f"{base}/get_grid").json()["rows"][0][0] == "#ffffff"
    assert "csrf" not in page.locator("#log").inner_text()
