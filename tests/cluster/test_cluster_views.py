"""``$BASE/mcp`` and ``$BASE/openapi.json`` on every node of a cluster (issue 9 × issue 7).

The app is attached to relay A; MCP and OpenAPI clients use the same link through B and C. The
views there hold no session: they read the registration from the cluster's storage and make
calls and task polls through the agent surface, which forwards them to A (or answers from
storage when no node has the app). The MCP client is the official one (PyPI ``mcp``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import mcp_types as types
import pytest
from mcp import Client

from tests.cluster.conftest import Cluster
from tests.cluster.test_cluster import base_on
from tests.e2e.test_sdk_support import eventually
from tests.e2e.wire import COUNTER_TOOLS, App, registered_app, send

pytestmark = [
    pytest.mark.timeout(90),
    pytest.mark.filterwarnings("ignore::mcp.shared.exceptions.MCPDeprecationWarning"),
]

ACCEPT = "application/json, text/event-stream"
TOOLS = [
    *COUNTER_TOOLS,
    {"method": "POST", "path": "/sell", "description": "Sell an item (always sold out)"},
    {"method": "POST", "path": "/render", "description": "Render (long-running)"},
]


def text_of(result: types.CallToolResult) -> str:
    assert len(result.content) == 1
    content = result.content[0]
    assert isinstance(content, types.TextContent)
    return content.text


@contextlib.asynccontextmanager
async def counter_app(relay: Any) -> AsyncIterator[App]:
    """An app on ``relay``: echoes calls, ``/sell`` fails 409, ``/render`` starts a task that
    completes about a second later."""
    holder: list[App] = []
    finishing: set[asyncio.Task[None]] = set()

    async def complete(task_id: str, frames: int) -> None:
        await asyncio.sleep(1.2)
        body = {"frames": frames}
        await send(
            holder[0].ws, {"type": "task_complete", "taskId": task_id, "status": 200, "body": body}
        )

    def handler(call: dict[str, Any]) -> dict[str, Any]:
        if call["path"] == "/sell":
            error = {"code": "no_stock", "message": "sold out"}
            return {"status": 409, "body": {"error": error}}
        if call["path"] == "/render":
            task_id = f"render-{len(holder[0].calls)}"
            frames = json.loads(call["body"] or "{}").get("frames", 1)
            finish = asyncio.create_task(complete(task_id, frames))
            finishing.add(finish)
            finish.add_done_callback(finishing.discard)
            return {"status": 202, "taskId": task_id}
        return {"status": 200, "body": {"echo": call}}

    async with registered_app(relay, handler, tools=TOOLS) as app:
        holder.append(app)
        yield app


async def rpc(base: str, message: Any) -> httpx2.Response:
    async with httpx2.AsyncClient(timeout=10) as http:
        return await http.post(
            f"{base}/mcp", content=json.dumps(message), headers={"accept": ACCEPT}
        )


async def test_mcp_lists_and_calls_tools_through_other_nodes(cluster: Cluster) -> None:
    a, b, c = cluster.relays
    async with counter_app(a) as app:
        link = await app.mint()
        for relay in (b, c):
            async with Client(f"{base_on(relay, link)}/mcp") as client:
                assert client.server_info is not None
                assert client.server_info.name == "test-app"
                listed = await client.list_tools()
                names = [tool.name for tool in listed.tools]
                assert names == ["post_increment", "get_count", "post_sell", "post_render"]
                done = await client.call_tool("post_increment", {"by": relay.port})
                sold = await client.call_tool("post_sell", {"item": "tea"})
            assert done.is_error is False
            echo = json.loads(text_of(done))["echo"]
            assert echo["path"] == "/increment"
            assert json.loads(echo["body"]) == {"by": relay.port}
            assert "\n" in text_of(done)  # pretty-printed
            assert sold.is_error is True
            assert json.loads(text_of(sold))["error"]["code"] == "no_stock"
        # The app saw exactly the tool_call a plain HTTP call makes.
        increments = [call for call in app.calls if call["path"] == "/increment"]
        assert [call["headers"] for call in increments] == [
            {"content-type": "application/json"}
        ] * 2


async def test_async_task_is_followed_to_its_result_through_c(cluster: Cluster) -> None:
    a, b, c = cluster.relays
    progress: list[float] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(value)

    async with counter_app(a) as app:
        link = await app.mint()
        async with Client(f"{base_on(c, link)}/mcp") as client:
            result = await client.call_tool(
                "post_render", {"frames": 5}, progress_callback=on_progress
            )
        assert result.is_error is False, text_of(result)
        assert json.loads(text_of(result)) == {"frames": 5}
        assert progress, "no progress notification arrived"
        # The result was taken by the MCP call: it is given once (§2.4).
        async with httpx2.AsyncClient(timeout=10) as http:
            again = await http.get(f"{base_on(b, link)}/_as_tasks/render-1")
        assert again.status_code == 404, again.text


async def test_openapi_from_another_node_has_the_link_as_server(cluster: Cluster) -> None:
    a, b, _ = cluster.relays
    async with counter_app(a) as app, httpx2.AsyncClient(timeout=10) as http:
        link = await app.mint()
        response = await http.get(f"{base_on(b, link)}/openapi.json")
        assert response.status_code == 200, response.text
        document = response.json()
        assert document["servers"][0]["url"] == base_on(b, link)
        assert document["info"]["title"] == "test-app"
        assert {"/increment", "/count", "/sell", "/render"} <= set(document["paths"])
        refused = await http.get(f"{base_on(b, link[:-3] + 'AAA')}/openapi.json")
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "token_invalid"


async def test_tool_list_change_on_a_reaches_a_client_on_b(cluster: Cluster) -> None:
    a, b, _ = cluster.relays
    async with counter_app(a) as app:
        link = await app.mint()
        seen: list[Any] = []

        async def on_message(message: Any) -> None:
            if isinstance(message, types.ServerNotification):
                seen.append(message)

        def notified() -> bool:
            return any(getattr(n, "method", "") == "notifications/tools/list_changed" for n in seen)

        async with Client(f"{base_on(b, link)}/mcp", message_handler=on_message) as client:
            # The client opens its GET stream in the background after initialize; a change
            # made before the stream is up is not announced on it, so change again if needed.
            await asyncio.sleep(0.3)
            for attempt in range(3):
                tools = [*TOOLS, {"method": "POST", "path": f"/reset{attempt}"}]
                reply = await app.request("update_tools", tools=tools)
                assert reply["ok"] is True, reply
                with contextlib.suppress(AssertionError):
                    await eventually(notified, timeout=3, what="tools/list_changed")
                    break
            assert notified(), "no notifications/tools/list_changed on B's GET stream"
            names = [tool.name for tool in (await client.list_tools()).tools]
            assert "post_reset0" in names
            result = await client.call_tool("post_reset0", {})
            assert json.loads(text_of(result))["echo"]["path"] == "/reset0"


async def test_revoked_link_is_refused_by_mcp_on_b_at_once(cluster: Cluster) -> None:
    a, b, c = cluster.relays
    async with counter_app(a) as app, httpx2.AsyncClient(timeout=10) as http:
        link = await app.mint()
        token = link.rsplit("/", 1)[1]
        async with Client(f"{base_on(b, link)}/mcp") as client:
            await client.send_ping()
        async with http.stream(
            "GET", f"{base_on(b, link)}/mcp", headers={"accept": "text/event-stream"}
        ) as stream:
            assert stream.status_code == 200
            chunks = stream.aiter_bytes()
            assert (await anext(chunks)).startswith(b":")
            reply = await app.request("revoke_agent_token", token=token)
            assert reply["ok"] is True
            calls_before = len(app.calls)
            for relay in (b, c):
                ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
                refused = await rpc(base_on(relay, link), ping)
                assert refused.status_code == 401, refused.text
                assert refused.json()["error"]["code"] == "token_invalid"
            # B's open stream ends within its re-check interval.
            rest = b"".join([chunk async for chunk in chunks])
            assert b"list_changed" not in rest
        with pytest.raises(Exception):  # noqa: B017 — the client's own error for a 401
            async with Client(f"{base_on(b, link)}/mcp") as client:
                await client.send_ping()
        assert len(app.calls) == calls_before


async def test_held_app_views_answer_from_storage(cluster: Cluster) -> None:
    a, b, _ = cluster.relays
    async with counter_app(a) as app, httpx2.AsyncClient(timeout=10) as http:
        link = await app.mint()
        killed = await http.post(f"{a.http}/_debug/kill-ws/{app.session_id}")
        assert killed.status_code == 200
        base = base_on(b, link)
        listed = await rpc(base, {"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
        assert listed.status_code == 200, listed.text
        assert "post_increment" in [t["name"] for t in listed.json()["result"]["tools"]]
        call = {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "tools/call",
            "params": {"name": "post_increment", "arguments": {"by": 1}},
        }
        answered = (await rpc(base, call)).json()["result"]
        assert answered["isError"] is True
        error = json.loads(answered["content"][0]["text"])["error"]
        assert error["code"] == "app_offline" and "away" in error["message"]


async def test_an_app_tool_at_mcp_still_wins_on_other_nodes(cluster: Cluster) -> None:
    a, b, _ = cluster.relays
    tools = [{"method": "POST", "path": "/mcp", "description": "The app's own /mcp"}]
    async with registered_app(a, tools=tools) as app:
        link = await app.mint()
        response = await rpc(base_on(b, link), {"jsonrpc": "2.0", "id": 1, "method": "ping"})
        assert response.status_code == 200, response.text
        assert response.json()["echo"]["path"] == "/mcp"
        # GET /mcp is no tool of the app: B serves the MCP view.
        async with httpx2.AsyncClient(timeout=10) as http:
            get = await http.get(f"{base_on(b, link)}/mcp", headers={"accept": "application/json"})
        assert get.status_code == 406
