"""The `register` frame — PROTOCOL.md §1 (identifiers) and §3.1 (validation, defaults, ordering).

Every case speaks the wire protocol on a raw socket, so it checks the contract, not an SDK.
Lengths the contract gives in "chars" are JavaScript string lengths (UTF-16 code units, §6): an
astral character such as an emoji counts 2.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from websockets.asyncio.client import connect

from tests.conftest import RelayProcess, running_relay
from tests.e2e.checks import utf16_len
from tests.e2e.wire import closed_with, recv, recv_type, register_frame, registered_app, send

SESSION_ID_RE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{8}$")
SECRET_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")
EMOJI = "\U0001f600"  # one code point, two UTF-16 code units
MISSING = object()


@pytest.fixture(scope="module")
def quick_relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayProcess]:
    """A relay whose register/resume deadline is 1 s (flag form)."""
    tmp = tmp_path_factory.mktemp("quick-register")
    with running_relay("--debug", "--register-timeout-ms", "1000", tmp=tmp) as proc:
        yield proc


async def attempt(
    relay: RelayProcess, frame: dict[str, Any] | str
) -> tuple[dict, int | None, str | None]:
    """Send one register frame on a new socket; return (register_reply, close code, reason)."""
    async with connect(relay.ws, max_size=None, ping_interval=None) as ws:
        await send(ws, frame)
        reply = await recv_type(ws, "register_reply")
        if reply.get("ok") is not False:
            return reply, None, None
        code, reason = await closed_with(ws)
    return reply, code, reason


async def assert_refused(
    relay: RelayProcess, frame: dict[str, Any], code: str, close: int, reason: str | None = None
) -> None:
    reply, close_code, close_reason = await attempt(relay, frame)
    assert reply["ok"] is False, reply
    assert reply["error"]["code"] == code, reply
    assert isinstance(reply["error"].get("message"), str), reply
    assert "sessionId" not in reply and "resumeSecret" not in reply, reply
    assert close_code == close, (close_code, close_reason)
    if reason is not None:
        assert close_reason == reason


def frame_with(**fields: Any) -> dict[str, Any]:
    frame = register_frame()
    for key, value in fields.items():
        if value is MISSING:
            frame.pop(key, None)
        else:
            frame[key] = value
    return frame


async def tools_json(http: httpx2.AsyncClient, base: str) -> dict[str, Any]:
    resp = await http.get(f"{base}/tools.json")
    assert resp.status_code == 200, resp.text
    return resp.json()


# --- success -------------------------------------------------------------------------------


async def test_register_reply_carries_session_id_and_secret(relay: RelayProcess) -> None:
    replies = []
    for _ in range(2):
        async with connect(relay.ws, ping_interval=None) as ws:
            await send(ws, register_frame())
            reply = await recv(ws)
            replies.append(reply)
    for reply in replies:
        assert reply["type"] == "register_reply"
        assert reply["ok"] is True
        assert SESSION_ID_RE.match(reply["sessionId"]), reply
        assert SECRET_RE.match(reply["resumeSecret"]), reply
        assert "resumed" not in reply or reply["resumed"] is False
    # a plain socket always gets a fresh session
    assert replies[0]["sessionId"] != replies[1]["sessionId"]
    assert replies[0]["resumeSecret"] != replies[1]["resumeSecret"]


@pytest.mark.parametrize("app_id", ["a", "A.b-c_9", "x" * 64, "..", "-"])
async def test_valid_app_ids_are_accepted(
    relay: RelayProcess, http: httpx2.AsyncClient, app_id: str
) -> None:
    async with registered_app(relay, appId=app_id) as app:
        doc = await tools_json(http, await app.mint())
        assert doc["app"]["id"] == app_id
        assert doc["app"]["name"] == app_id


async def test_register_without_tools_is_accepted(
    relay: RelayProcess, http: httpx2.AsyncClient
) -> None:
    frame = frame_with(tools=MISSING)
    async with connect(relay.ws, ping_interval=None) as ws:
        await send(ws, frame)
        reply = await recv_type(ws, "register_reply")
        assert reply["ok"] is True, reply
        await send(ws, {"type": "mint_agent_token", "id": "m", "label": "x"})
        minted = await recv_type(ws, "mint_agent_token_reply")
        doc = await tools_json(http, f"{relay.http}/v1/t/{minted['token']}")
        assert doc["tools"] == []


async def test_method_defaults_to_post_and_is_upper_cased(
    relay: RelayProcess, http: httpx2.AsyncClient
) -> None:
    tools = [
        {"path": "/a"},
        {"method": "get", "path": "/b"},
        {"method": "Delete", "path": "/c", "description": "removes"},
    ]
    async with registered_app(relay, tools=tools) as app:
        base = await app.mint()
        doc = await tools_json(http, base)
        assert [(t["method"], t["path"]) for t in doc["tools"]] == [
            ("POST", "/a"),
            ("GET", "/b"),
            ("DELETE", "/c"),
        ]
        # description defaults to ""; input_schema only when the app sent one (§2.2)
        assert [t["description"] for t in doc["tools"]] == ["", "", "removes"]
        assert all("input_schema" not in t for t in doc["tools"])
        # the upper-cased method is what routes agent calls
        resp = await http.get(f"{base}/b")
        assert resp.status_code == 200, resp.text
        assert app.calls[-1]["method"] == "GET" and app.calls[-1]["path"] == "/b"
        resp = await http.post(f"{base}/a")
        assert resp.status_code == 200, resp.text
        assert app.calls[-1]["method"] == "POST" and app.calls[-1]["path"] == "/a"
        resp = await http.delete(f"{base}/c")
        assert resp.status_code == 200, resp.text
        assert app.calls[-1]["method"] == "DELETE"


@pytest.mark.parametrize("description", [123, None, ["x"], {"a": 1}, True, MISSING])
async def test_non_string_app_description_becomes_empty(
    relay: RelayProcess, http: httpx2.AsyncClient, description: Any
) -> None:
    async with connect(relay.ws, ping_interval=None) as ws:
        await send(ws, frame_with(appDescription=description))
        assert (await recv(ws))["ok"] is True
        await send(ws, {"type": "mint_agent_token", "id": "m"})
        minted = await recv(ws)
        doc = await tools_json(http, f"{relay.http}/v1/t/{minted['token']}")
        assert doc["app"]["description"] == ""


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("x" * 2000, "x" * 1024),
        ("x" * 1024, "x" * 1024),
        # 600 emoji = 1200 UTF-16 units: cut to 1024 units = 512 emoji (a code-point count
        # would keep all 600)
        (EMOJI * 600, EMOJI * 512),
        (EMOJI * 512, EMOJI * 512),
        ("é" * 1500, "é" * 1024),
    ],
    ids=["ascii-2000", "ascii-1024", "emoji-1200-units", "emoji-1024-units", "latin-1500"],
)
async def test_app_description_is_cut_to_1024_utf16_units(
    relay: RelayProcess, http: httpx2.AsyncClient, sent: str, kept: str
) -> None:
    async with registered_app(relay, appDescription=sent) as app:
        doc = await tools_json(http, await app.mint())
        assert doc["app"]["description"] == kept
        assert utf16_len(doc["app"]["description"]) <= 1024


@pytest.mark.parametrize(
    "doc",
    ["a" * 65536, EMOJI * 32768, "a" * 65534 + EMOJI, ""],
    ids=["ascii-65536", "emoji-65536-units", "mixed-65536-units", "empty"],
)
async def test_agents_md_up_to_65536_units_is_accepted(
    relay: RelayProcess, http: httpx2.AsyncClient, doc: str
) -> None:
    assert utf16_len(doc) <= 65536
    async with registered_app(relay, agentsMd=doc) as app:
        base = await app.mint()
        resp = await http.get(f"{base}/agents.md")
        assert resp.status_code == 200
        # no marker and no "tools.json" in the doc: preamble, then the doc verbatim (§2.1)
        assert resp.text.endswith("\n\n---\n\n" + doc)


# --- §3.1 validation table, row by row --------------------------------------------------------

# Row 1: appId is a string matching ^[A-Za-z0-9_.-]{1,64}$ → invalid_app_id, 4001


@pytest.mark.parametrize(
    "app_id",
    [MISSING, None, 123, ["a"], "", "x" * 65, "has space", "a/b", "é", "a:b", "tab\t", "abc\n"],
    ids=[
        "missing",
        "null",
        "number",
        "list",
        "empty",
        "65-chars",
        "space",
        "slash",
        "non-ascii",
        "colon",
        "tab",
        "trailing-newline",
    ],
)
async def test_row1_invalid_app_id(relay: RelayProcess, app_id: Any) -> None:
    await assert_refused(relay, frame_with(appId=app_id), "invalid_app_id", 4001, "invalid app_id")


# Row 2: agentsMd is a string of at most 65,536 UTF-16 units → agents_md_too_large, 4413


@pytest.mark.parametrize(
    "doc",
    ["a" * 65537, EMOJI * 32768 + "a", EMOJI * 32769, "a" * 200_000],
    ids=["ascii-65537", "emoji-plus-one", "32769-emoji", "ascii-200000"],
)
async def test_row2_agents_md_too_large(relay: RelayProcess, doc: str) -> None:
    assert utf16_len(doc) > 65536
    await assert_refused(
        relay, frame_with(agentsMd=doc), "agents_md_too_large", 4413, "agents.md too large"
    )


@pytest.mark.parametrize(
    "doc", [123, ["# doc"], {"md": "x"}, None], ids=["number", "list", "object", "null"]
)
async def test_row2_agents_md_not_a_string(relay: RelayProcess, doc: Any) -> None:
    await assert_refused(
        relay, frame_with(agentsMd=doc), "agents_md_too_large", 4413, "agents.md too large"
    )


# Row 3: tools, if present, is an array → protocol_error, 4400


@pytest.mark.parametrize(
    "tools", [{"path": "/a"}, "tools", 5, True], ids=["object", "string", "number", "bool"]
)
async def test_row3_tools_not_an_array(relay: RelayProcess, tools: Any) -> None:
    await assert_refused(relay, frame_with(tools=tools), "protocol_error", 4400, "invalid tools")


# Row 4: each tool is an object; method and description, if present, are strings


@pytest.mark.parametrize(
    "tool",
    [
        "POST /a",
        5,
        None,
        ["POST", "/a"],
        {"method": 5, "path": "/a"},
        {"method": ["POST"], "path": "/a"},
        {"method": "POST", "path": "/a", "description": 5},
        {"method": "POST", "path": "/a", "description": {"text": "x"}},
    ],
    ids=[
        "string",
        "number",
        "null",
        "list",
        "method-number",
        "method-list",
        "desc-number",
        "desc-object",
    ],
)
async def test_row4_invalid_tool(relay: RelayProcess, tool: Any) -> None:
    tools = [{"method": "GET", "path": "/ok"}, tool]
    await assert_refused(relay, frame_with(tools=tools), "protocol_error", 4400, "invalid tool")


# Row 5: path is a string matching ^/[a-zA-Z0-9_\-/.]+$ → reserved_path, 4400


@pytest.mark.parametrize(
    "path",
    [
        MISSING,
        None,
        5,
        "",
        "/",
        "a",
        "noslash/x",
        "/a b",
        "/a?b",
        "/a#b",
        "/é",
        "/a%20",
        "/a:b",
        "/a\n",
    ],
    ids=[
        "missing",
        "null",
        "number",
        "empty",
        "slash-only",
        "no-slash",
        "relative",
        "space",
        "query",
        "fragment",
        "non-ascii",
        "percent",
        "colon",
        "newline",
    ],
)
async def test_row5_invalid_path(relay: RelayProcess, path: Any) -> None:
    tool: dict[str, Any] = {"method": "POST", "description": "d"}
    if path is not MISSING:
        tool["path"] = path
    await assert_refused(
        relay, frame_with(tools=[tool]), "reserved_path", 4400, "invalid tool path"
    )


# Row 6: reserved paths — /agents.md, /tools.json and anything under them (case-insensitive),
# anything starting with /_as_ (case-sensitive)


@pytest.mark.parametrize(
    "path",
    [
        "/agents.md",
        "/AGENTS.MD",
        "/Agents.Md",
        "/agents.md/x",
        "/AGENTS.md/a/b",
        "/tools.json",
        "/TOOLS.JSON",
        "/Tools.json/x",
        "/_as_tasks",
        "/_as_tasks/t1",
        "/_as_x",
        "/_as_",
    ],
)
@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_row6_reserved_path(relay: RelayProcess, path: str, method: str) -> None:
    tools = [{"method": method, "path": path}]
    await assert_refused(relay, frame_with(tools=tools), "reserved_path", 4400, "reserved path")


@pytest.mark.parametrize(
    "path",
    [
        "/_AS_x",
        "/_As_tasks",
        "/_as",
        "/as_x",
        "/x/_as_y",
        "/docs/agents.md",
        "/x/tools.json",
        "/a-b_c/d.e",
    ],
)
async def test_row6_not_reserved(relay: RelayProcess, http: httpx2.AsyncClient, path: str) -> None:
    async with registered_app(relay, tools=[{"method": "POST", "path": path}]) as app:
        base = await app.mint()
        doc = await tools_json(http, base)
        assert [t["path"] for t in doc["tools"]] == [path]
        resp = await http.post(f"{base}{path}")
        assert resp.status_code == 200, resp.text
        assert app.calls[-1]["path"] == path


# Row 7: no two tools with the same METHOD and path → protocol_error, 4400


@pytest.mark.parametrize(
    "tools",
    [
        [{"method": "POST", "path": "/a"}, {"method": "POST", "path": "/a"}],
        [{"path": "/a"}, {"method": "post", "path": "/a"}],
        [{"method": "get", "path": "/a"}, {"method": "GET", "path": "/a", "description": "x"}],
        [{"method": "GET", "path": "/b"}, {"path": "/a"}, {"method": "Post", "path": "/a"}],
    ],
    ids=["same", "default-vs-lower", "case", "later"],
)
async def test_row7_duplicate_tool(relay: RelayProcess, tools: list[dict[str, Any]]) -> None:
    await assert_refused(relay, frame_with(tools=tools), "protocol_error", 4400, "duplicate tool")


async def test_same_path_with_different_methods_is_fine(
    relay: RelayProcess, http: httpx2.AsyncClient
) -> None:
    tools = [{"method": "GET", "path": "/a"}, {"method": "POST", "path": "/a"}]
    async with registered_app(relay, tools=tools) as app:
        doc = await tools_json(http, await app.mint())
        assert sorted(t["method"] for t in doc["tools"]) == ["GET", "POST"]


# --- checks run in the table's order -------------------------------------------------------


async def test_order_app_id_before_agents_md_and_tools(relay: RelayProcess) -> None:
    frame = frame_with(appId="bad id", agentsMd="a" * 70000, tools="nope")
    await assert_refused(relay, frame, "invalid_app_id", 4001, "invalid app_id")


async def test_order_agents_md_before_tools(relay: RelayProcess) -> None:
    frame = frame_with(agentsMd="a" * 70000, tools=[{"path": "/agents.md"}, {"path": "/agents.md"}])
    await assert_refused(relay, frame, "agents_md_too_large", 4413, "agents.md too large")


async def test_order_tool_fields_before_path(relay: RelayProcess) -> None:
    # one tool breaking row 4 (method) and row 6 (reserved path): row 4 wins
    frame = frame_with(tools=[{"method": 5, "path": "/agents.md"}])
    await assert_refused(relay, frame, "protocol_error", 4400, "invalid tool")


async def test_order_reserved_path_before_duplicate(relay: RelayProcess) -> None:
    # two identical tools on a reserved path break rows 6 and 7: row 6 wins
    frame = frame_with(tools=[{"path": "/tools.json"}, {"path": "/tools.json"}])
    await assert_refused(relay, frame, "reserved_path", 4400, "reserved path")


async def test_failed_register_creates_no_session(relay: RelayProcess) -> None:
    # the refused socket is closed; a new socket can still register normally
    await assert_refused(relay, frame_with(appId=""), "invalid_app_id", 4001)
    async with registered_app(relay) as app:
        assert SESSION_ID_RE.match(app.session_id)


# --- second register, frames before register, resume on a plain socket ---------------------


async def test_second_register_is_refused_and_changes_nothing(
    relay: RelayProcess, http: httpx2.AsyncClient
) -> None:
    async with registered_app(relay) as app:
        base = await app.mint()
        before = await tools_json(http, base)
        await send(
            app.ws,
            register_frame(appId="other-app", agentsMd="# other", tools=[{"path": "/other"}]),
        )
        reply = await asyncio.wait_for(app.frames.get(), 5)
        assert reply["type"] == "register_reply"
        assert reply["ok"] is False
        assert reply["error"]["code"] == "protocol_error"
        assert "sessionId" not in reply and "resumeSecret" not in reply
        # still the same session, same registration, socket still open and working
        assert await tools_json(http, base) == before
        doc = await http.get(f"{base}/agents.md")
        assert doc.status_code == 200 and "# other" not in doc.text
        listed = await app.request("list_agent_tokens")
        assert len(listed["tokens"]) == 1
        resp = await http.post(f"{base}/increment", json={"by": 1})
        assert resp.status_code == 200


@pytest.mark.parametrize(
    ("frame", "reply_type"),
    [
        ({"type": "mint_agent_token", "id": "x1", "label": "l"}, "mint_agent_token_reply"),
        (
            {"type": "revoke_agent_token", "id": "x2", "token": "as_00000000_" + "A" * 22},
            "revoke_agent_token_reply",
        ),
        ({"type": "list_agent_tokens", "id": "x3"}, "list_agent_tokens_reply"),
        ({"type": "update_tools", "id": "x4", "tools": [{"path": "/a"}]}, "update_tools_reply"),
    ],
    ids=["mint", "revoke", "list", "update_tools"],
)
async def test_request_before_register_gets_protocol_error(
    relay: RelayProcess, frame: dict[str, Any], reply_type: str
) -> None:
    async with connect(relay.ws, ping_interval=None) as ws:
        await send(ws, frame)
        reply = await recv(ws)
        assert reply["type"] == reply_type
        assert reply["id"] == frame["id"]
        assert reply["ok"] is False
        assert reply["error"]["code"] == "protocol_error"
        # the socket is still open and can register afterwards
        await send(ws, register_frame())
        reply = await recv(ws)
        assert reply["type"] == "register_reply" and reply["ok"] is True


async def test_other_frames_before_register_are_dropped(relay: RelayProcess) -> None:
    async with connect(relay.ws, ping_interval=None) as ws:
        # request frames without an id, and frames that are not requests: no reply at all
        for frame in [
            {"type": "mint_agent_token", "label": "no-id"},
            {"type": "list_agent_tokens"},
            {"type": "update_tools", "tools": [{"path": "/x"}]},
            {"type": "revoke_agent_token", "token": "as_00000000_" + "A" * 22},
            {"type": "tool_reply", "id": "nope", "status": 200, "body": {}},
            {"type": "task_complete", "taskId": "t1", "status": 200, "body": {}},
            {"type": "pong", "id": "p0"},
            {"type": "end", "sessionId": "00000000", "secret": "x"},
            {"type": "whatever", "id": "w"},
        ]:
            await send(ws, frame)
        await send(ws, {"type": "ping", "id": "before-register"})
        assert await recv(ws) == {"type": "pong", "id": "before-register"}
        await send(ws, register_frame())
        reply = await recv(ws)
        assert reply["type"] == "register_reply" and reply["ok"] is True
        # the id-less mint did not mint anything
        await send(ws, {"type": "list_agent_tokens", "id": "l"})
        listed = await recv(ws)
        assert listed["type"] == "list_agent_tokens_reply" and listed["tokens"] == []


async def test_resume_on_plain_unregistered_socket_closes_4400(
    relay: RelayProcess, http: httpx2.AsyncClient
) -> None:
    async with registered_app(relay) as app:
        base = await app.mint()
        # even with the right secret, a plain socket never joins an existing session
        frame = register_frame(type="resume", sessionId=app.session_id, secret=app.secret)
        async with connect(relay.ws, ping_interval=None) as ws:
            await send(ws, frame)
            reply = await recv(ws)
            # PROTOCOL.md does not name the reply type here; resume answers are register_reply
            assert reply["type"].endswith("_reply"), reply
            assert reply["ok"] is False
            assert reply["error"]["code"] == "protocol_error"
            assert await closed_with(ws) == (4400, "resume needs ?session=")
        # the real session is untouched
        resp = await http.post(f"{base}/increment", json={"by": 1})
        assert resp.status_code == 200
        assert len(app.calls) == 1


async def test_resume_on_plain_registered_socket_is_refused_but_keeps_session(
    relay: RelayProcess, http: httpx2.AsyncClient
) -> None:
    async with registered_app(relay) as app:
        base = await app.mint()
        await send(
            app.ws, register_frame(type="resume", sessionId=app.session_id, secret=app.secret)
        )
        reply = await asyncio.wait_for(app.frames.get(), 5)
        assert reply["ok"] is False
        assert reply["error"]["code"] == "protocol_error"
        pong = await app.request("ping")
        assert pong["type"] == "pong"
        resp = await http.post(f"{base}/increment", json={"by": 1})
        assert resp.status_code == 200


# --- register deadline (4408) ----------------------------------------------------------------


async def _assert_register_timeout(relay: RelayProcess) -> None:
    async with connect(relay.ws, ping_interval=None) as ws:
        start = time.monotonic()
        code, reason = await closed_with(ws, timeout=10)
        elapsed = time.monotonic() - start
    assert (code, reason) == (4408, "register timeout")
    assert 0.8 <= elapsed <= 6, elapsed


async def test_no_register_within_deadline_closes_4408(quick_relay: RelayProcess) -> None:
    await _assert_register_timeout(quick_relay)


async def test_register_deadline_from_environment(tmp_path: Any) -> None:
    env = {"AGENT_SOCKET_REGISTER_TIMEOUT_MS": "1000"}
    with running_relay(tmp=tmp_path, env=env) as proc:
        await _assert_register_timeout(proc)


async def test_registering_in_time_beats_the_deadline(quick_relay: RelayProcess) -> None:
    async with connect(quick_relay.ws, ping_interval=None) as ws:
        await asyncio.sleep(0.3)
        await send(ws, register_frame())
        assert (await recv(ws))["ok"] is True
        await asyncio.sleep(1.5)
        await send(ws, {"type": "ping", "id": "alive"})
        assert await recv(ws) == {"type": "pong", "id": "alive"}


async def test_no_resume_within_deadline_closes_4408(quick_relay: RelayProcess) -> None:
    async with registered_app(quick_relay) as app:
        url = f"{quick_relay.ws}?session={app.session_id}"
        async with connect(url, ping_interval=None) as ws:
            start = time.monotonic()
            code, reason = await closed_with(ws, timeout=10)
            elapsed = time.monotonic() - start
        assert (code, reason) == (4408, "resume timeout")
        assert 0.8 <= elapsed <= 6, elapsed
