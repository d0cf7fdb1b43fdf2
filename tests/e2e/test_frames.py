"""App socket frames — PROTOCOL.md §3 (framing), §3.4 (update_tools), §3.5 (ping/heartbeat),
§4/§5/§6 (frame size limit: 4 Mi UTF-16 code units, close 1009)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import httpx2
import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.conftest import RelayProcess
from tests.e2e.wire import (
    COUNTER_TOOLS,
    closed_with,
    recv,
    register_frame,
    registered_app,
    send,
)

GARBAGE = [
    "not json",
    "{not json either",
    "[1, 2, 3]",
    "42",
    "null",
    "true",
    '"a string"',
    "{}",
    '{"type": 5, "id": "n"}',
    '{"type": null, "id": "n"}',
    '{"type": "no_such_frame", "id": "u1"}',
    '{"id": "only-id"}',
    "",
]
FRAME_LIMIT = 4 * 1024 * 1024  # UTF-16 code units


async def register_raw(ws: ClientConnection, **overrides: Any) -> dict[str, Any]:
    await send(ws, register_frame(**overrides))
    reply = await recv(ws)
    assert reply["type"] == "register_reply" and reply["ok"] is True, reply
    return reply


async def mint_raw(ws: ClientConnection, relay: RelayProcess) -> str:
    await send(ws, {"type": "mint_agent_token", "id": "mint", "label": "t"})
    reply = await recv(ws)
    assert reply["type"] == "mint_agent_token_reply" and reply["ok"] is True, reply
    return f"{relay.http}/v1/t/{reply['token']}"


async def ping_sync(ws: ClientConnection, ping_id: str = "sync") -> None:
    """The next frame after everything sent so far must be this ping's pong."""
    await send(ws, {"type": "ping", "id": ping_id})
    assert await recv(ws) == {"type": "pong", "id": ping_id}


async def wait_status(http: httpx2.AsyncClient, url: str, status: int) -> httpx2.Response:
    for _ in range(60):
        resp = await http.get(url)
        if resp.status_code == status:
            return resp
        await asyncio.sleep(0.1)
    return resp


# --- framing ---------------------------------------------------------------------------------


async def test_garbage_frames_are_ignored_after_register(
    relay: RelayProcess, http: httpx2.AsyncClient
) -> None:
    async with connect(relay.ws, ping_interval=None) as ws:
        await register_raw(ws)
        base = await mint_raw(ws, relay)
        for raw in GARBAGE:
            await send(ws, raw)
        await ping_sync(ws)
        # the socket still carries tool calls
        call = asyncio.create_task(http.post(f"{base}/increment", json={"by": 1}))
        frame = await recv(ws)
        assert frame["type"] == "tool_call"
        await send(ws, {"type": "tool_reply", "id": frame["id"], "status": 200, "body": {"n": 1}})
        resp = await call
        assert resp.status_code == 200 and resp.json() == {"n": 1}


async def test_garbage_frames_are_ignored_before_register(relay: RelayProcess) -> None:
    async with connect(relay.ws, ping_interval=None) as ws:
        for raw in GARBAGE:
            await send(ws, raw)
        await ping_sync(ws)
        await register_raw(ws)


async def test_binary_frames_are_decoded_as_utf8(
    relay: RelayProcess, http: httpx2.AsyncClient
) -> None:
    async with connect(relay.ws, ping_interval=None) as ws:
        frame = register_frame(appDescription="café ☕")
        await ws.send(json.dumps(frame, ensure_ascii=False).encode("utf-8"))
        reply = await recv(ws)
        assert reply["type"] == "register_reply" and reply["ok"] is True
        await ws.send(b'{"type":"ping","id":"bin"}')
        assert await recv(ws) == {"type": "pong", "id": "bin"}
        await ws.send(b'{"type":"mint_agent_token","id":"m","label":"b"}')
        minted = await recv(ws)
        assert minted["type"] == "mint_agent_token_reply" and minted["ok"] is True
        resp = await http.get(f"{relay.http}/v1/t/{minted['token']}/tools.json")
        assert resp.json()["app"]["description"] == "café ☕"


