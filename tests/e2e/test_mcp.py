"""``$BASE/mcp``: the official MCP client (PyPI ``mcp``, not ours) against a live link (issue 9).

A Python SDK app sits behind a real relay process (tests/conftest.py, sync timeout 3 s); the
client lists its tools, calls them (success, app error, validation error, async task with
progress), sees ``notifications/tools/list_changed`` after ``update_tools`` and is refused once
its link is revoked. Transport rules (Origin, CSRF, stateless requests, versions) are checked with
plain HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import mcp_types as types
import pytest
from mcp import Client

from agent_socket import App, Session, ToolError
from tests.e2e.test_sdk_support import FAST, counter_app, eventually
from tests.e2e.wire import registered_app

pytestmark = [
    pytest.mark.timeout(60),
    # ping is deprecated only for 2026-07-28 connections; these connect in the handshake era.
    pytest.mark.filterwarnings("ignore::mcp.shared.exceptions.MCPDeprecationWarning"),
]

ACCEPT = "application/json, text/event-stream"


def build_app() -> App:
    app = counter_app("mcp-counter", "A counter for MCP clients.")

    @app.tool("/sell")
    async def sell(item: str) -> dict[str, str]:
        """Sell an item (always sold out)."""
        raise ToolError(f"{item} is sold out", code="no_stock", status=409)

    @app.tool("/render", long_running=True)
    async def render(frames: int = 2) -> dict[str, int]:
        """Render frames (long-running)."""
        await asyncio.sleep(1.3)
        return {"frames": frames}

    return app


@pytest.fixture(scope="module")
async def served(relay: Any) -> AsyncIterator[tuple[App, Session, str]]:
    app = build_app()
    async with app.connect(relay.http, **FAST) as session:
        link = await session.mint_link("mcp")
        yield app, session, link.url.removesuffix("/agents.md")


@pytest.fixture
def base(served: tuple[App, Session, str]) -> str:
    return served[2]


def text_of(result: types.CallToolResult) -> str:
    assert len(result.content) == 1
    content = result.content[0]
    assert isinstance(content, types.TextContent)
    return content.text


async def test_initialize_and_list_tools(base: str) -> None:
    async with Client(f"{base}/mcp") as client:
        assert client.server_info is not None
        assert client.server_info.name == "mcp-counter"
        assert client.server_capabilities.tools is not None
        assert client.server_capabilities.tools.list_changed is True
        await client.send_ping()
        listed = await client.list_tools()
    tools = {tool.name: tool for tool in listed.tools}
    assert set(tools) == {"post_increment", "get_count", "post_sell", "post_render"}
    increment = tools["post_increment"]
    assert increment.description == "Add `by` to the counter and return the new count."
    schema = increment.input_schema
    assert schema["type"] == "object"
    assert schema["properties"]["by"]["type"] == "integer"
    # No input: an empty object schema.
    assert tools["get_count"].input_schema == {"type": "object"}


async def test_call_success_is_pretty_json_text(base: str) -> None:
    async with Client(f"{base}/mcp") as client:
        first = await client.call_tool("post_increment", {"by": 2})
        second = await client.call_tool("get_count", {})
    assert first.is_error is False
    assert json.loads(text_of(first))["count"] >= 2
    assert "\n" in text_of(first)  # pretty-printed
    assert json.loads(text_of(second)) == json.loads(text_of(first))


async def test_app_error_and_validation_error_are_is_error(base: str) -> None:
    async with Client(f"{base}/mcp") as client:
        sold = await client.call_tool("post_sell", {"item": "tea"})
        bad = await client.call_tool("post_increment", {"by": "lots"})
        missing = await client.call_tool("post_sell", {})
    assert sold.is_error is True
    assert json.loads(text_of(sold))["error"]["code"] == "no_stock"
    assert bad.is_error is True
    assert json.loads(text_of(bad))["error"]["code"] == "bad_input"
    assert missing.is_error is True
    assert json.loads(text_of(missing))["error"]["code"] == "bad_input"


async def test_unknown_tool_is_a_json_rpc_error(base: str) -> None:
    async with Client(f"{base}/mcp") as client:
        with pytest.raises(Exception, match="Unknown tool"):
            await client.call_tool("post_nothing", {})


async def test_async_task_is_followed_with_progress(base: str) -> None:
    progress: list[float] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(value)

    async with Client(f"{base}/mcp") as client:
        result = await client.call_tool("post_render", {"frames": 5}, progress_callback=on_progress)
    assert result.is_error is False
    assert json.loads(text_of(result)) == {"frames": 5}
    assert progress, "no progress notification arrived"
    assert progress == sorted(progress)


async def test_tool_list_change_is_notified(relay: Any) -> None:
    app = build_app()
    async with app.connect(relay.http, **FAST) as session:
        link = await session.mint_link("mcp-changes")
        base = link.url.removesuffix("/agents.md")
        seen: list[Any] = []

        async def on_message(message: Any) -> None:
            if isinstance(message, types.ServerNotification):
                seen.append(message)

        async with Client(f"{base}/mcp", message_handler=on_message) as client:

            def notified() -> bool:
                return any(
                    getattr(n, "method", "") == "notifications/tools/list_changed" for n in seen
                )

            # The client opens its GET stream in the background after initialize; a change
            # made before the stream is up is not announced on it, so change again if needed.
            await asyncio.sleep(0.3)
            for attempt in range(3):
                path = f"/reset{attempt}"

                async def reset() -> dict[str, int]:
                    """Set the counter to zero."""
                    return {"count": 0}

                app.tool(path)(reset)
                await session.update_tools()
                with contextlib.suppress(AssertionError):
                    await eventually(notified, timeout=2, what="tools/list_changed")
                    break
            assert notified(), "no notifications/tools/list_changed on the GET stream"
            names = [tool.name for tool in (await client.list_tools()).tools]
            assert "post_reset0" in names
            result = await client.call_tool("post_reset0", {})
            assert json.loads(text_of(result)) == {"count": 0}


async def test_revoked_link_is_refused(relay: Any) -> None:
    async with build_app().connect(relay.http, **FAST) as session:
        link = await session.mint_link("mcp-revoke")
        base = link.url.removesuffix("/agents.md")
        async with Client(f"{base}/mcp") as client:
            await client.send_ping()
        assert await session.revoke_link(link)
        with pytest.raises(Exception):  # noqa: B017 — the client's own error for a 401
            async with Client(f"{base}/mcp") as client:
                await client.send_ping()
        async with httpx2.AsyncClient() as http:
            response = await http.post(
                f"{base}/mcp",
                json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
                headers={"accept": ACCEPT},
            )
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "token_invalid"


# ---- the transport, over plain HTTP ------------------------------------------------------------


async def rpc(base: str, message: Any, **headers: str) -> httpx2.Response:
    async with httpx2.AsyncClient(timeout=10) as http:
        return await http.post(
            f"{base}/mcp", content=json.dumps(message), headers={"accept": ACCEPT, **headers}
        )


async def test_requests_are_stateless(base: str) -> None:
    # No initialize, no session id: any request stands on its own.
    response = await rpc(base, {"jsonrpc": "2.0", "id": 7, "method": "tools/list"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["id"] == 7
    assert "post_increment" in [tool["name"] for tool in body["result"]["tools"]]
    init = await rpc(
        base,
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "t", "version": "0"},
            },
        },
    )
    assert init.json()["result"]["protocolVersion"] == "2025-06-18"
    assert init.headers.get("mcp-session-id")
    note = await rpc(base, {"jsonrpc": "2.0", "method": "notifications/initialized"})
    assert note.status_code == 202 and note.content == b""


async def test_json_rpc_errors(base: str) -> None:
    async with httpx2.AsyncClient(timeout=10) as http:
        broken = await http.post(f"{base}/mcp", content=b"{nope", headers={"accept": ACCEPT})
    assert broken.status_code == 400 and broken.json()["error"]["code"] == -32700
    unknown = await rpc(base, {"jsonrpc": "2.0", "id": 2, "method": "sampling/nothing"})
    assert unknown.json()["error"]["code"] == -32601
    version = await rpc(
        base, {"jsonrpc": "2.0", "id": 3, "method": "ping"}, **{"mcp-protocol-version": "1999"}
    )
    assert version.status_code == 400
    assert "2025-06-18" in version.json()["error"]["data"]["supported"]
    async with httpx2.AsyncClient(timeout=10) as http:
        delete = await http.delete(f"{base}/mcp")
    assert delete.status_code == 405


async def test_origin_and_csrf_are_enforced(base: str) -> None:
    ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    evil = await rpc(base, ping, origin="https://evil.example")
    assert evil.status_code == 403
    own_origin = base.split("/v1/t/")[0]
    same = await rpc(base, ping, origin=own_origin)
    assert same.status_code == 200 and same.json()["result"] == {}
    page = await rpc(base, ping, **{"sec-fetch-site": "cross-site"})
    assert page.status_code == 403
    assert page.json()["error"]["code"] == "csrf_denied"


async def test_tool_call_reaches_the_app_as_a_plain_http_call_would(relay: Any) -> None:
    tools = [
        {
            "method": "POST",
            "path": "/increment",
            "description": "Add",
            "input_schema": {"type": "object", "properties": {"by": {"type": "integer"}}},
        }
    ]
    async with registered_app(relay, tools=tools) as app:
        base = await app.mint()
        async with httpx2.AsyncClient(timeout=10) as http:
            plain = await http.post(f"{base}/increment", json={"by": 2})
        assert plain.status_code == 200
        async with Client(f"{base}/mcp") as client:
            result = await client.call_tool("post_increment", {"by": 2})
        assert result.is_error is False
        via_http, via_mcp = app.calls[-2], app.calls[-1]
        for frame in (via_http, via_mcp):
            frame.pop("id")
        assert via_mcp == via_http
        assert via_mcp["body"] == '{"by":2}'
        assert via_mcp["headers"] == {"content-type": "application/json"}


async def test_a_tool_at_the_same_path_wins(relay: Any) -> None:
    tools = [{"method": "POST", "path": "/mcp", "description": "The app's own /mcp"}]
    async with registered_app(relay, tools=tools) as app:
        base = await app.mint()
        response = await rpc(base, {"jsonrpc": "2.0", "id": 1, "method": "ping"})
        assert response.status_code == 200
        assert response.json()["echo"]["path"] == "/mcp"


async def open_stream(http: httpx2.AsyncClient, base: str) -> AsyncIterator[bytes]:
    async with http.stream("GET", f"{base}/mcp", headers={"accept": "text/event-stream"}) as r:
        assert r.status_code == 200, await r.aread()
        assert r.headers["content-type"].startswith("text/event-stream")
        async for chunk in r.aiter_bytes():
            yield chunk


async def test_get_streams_end_on_revoke_and_are_released_on_hang_up(relay: Any) -> None:
    async with registered_app(relay) as app:
        base = await app.mint()
        async with httpx2.AsyncClient(timeout=10) as http:
            # More streams than the per-session cap, one after the other: each hang-up frees its
            # slot (the relay notices the client leaving, not only a failed write).
            for _ in range(20):
                stream = open_stream(http, base)
                assert (await anext(stream)).startswith(b":")
                await stream.aclose()
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)
            stream = open_stream(http, base)
            assert (await anext(stream)).startswith(b":")
            token = base.rsplit("/", 1)[1]
            assert (await app.request("revoke_agent_token", token=token))["ok"]
            rest = b"".join([chunk async for chunk in stream])  # ends within a second or so
            assert b"list_changed" not in rest


async def test_tool_names_are_valid_unique_and_stable(relay: Any) -> None:
    long_path = "/" + "/".join(["segment"] * 12)
    tools = [
        {"method": "POST", "path": "/a.b", "description": ""},
        {"method": "POST", "path": "/a_b", "description": "second"},
        {"method": "get", "path": long_path, "description": "long"},
        {"method": "POST", "path": "/odd", "input_schema": None},
        {"method": "POST", "path": "/list", "input_schema": {"type": "array"}},
        {"method": "POST", "path": "/loose", "input_schema": {"properties": {}}},
    ]
    async with registered_app(relay, tools=tools) as app:
        base = await app.mint()
        listed = (await rpc(base, {"jsonrpc": "2.0", "id": 1, "method": "tools/list"})).json()
    names = [tool["name"] for tool in listed["result"]["tools"]]
    assert names[:2] == ["post_a_b", "post_a_b_2"]
    assert names[2].startswith("get_segment_segment") and len(names[2]) == 64
    assert all(re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", name) for name in names)
    by_name = {tool["name"]: tool for tool in listed["result"]["tools"]}
    assert by_name["post_a_b"]["description"] == "POST /a.b"  # none given: method and path
    assert by_name["post_odd"]["inputSchema"] == {"type": "object"}
    assert by_name["post_list"]["inputSchema"] == {"type": "object"}
    assert by_name["post_loose"]["inputSchema"] == {"type": "object", "properties": {}}
