"""Around the protocol: the browser SDK's files and the example pages (issue 3 §4, issue 5)."""

from __future__ import annotations

import httpx2

from tests.conftest import RelayProcess


async def test_the_sdk_is_cacheable_and_importable_from_any_origin(relay: RelayProcess) -> None:
    async with httpx2.AsyncClient() as http:
        sdk = await http.get(f"{relay.http}/sdk/agent-socket.js")
    assert sdk.status_code == 200
    assert sdk.headers["content-type"] == "text/javascript; charset=utf-8"
    assert sdk.headers["access-control-allow-origin"] == "*"
    assert "max-age" in sdk.headers["cache-control"]
    assert sdk.headers["etag"]
    assert "export" in sdk.text


async def test_only_sdk_files_are_served_under_sdk(relay: RelayProcess) -> None:
    async with httpx2.AsyncClient() as http:
        for path in ("/sdk/examples/index.html", "/sdk/nope.js", "/sdk/../relay/app.py"):
            refused = await http.get(f"{relay.http}{path}")
            assert refused.status_code == 404, path
        page = await http.get(f"{relay.http}/examples/pixel-art/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