async def test_heartbeat_is_answered_byte_exact(relay: RelayProcess) -> None:
    async with connect(relay.ws, ping_interval=None) as ws:
        await register_raw(ws)
        for _ in range(3):
            await ws.send('{"type":"ping","id":"as_hb"}')
            raw = await asyncio.wait_for(ws.recv(), 5)
            assert isinstance(raw, str)  # a text frame
            assert raw == '{"type":"pong","id":"as_hb"}'


async def test_heartbeat_before_register_is_answered_byte_exact(relay: RelayProcess) -> None:
    async with connect(relay.ws, ping_interval=None) as ws:
        await ws.send('{"type":"ping","id":"as_hb"}')
        assert await asyncio.wait_for(ws.recv(), 5) == '{"type":"pong","id":"as_hb"}'


@pytest.mark.parametrize("ping_id", ["p1", "", "with space ü ☕", "as_hb2", "x" * 500])
async def test_ping_echoes_id(relay: RelayProcess, ping_id: str) -> None:
    async with connect(relay.ws, ping_interval=None) as ws:
        await register_raw(ws)
        await send(ws, {"type": "ping", "id": ping_id})
        assert await recv(ws) == {"type": "pong", "id": ping_id}
        # spaced JSON for the heartbeat id still gets a pong (only the reply text is fixed)
        await send(ws, '{ "type" : "ping", "id" : "as_hb" }')
        assert await recv(ws) == {"type": "pong", "id": "as_hb"}


async def test_pong_from_app_gets_no_reply(relay: RelayProcess) -> None:
    async with connect(relay.ws, ping_interval=None) as ws:
        await register_raw(ws)
        await send(ws, {"type": "pong", "id": "p"})
        await ping_sync(ws)


# --- update_tools (§3.4) ---------------------------------------------------------------------


async def test_update_tools_replaces_tools_and_keeps_doc(
    relay: RelayProcess, http: httpx2.AsyncClient
) -> None:
    async with registered_app(relay, agentsMd="# Original doc") as app:
        base = await app.mint()
        new_tools = [
            {"path": "/fresh", "description": "new one"},
            {"method": "get", "path": "/status", "input_schema": None},
        ]
        reply = await app.request(
            "update_tools", tools=new_tools, appId="changed-id", appDescription="changed"
        )
        assert reply["type"] == "update_tools_reply"
        assert reply["ok"] is True
        doc = (await http.get(f"{base}/tools.json")).json()
        assert [(t["method"], t["path"], t["description"]) for t in doc["tools"]] == [
            ("POST", "/fresh", "new one"),
            ("GET", "/status", ""),
        ]
        assert "input_schema" not in doc["tools"][0]
        assert doc["tools"][1]["input_schema"] is None
        # appId and appDescription do not change
        assert doc["app"]["id"] == "test-app"
        assert doc["app"]["description"] == "An app for tests"
        # without agentsMd the doc is kept
        md = await http.get(f"{base}/agents.md")
        assert md.text.endswith("# Original doc")
        # routing follows the new list
        resp = await http.post(f"{base}/fresh")
        assert resp.status_code == 200 and app.calls[-1]["path"] == "/fresh"
        resp = await http.post(f"{base}/increment", json={"by": 1})
        assert resp.status_code == 404 and resp.json()["error"]["code"] == "not_found"


