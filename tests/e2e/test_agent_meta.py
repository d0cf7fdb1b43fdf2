"""The agent's read-only surface: agents.md, the framework preamble and tools.json.

PROTOCOL.md §2 (routing of meta paths, query string), §2.1 (agents.md and the preamble) and §2.2
(tools.json). Every test registers its own app on the shared relay and talks plain HTTP to it.
"""

from __future__ import annotations

import json
from typing import Any

import httpx2
import pytest

from tests.e2e.checks import JSON_CT, assert_error, media
from tests.e2e.wire import registered_app

MARKER = "<!-- as:contract-v1 -->"
SEPARATOR = "\n\n---\n\n"
MARKDOWN_CT = "text/markdown; charset=utf-8"
META_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


async def fetch_doc(relay: Any, agents_md: str) -> str:
    async with registered_app(relay, agentsMd=agents_md) as app:
        base = await app.mint()
        async with httpx2.AsyncClient(timeout=10) as client:
            resp = await client.get(f"{base}/agents.md")
    assert resp.status_code == 200, resp.text
    assert media(resp.headers.get("content-type")) == media(MARKDOWN_CT)
    return resp.content.decode("utf-8")


# --- §2.1 agents.md and the preamble -------------------------------------------------------------


async def test_plain_doc_gets_the_preamble_then_the_doc(relay: Any) -> None:
    doc = "# Counter\nAdds numbers. Ünïcödé ✓ 😀\n"
    text = await fetch_doc(relay, doc)
    assert text.endswith(SEPARATOR + doc)
    preamble = text[: len(text) - len(doc)]
    assert preamble.startswith(MARKER + "\n"), preamble[:80]
    assert preamble.endswith(SEPARATOR)
    assert text == preamble + doc


async def test_preamble_required_content(relay: Any) -> None:
    text = await fetch_doc(relay, "# Plain\nNothing special here.")
    preamble = text[: text.rindex(SEPARATOR) + len(SEPARATOR)]
    lower = preamble.lower()
    # Operating notes the agent must not recite.
    assert "do not recite" in lower
    # $BASE is the fetched URL minus /agents.md, used literally.
    assert "$BASE" in preamble
    assert "/agents.md" in preamble
    # Tools are listed at GET $BASE/tools.json and called as <method> $BASE<path>.
    assert "$BASE/tools.json" in preamble
    assert "GET" in preamble
    assert "input_schema" in preamble
    # Errors: framework 4xx (401, 404, 429), app errors as 2xx {"error": …}, 503 app_offline.
    for needle in ("401", "404", "429", "503", "app_offline", '"error"'):
        assert needle in preamble, needle
    assert "retry" in lower or "try again" in lower
    assert "connect" in lower
    # Keep the URL to re-read the notes after context compaction.
    assert "url" in lower or "link" in lower


async def test_preamble_is_the_same_whatever_the_doc(relay: Any) -> None:
    a = await fetch_doc(relay, "# A")
    b = await fetch_doc(relay, "# Something else\nwith lines\n")
    assert a[: -len("# A")] == b[: -len("# Something else\nwith lines\n")]


@pytest.mark.parametrize(
    "doc",
    [
        MARKER + "\n# Own contract\nMy notes.",
        "# Doc\nIntro.\n" + MARKER + "\nlater marker",
        "# Doc\nSee GET $BASE/tools.json for the list.",
        "mentions tools.json in passing",
    ],
    ids=["marker-first", "marker-inside", "tools-json-url", "tools-json-word"],
)
async def test_doc_with_marker_or_tools_json_is_served_verbatim(relay: Any, doc: str) -> None:
    assert await fetch_doc(relay, doc) == doc


async def test_empty_doc_gets_only_the_preamble(relay: Any) -> None:
    text = await fetch_doc(relay, "")
    assert text.startswith(MARKER + "\n")
    assert text.endswith(SEPARATOR)
    assert "do not recite" in text.lower()


