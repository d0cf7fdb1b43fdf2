"""Page helpers shared by the browser tests: the button, its dialog, the canvas."""

from __future__ import annotations

from typing import Any

from tests.browser.conftest import LINK_RE

BUTTON = "agent-socket-connect button.btn"
DIALOG = "agent-socket-connect dialog"
LINK_INPUT = "agent-socket-connect input.link"
STATUS_TEXT = "agent-socket-connect .status-text"
NOTE = "agent-socket-connect .note"

PIXEL_JS = """([x, y]) => Array.from(
    document.getElementById('canvas').getContext('2d').getImageData(x, y, 1, 1).data)"""


def connect_page(page: Any, url: str) -> str:
    """Open ``url``, click "Connect with AI" and return the link shown in the dialog."""
    page.goto(url)
    page.locator(BUTTON).click()
    return read_link(page)


def read_link(page: Any) -> str:
    link_input = page.locator(LINK_INPUT)
    link_input.wait_for(state="visible")
    page.wait_for_function(
        "sel => { const el = document.querySelector('agent-socket-connect');"
        " return el && el.shadowRoot.querySelector('input.link').value.length > 0; }",
        arg=LINK_INPUT,
    )
    link = link_input.input_value()
    assert LINK_RE.match(link), link
    return link


def in_button(page: Any, expr: str) -> Any:
    """Evaluate ``expr`` with ``el`` = the <agent-socket-connect> element, ``root`` = its shadow."""
    return page.evaluate(
        "() => { const el = document.querySelector('agent-socket-connect');"
        f" const root = el.shadowRoot; return ({expr}); }}"
    )


def session_status(page: Any) -> str | None:
    return page.evaluate(
        "() => { const s = document.querySelector('agent-socket-connect').session;"
        " return s ? s.status : null; }"
    )


def pixel(page: Any, x: int, y: int) -> tuple[int, int, int, int]:
    """The canvas's actual RGBA at (x, y), read from the page."""
    r, g, b, a = page.evaluate(PIXEL_JS, [x, y])
    return (r, g, b, a)


def rgba(color: str) -> tuple[int, int, int, int]:
    return (int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16), 255)


def base_of(link: str) -> str:
    return link.removesuffix("/agents.md")


def session_id_of(link: str) -> str:
    match = LINK_RE.match(link)
    assert match
    return match.group(2)