async def test_update_tools_with_new_doc(relay: RelayProcess, http: httpx2.AsyncClient) -> None:
    async with registered_app(relay, agentsMd="# Original doc") as app:
        base = await app.mint()
        reply = await app.request("update_tools", tools=COUNTER_TOOLS, agentsMd="# Second doc")
        assert reply["ok"] is True
        md = await http.get(f"{base}/agents.md")
        assert md.text.endswith("# Second doc")
        assert "# Original doc" not in md.text


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"tools": {"path": "/a"}}, "protocol_error"),
        ({"tools": ["POST /a"]}, "protocol_error"),
        ({"tools": [{"method": 5, "path": "/a"}]}, "protocol_error"),
        ({"tools": [{"path": "/a", "description": 7}]}, "protocol_error"),
        ({"tools": [{"path": "no-slash"}]}, "reserved_path"),
        ({"tools": [{"path": "/AGENTS.md"}]}, "reserved_path"),
        ({"tools": [{"path": "/_as_tasks"}]}, "reserved_path"),
        ({"tools": [{"path": "/a"}, {"method": "post", "path": "/a"}]}, "protocol_error"),
        ({"tools": COUNTER_TOOLS, "agentsMd": "a" * 65537}, "agents_md_too_large"),
        ({"tools": COUNTER_TOOLS, "agentsMd": 42}, "agents_md_too_large"),
        ({"tools": "nope", "agentsMd": "\U0001f600" * 32769}, "agents_md_too_large"),
    ],
    ids=[
        "tools-object",
        "tool-string",
        "method-number",
        "desc-number",
        "bad-path",
        "reserved-md",
        "reserved-as",
        "duplicate",
        "md-too-large",
        "md-not-string",
        "md-before-tools",
    ],
)
async def test_update_tools_failure_changes_nothing(
    relay: RelayProcess, http: httpx2.AsyncClient, fields: dict[str, Any], code: str
) -> None:
    async with registered_app(relay, agentsMd="# Original doc") as app:
        base = await app.mint()
        before = (await http.get(f"{base}/tools.json")).json()
        fields = {"agentsMd": "# Changed doc", **fields}
        reply = await app.request("update_tools", **fields)
        assert reply["type"] == "update_tools_reply"
        assert reply["ok"] is False
        assert reply["error"]["code"] == code
        # nothing changed and the socket stays open
        assert (await http.get(f"{base}/tools.json")).json() == before
        md = await http.get(f"{base}/agents.md")
        assert md.text.endswith("# Original doc")
        assert (await app.request("ping"))["type"] == "pong"
        resp = await http.post(f"{base}/increment", json={"by": 1})
        assert resp.status_code == 200


@pytest.mark.parametrize("frame_id", ["absent", 5, None, ["u"]])
async def test_update_tools_without_string_id_is_ignored(
    relay: RelayProcess, http: httpx2.AsyncClient, frame_id: Any
) -> None:
    async with connect(relay.ws, ping_interval=None) as ws:
        await register_raw(ws)
        base = await mint_raw(ws, relay)
        before = (await http.get(f"{base}/tools.json")).json()
        frame: dict[str, Any] = {
            "type": "update_tools",
            "tools": [{"path": "/other"}],
            "agentsMd": "# changed",
        }
        if frame_id != "absent":
            frame["id"] = frame_id
        await send(ws, frame)
        await ping_sync(ws)  # no update_tools_reply came first
        assert (await http.get(f"{base}/tools.json")).json() == before
        assert "# changed" not in (await http.get(f"{base}/agents.md")).text


async def test_update_tools_leaves_calls_in_flight_alone(
    relay: RelayProcess, http: httpx2.AsyncClient
) -> None:
    release = asyncio.Event()

    async def slow(call: dict[str, Any]) -> dict[str, Any]:
        await release.wait()
        return {"status": 200, "body": {"done": call["path"]}}

    async with registered_app(relay, handler=slow) as app:
        base = await app.mint()
        call = asyncio.create_task(http.post(f"{base}/increment", json={"by": 1}))
        for _ in range(50):
            if app.calls:
                break
            await asyncio.sleep(0.05)
        assert app.calls, "the call never reached the app"
        reply = await app.request("update_tools", tools=[{"path": "/other"}])
        assert reply["ok"] is True
        release.set()
        resp = await call
        assert resp.status_code == 200
        assert resp.json() == {"done": "/increment"}