async def test_agents_md_is_utf8_markdown(relay: Any) -> None:
    doc = MARKER + "\n# Grüße 🌍 — ½"
    async with registered_app(relay, agentsMd=doc) as app:
        base = await app.mint()
        async with httpx2.AsyncClient(timeout=10) as client:
            resp = await client.get(f"{base}/agents.md")
    assert resp.status_code == 200
    assert resp.headers["content-type"].lower().replace(" ", "") == "text/markdown;charset=utf-8"
    assert resp.content == doc.encode("utf-8")


# --- §2.2 tools.json ----------------------------------------------------------------------------

SCHEMA = {"type": "object", "properties": {"by": {"type": "integer"}}, "required": ["by"]}


async def test_tools_json_shape(relay: Any) -> None:
    tools = [
        {"method": "POST", "path": "/increment", "description": "Add", "input_schema": SCHEMA},
        {"method": "GET", "path": "/count", "description": "Read"},
        {"method": "PUT", "path": "/nullschema", "description": "Null kept", "input_schema": None},
        {"method": "delete", "path": "/lower", "description": "lower-case method"},
        {"path": "/defaults"},
        {"method": "PATCH", "path": "/empty-schema", "description": "", "input_schema": {}},
    ]
    async with registered_app(
        relay, appId="meta.app_1-x", appDescription="Describes the app", tools=tools
    ) as app:
        base = await app.mint()
        async with httpx2.AsyncClient(timeout=10) as client:
            resp = await client.get(f"{base}/tools.json")
    assert resp.status_code == 200, resp.text
    assert media(resp.headers.get("content-type")) == media(JSON_CT)
    doc = resp.json()
    assert set(doc) == {"version", "app", "tools"}
    assert doc["version"] == "1.0"
    assert doc["app"] == {
        "id": "meta.app_1-x",
        "name": "meta.app_1-x",
        "description": "Describes the app",
    }
    expected = [
        {"method": "POST", "path": "/increment", "description": "Add", "input_schema": SCHEMA},
        {"method": "GET", "path": "/count", "description": "Read"},
        {"method": "PUT", "path": "/nullschema", "description": "Null kept", "input_schema": None},
        {"method": "DELETE", "path": "/lower", "description": "lower-case method"},
        {"method": "POST", "path": "/defaults", "description": ""},
        {"method": "PATCH", "path": "/empty-schema", "description": "", "input_schema": {}},
    ]

    def key(tool: dict[str, Any]) -> tuple[str, str]:
        return (tool["method"], tool["path"])

    assert sorted(doc["tools"], key=key) == sorted(expected, key=key)
    # input_schema present exactly when sent; a JSON null is kept as null.
    raw = json.loads(resp.content)
    by_path = {t["path"]: t for t in raw["tools"]}
    assert "input_schema" not in by_path["/count"]
    assert "input_schema" not in by_path["/defaults"]
    assert "input_schema" in by_path["/nullschema"]
    assert by_path["/nullschema"]["input_schema"] is None


async def test_tools_json_app_description_defaults_and_cut(relay: Any) -> None:
    async with registered_app(relay, appDescription=12345, tools=[]) as app:
        base = await app.mint()
        async with httpx2.AsyncClient(timeout=10) as client:
            doc = (await client.get(f"{base}/tools.json")).json()
    assert doc["app"]["description"] == ""
    assert doc["tools"] == []

    async with registered_app(relay, appDescription="d" * 2000) as app:
        base = await app.mint()
        async with httpx2.AsyncClient(timeout=10) as client:
            doc = (await client.get(f"{base}/tools.json")).json()
    assert doc["app"]["description"] == "d" * 1024


async def test_tools_json_does_not_validate_agent_input(relay: Any) -> None:
    """The relay does not validate agent input against input_schema (§2.2)."""
    tools = [{"method": "POST", "path": "/typed", "description": "", "input_schema": SCHEMA}]
    async with registered_app(relay, tools=tools) as app:
        base = await app.mint()
        async with httpx2.AsyncClient(timeout=10) as client:
            resp = await client.post(f"{base}/typed", content=b'{"by": "not an int"} trailing')
    assert resp.status_code == 200, resp.text
    assert app.calls[-1]["body"] == '{"by": "not an int"} trailing'


# --- §2: any method on meta paths, query string ignored ------------------------------------------


@pytest.mark.parametrize("method", META_METHODS)
async def test_meta_paths_answer_any_method_the_same(relay: Any, method: str) -> None:
    async with registered_app(relay, agentsMd="# Any method") as app:
        base = await app.mint()
        async with httpx2.AsyncClient(timeout=10) as client:
            ref_md = await client.get(f"{base}/agents.md")
            ref_tools = await client.get(f"{base}/tools.json")
            md = await client.request(method, f"{base}/agents.md", content=b'{"x":1}')
            tools = await client.request(method, f"{base}/tools.json", content=b"ignored")
            missing_task = await client.request(method, f"{base}/_as_tasks/nope")
    assert md.status_code == 200
    assert md.content == ref_md.content
    assert media(md.headers["content-type"]) == media(MARKDOWN_CT)
    assert tools.status_code == 200
    assert tools.json() == ref_tools.json()
    assert_error(missing_task, 404, "not_found")
    assert app.calls == []


@pytest.mark.parametrize("method", META_METHODS)
async def test_task_poll_answers_any_method(relay: Any, method: str) -> None:
    def handler(call: dict[str, Any]) -> dict[str, Any]:
        return {"status": 202, "taskId": "anymethod", "body": {}}

    async with registered_app(relay, handler) as app:
        base = await app.mint()
        async with httpx2.AsyncClient(timeout=10) as client:
            start = await client.post(f"{base}/increment")
            assert start.status_code == 202
            pending = await client.request(method, f"{base}/_as_tasks/anymethod")
    assert pending.status_code == 202
    assert pending.json() == {"taskId": "anymethod", "completed": False}
    assert len(app.calls) == 1


async def test_query_string_is_ignored_on_meta_paths(relay: Any) -> None:
    async with registered_app(relay, agentsMd=MARKER + "\n# Q") as app:
        base = await app.mint()
        async with httpx2.AsyncClient(timeout=10) as client:
            md = await client.get(f"{base}/agents.md?x=1&tools.json=2")
            tools = await client.get(f"{base}/tools.json?path=/evil")
            plain = await client.get(f"{base}/tools.json")
    assert md.status_code == 200
    assert md.text == MARKER + "\n# Q"
    assert tools.status_code == 200
    assert tools.json() == plain.json()


async def test_query_string_is_ignored_for_tool_routing_and_not_forwarded(relay: Any) -> None:
    async with registered_app(relay) as app:
        base = await app.mint()
        async with httpx2.AsyncClient(timeout=10) as client:
            resp = await client.get(f"{base}/count?secret=q&path=/increment")
            unknown = await client.get(f"{base}/nosuch?x=/count")
    assert resp.status_code == 200, resp.text
    assert len(app.calls) == 1
    call = app.calls[0]
    assert call["path"] == "/count"
    assert "secret" not in json.dumps(call)
    assert_error(unknown, 404, "not_found")


async def test_meta_paths_still_answer_while_the_app_is_held(relay: Any) -> None:
    """§4: a held session keeps answering agents.md and tools.json."""
    async with registered_app(relay, agentsMd=MARKER + "\n# Held") as app:
        base = await app.mint()
        async with httpx2.AsyncClient(timeout=10) as client:
            before = (await client.get(f"{base}/tools.json")).json()
            kill = await client.post(f"{relay.http}/_debug/kill-ws/{app.session_id}?hold=60000")
            assert kill.status_code == 200
            md = await client.get(f"{base}/agents.md")
            tools = await client.get(f"{base}/tools.json")
            await client.post(f"{relay.http}/_debug/kill-ws/{app.session_id}?end=1")
    assert md.status_code == 200
    assert md.text == MARKER + "\n# Held"
    assert tools.status_code == 200
    assert tools.json() == before


# --- Headers on every /v1/t/ response (project requirement, see module note) ---------------------
#
# Referrer-Policy: no-referrer and Cache-Control: no-store keep the secret link out of Referer
# headers and caches. PROTOCOL.md does not list these two headers; they are a requirement of this
# project's brief for every response under /v1/t/, errors included.