# --- frame size (§4, §5, §6) -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("char", "count"),
    [("€", 2_100_000), ("\U0001f600", 1_550_000)],
    ids=["3-byte-chars", "astral-chars"],
)
async def test_six_megabyte_non_ascii_register_is_accepted(
    relay: RelayProcess, http: httpx2.AsyncClient, char: str, count: int
) -> None:
    frame = register_frame(appDescription=char * count)
    text = json.dumps(frame, ensure_ascii=False)
    assert len(text.encode("utf-8")) > 6_000_000
    assert len(text.encode("utf-16-le")) // 2 < FRAME_LIMIT
    async with connect(relay.ws, ping_interval=None, max_size=None) as ws:
        await ws.send(text)
        reply = await recv(ws, timeout=20)
        assert reply["type"] == "register_reply" and reply["ok"] is True, reply
        base = await mint_raw(ws, relay)
        doc = (await http.get(f"{base}/tools.json")).json()
        units = len(char.encode("utf-16-le")) // 2
        assert doc["app"]["description"] == char * (1024 // units)


def register_text_of_length(units: int) -> str:
    """An ASCII register frame exactly ``units`` long (ASCII: one UTF-16 unit per char)."""
    bare = json.dumps(register_frame(appDescription=""))
    text = json.dumps(register_frame(appDescription="d" * (units - len(bare))))
    assert len(text) == units
    return text


async def test_frame_of_exactly_the_limit_is_accepted(relay: RelayProcess) -> None:
    async with connect(relay.ws, ping_interval=None) as ws:
        with contextlib.suppress(Exception):
            await ws.send(register_text_of_length(FRAME_LIMIT))
        reply = await recv(ws, timeout=20)
        assert reply["type"] == "register_reply" and reply["ok"] is True, reply


async def test_frame_one_unit_over_the_limit_closes_1009(relay: RelayProcess) -> None:
    async with connect(relay.ws, ping_interval=None) as ws:
        with contextlib.suppress(Exception):
            await ws.send(register_text_of_length(FRAME_LIMIT + 1))
        assert await closed_with(ws, timeout=20) == (1009, "frame too large")


async def send_oversized(ws: ClientConnection) -> None:
    text = '{"type":"ping","id":"' + "x" * (5 * 1024 * 1024) + '"}'
    with contextlib.suppress(Exception):
        await ws.send(text)


async def test_oversized_frame_closes_1009_and_ends_session(
    relay: RelayProcess, http: httpx2.AsyncClient
) -> None:
    async with connect(relay.ws, ping_interval=None) as ws:
        await register_raw(ws)
        base = await mint_raw(ws, relay)
        await send_oversized(ws)
        assert await closed_with(ws, timeout=20) == (1009, "frame too large")
    resp = await wait_status(http, f"{base}/agents.md", 503)
    assert resp.status_code == 503
    assert resp.json()["error"]["code"] == "app_offline"


async def test_oversized_frame_before_register_closes_1009(relay: RelayProcess) -> None:
    async with connect(relay.ws, ping_interval=None) as ws:
        await send_oversized(ws)
        assert await closed_with(ws, timeout=20) == (1009, "frame too large")


async def test_oversized_frame_on_resume_socket_closes_only_that_socket(
    relay: RelayProcess, http: httpx2.AsyncClient
) -> None:
    async with registered_app(relay) as app:
        base = await app.mint()
        async with connect(f"{relay.ws}?session={app.session_id}", ping_interval=None) as ws:
            await send_oversized(ws)
            assert await closed_with(ws, timeout=20) == (1009, "frame too large")
        # the session and its attached app are untouched
        assert (await app.request("ping"))["type"] == "pong"
        resp = await http.post(f"{base}/increment", json={"by": 1})
        assert resp.status_code == 200
        state = (await http.get(f"{relay.http}/_debug/state/{app.session_id}")).json()
        assert state["session"] is True and state["appConnected"] is True