HEADER_CASES = [
    "agents.md",
    "tools.json",
    "tool-200",
    "tool-app-error",
    "tool-502",
    "task-start",
    "task-pending",
    "task-unknown",
    "no-tool-404",
    "no-trailing-404",
    "bad-verifier-401",
    "csrf-403",
    "malformed-404",
    "no-session-503",
    "held-503",
    "too-large-413",
]


def _script(call: dict[str, Any]) -> dict[str, Any] | None:
    if call["path"] == "/script":
        return json.loads(call["body"])["reply"]
    return {"status": 200, "body": {"ok": True}}


SCRIPT_TOOLS = [
    {"method": "POST", "path": "/script", "description": "reply as told"},
    {"method": "GET", "path": "/ok", "description": "200"},
]


@pytest.mark.parametrize("case", HEADER_CASES)
async def test_privacy_headers_on_every_agent_response(relay: Any, case: str) -> None:
    async with registered_app(relay, _script, tools=SCRIPT_TOOLS) as app:
        base = await app.mint()
        token = base.rsplit("/", 1)[1]
        root = f"{relay.http}/v1/t/"
        wrong = token[:-1] + ("A" if token[-1] != "A" else "B")

        def script(reply: dict[str, Any]) -> dict[str, Any]:
            return {"content": json.dumps({"reply": reply}).encode()}

        async with httpx2.AsyncClient(timeout=10) as client:
            if case == "agents.md":
                resp = await client.get(f"{base}/agents.md")
            elif case == "tools.json":
                resp = await client.get(f"{base}/tools.json")
            elif case == "tool-200":
                resp = await client.get(f"{base}/ok")
            elif case == "tool-app-error":
                resp = await client.post(f"{base}/script", **script({"status": 500, "body": {}}))
            elif case == "tool-502":
                resp = await client.post(f"{base}/script", **script({"status": "200"}))
            elif case == "task-start":
                resp = await client.post(
                    f"{base}/script", **script({"status": 202, "taskId": "hdr"})
                )
            elif case == "task-pending":
                await client.post(f"{base}/script", **script({"status": 202, "taskId": "hdr"}))
                resp = await client.get(f"{base}/_as_tasks/hdr")
            elif case == "task-unknown":
                resp = await client.get(f"{base}/_as_tasks/unknown")
            elif case == "no-tool-404":
                resp = await client.get(f"{base}/nosuch")
            elif case == "no-trailing-404":
                resp = await client.get(f"{root}{token}")
            elif case == "bad-verifier-401":
                resp = await client.get(f"{root}{wrong}/agents.md")
            elif case == "csrf-403":
                resp = await client.get(f"{base}/ok", headers={"Sec-Fetch-Site": "cross-site"})
            elif case == "malformed-404":
                resp = await client.get(f"{root}as_nope/agents.md")
            elif case == "no-session-503":
                resp = await client.get(f"{root}as_ZZZZZZZZ_{'A' * 22}/agents.md")
            elif case == "too-large-413":
                resp = await client.post(f"{base}/script", content=b"x" * (1024 * 1024 + 1))
            else:
                assert case == "held-503"
                await client.post(f"{relay.http}/_debug/kill-ws/{app.session_id}?hold=60000")
                resp = await client.get(f"{base}/ok")
                await client.post(f"{relay.http}/_debug/kill-ws/{app.session_id}?end=1")
    assert resp.headers.get("referrer-policy") == "no-referrer", (case, dict(resp.headers))
    cache = resp.headers.get("cache-control", "")
    assert "no-store" in [d.strip().lower() for d in cache.split(",")], (case, cache)


async def test_meta_paths_do_not_forward_anything(relay: Any) -> None:
    """agents.md and tools.json are answered by the relay; no tool_call reaches the app."""
    async with registered_app(relay) as app:
        base = await app.mint()
        async with httpx2.AsyncClient(timeout=10) as client:
            for path in ("agents.md", "tools.json", "_as_tasks/x", "_as_other"):
                await client.post(f"{base}/{path}", content=b"{}")
        pong = await app.request("ping")
    assert pong["type"] == "pong"
    assert app.calls == []
