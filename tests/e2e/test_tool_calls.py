"""Tool calls through the relay: what reaches the app and what the agent gets back.

PROTOCOL.md §2.3 (forwarding and reply rules), §2.6 rows 429/502/503/504, §3.2 (revocation) and §4
(drops and holds as an agent sees them).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import TEST_RELAY_ARGS, running_relay
from tests.e2e.checks import JSON_CT, PLAIN_CT, SANDBOX_CSP, assert_error, assert_sandboxed, media
from tests.e2e.wire import App, Handler, registered_app, send

MIB = 1024 * 1024


def script_handler(call: dict[str, Any]) -> dict[str, Any] | None:
    """POST /script answers with the reply the agent put in its body; other tools echo."""
    if call["path"] == "/script":
        return json.loads(call["body"])["reply"]
    return {"status": 200, "body": {"method": call["method"], "path": call["path"]}}


SCRIPT_TOOLS = [
    {"method": "POST", "path": "/script", "description": "reply as told"},
    {"method": "GET", "path": "/ok", "description": "200"},
]


def scripted(reply: dict[str, Any]) -> bytes:
    return json.dumps({"reply": reply}).encode()


@contextlib.asynccontextmanager
async def script_app(
    relay: Any, handler: Handler = script_handler, **register: Any
) -> AsyncIterator[tuple[App, str, httpx2.AsyncClient]]:
    register.setdefault("tools", SCRIPT_TOOLS)
    async with registered_app(relay, handler, **register) as app:
        base = await app.mint()
        async with httpx2.AsyncClient(timeout=30) as client:
            yield app, base, client


async def wait_for(predicate: Any, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


@pytest.fixture(scope="module")
def patient_relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The e2e settings but a 60 s sync timeout, so held calls cannot time out mid-test."""
    args = list(TEST_RELAY_ARGS)
    args[args.index("--max-sync-tool-ms") + 1] = "60000"
    with running_relay(*args, tmp=tmp_path_factory.mktemp("patient")) as proc:
        yield proc


# --- §2.3 what the app receives ------------------------------------------------------------------

METHOD_TOOLS = [
    {"method": m, "path": "/m", "description": ""}
    for m in ("GET", "post", "Put", "PATCH", "delete")
]


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE"])
async def test_method_is_forwarded_upper_case(relay: Any, method: str) -> None:
    async with script_app(relay, tools=METHOD_TOOLS) as (app, base, client):
        resp = await client.request(method, f"{base}/m")
    assert resp.status_code == 200, resp.text
    assert [c["method"] for c in app.calls] == [method]
    assert app.calls[0]["path"] == "/m"


async def test_path_after_base_is_forwarded(relay: Any) -> None:
    tools = [{"method": "GET", "path": "/a/b.c/d_e-f", "description": ""}]
    async with script_app(relay, tools=tools) as (app, base, client):
        resp = await client.get(f"{base}/a/b.c/d_e-f")
    assert resp.status_code == 200, resp.text
    assert app.calls[0]["path"] == "/a/b.c/d_e-f"
    assert app.calls[0]["type"] == "tool_call"
    assert isinstance(app.calls[0]["id"], str)
    assert app.calls[0]["id"]


async def test_raw_body_is_forwarded_as_a_string(relay: Any) -> None:
    raw = 'not json { "a": 1 ,, ünï 😀\n\ttabs'
    tools = [{"method": "POST", "path": "/raw", "description": ""}]
    async with script_app(relay, tools=tools) as (app, base, client):
        resp = await client.post(f"{base}/raw", content=raw.encode("utf-8"))
        json_resp = await client.post(f"{base}/raw", content=b'{"by": 2}')
    assert resp.status_code == 200, resp.text
    assert json_resp.status_code == 200
    assert app.calls[0]["body"] == raw
    assert app.calls[1]["body"] == '{"by": 2}'


async def test_no_body_is_forwarded_as_empty_string(relay: Any) -> None:
    tools = [
        {"method": "GET", "path": "/g", "description": ""},
        {"method": "POST", "path": "/p", "description": ""},
    ]
    async with script_app(relay, tools=tools) as (app, base, client):
        assert (await client.get(f"{base}/g")).status_code == 200
        assert (await client.post(f"{base}/p")).status_code == 200
    assert [c["body"] for c in app.calls] == ["", ""]


async def test_header_forwarding_rules(relay: Any) -> None:
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "X-Custom": "Value With Case",
        "X-Another-Header": "two",
        "x-lower": "three",
        "X-Real-IP": "203.0.113.9",
        "X-Forwarded-For": "203.0.113.9",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "evil.example",
        "Cookie": "session=abc",
        "Authorization": "Bearer secret",
        "User-Agent": "conformance-test",
        "Accept": "application/json",
        "Origin": "https://example.com",
        "Referer": "https://example.com/page",
        "Forwarded": "for=203.0.113.9",
    }
    async with script_app(relay) as (app, base, client):
        resp = await client.get(f"{base}/ok", headers=headers)
    assert resp.status_code == 200, resp.text
    assert app.calls[0]["headers"] == {
        "content-type": "application/json; charset=utf-8",
        "x-custom": "Value With Case",
        "x-another-header": "two",
        "x-lower": "three",
    }
    assert "203.0.113.9" not in json.dumps(app.calls[0])
    assert "127.0.0.1" not in json.dumps(app.calls[0])


async def test_no_headers_forwarded_when_none_qualify(relay: Any) -> None:
    async with script_app(relay) as (app, base, client):
        resp = await client.get(f"{base}/ok", headers={"Cookie": "a=b"})
    assert resp.status_code == 200
    assert app.calls[0].get("headers", {}) == {}


# --- §2.3 reply rules: status ---------------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 201, 299, 400, 404, 418, 500, 503, 599])
async def test_valid_status_is_passed_through(relay: Any, status: int) -> None:
    async with script_app(relay) as (_app, base, client):
        resp = await client.post(
            f"{base}/script", content=scripted({"status": status, "body": {"s": status}})
        )
    assert resp.status_code == status
    assert resp.json() == {"s": status}
    assert media(resp.headers["content-type"]) == media(JSON_CT)
    assert_sandboxed(resp)


BAD_STATUSES: list[Any] = ["200", "abc", 200.0, 200.5, True, False, None, 199, 600, 0, -200, 1000]


@pytest.mark.parametrize("status", BAD_STATUSES, ids=repr)
async def test_bad_status_is_a_protocol_error(relay: Any, status: Any) -> None:
    async with script_app(relay) as (_app, base, client):
        resp = await client.post(
            f"{base}/script", content=scripted({"status": status, "body": {"x": 1}})
        )
    assert_error(resp, 502, "protocol_error")


async def test_missing_status_is_a_protocol_error(relay: Any) -> None:
    async with script_app(relay) as (_app, base, client):
        resp = await client.post(f"{base}/script", content=scripted({"body": {"x": 1}}))
    assert_error(resp, 502, "protocol_error")


async def test_float_status_on_the_wire_is_a_protocol_error(relay: Any) -> None:
    """The literal JSON text ``200.0`` is a float, not an integer."""

    async def handler(call: dict[str, Any]) -> None:
        raw = '{"type":"tool_reply","id":' + json.dumps(call["id"]) + ',"status":200.0,"body":{}}'
        await app.ws.send(raw)

    async with script_app(relay, handler) as (app, base, client):
        resp = await client.get(f"{base}/ok")
    assert_error(resp, 502, "protocol_error")


# --- §2.3 reply rules: body and content-type ------------------------------------------------------


@pytest.mark.parametrize(
    "ctype",
    [
        "text/csv",
        "text/plain",
        "text/markdown; charset=utf-8",
        "application/vnd.api+json",
        "application/octet-stream",
        "application/xml-dtd",
        "text/htmlx",
        "image/png",
    ],
)
async def test_string_body_with_content_type_is_sent_as_is(relay: Any, ctype: str) -> None:
    body = "a,b\n1,2 — ünï"
    async with script_app(relay) as (_app, base, client):
        resp = await client.post(
            f"{base}/script",
            content=scripted({"status": 200, "headers": {"content-type": ctype}, "body": body}),
        )
    assert resp.status_code == 200
    assert resp.headers["content-type"] == ctype
    assert resp.content == body.encode("utf-8")
    assert_sandboxed(resp)


@pytest.mark.parametrize("key", ["content-type", "Content-Type", "CONTENT-TYPE", "cOnTeNt-TyPe"])
async def test_content_type_key_is_matched_in_any_case(relay: Any, key: str) -> None:
    async with script_app(relay) as (_app, base, client):
        resp = await client.post(
            f"{base}/script",
            content=scripted({"status": 201, "headers": {key: "text/csv"}, "body": "x,y"}),
        )
    assert resp.status_code == 201
    assert resp.headers["content-type"] == "text/csv"
    assert resp.text == "x,y"


DOWNGRADED = [
    "text/html",
    "text/html; charset=utf-8",
    "TEXT/HTML",
    "  text/html  ;charset=utf-8",
    "Text/Html;q=1",
    "application/xhtml+xml",
    "image/svg+xml",
    "IMAGE/SVG+XML; charset=utf-8",
    "application/xml",
    "text/xml",
    "text/xml ; charset=iso-8859-1",
    "application/atom+xml",
    "application/rss+xml",
    "application/vnd.evil+XML",
    "  application/soap+xml  ",
]


@pytest.mark.parametrize("ctype", DOWNGRADED)
async def test_active_content_types_are_downgraded(relay: Any, ctype: str) -> None:
    body = "<script>alert(1)</script><svg onload=alert(1)>"
    async with script_app(relay) as (_app, base, client):
        resp = await client.post(
            f"{base}/script",
            content=scripted({"status": 200, "headers": {"Content-Type": ctype}, "body": body}),
        )
    assert resp.status_code == 200
    assert resp.headers["content-type"] == PLAIN_CT
    assert resp.content == body.encode()
    assert_sandboxed(resp)


@pytest.mark.parametrize(
    "ctype",
    [
        "text/plain\r\nSet-Cookie: a=b",
        "text/plain\nX-Evil: 1",
        "text/plain\r",
        "text/\x00plain",
        "text/plain\x01",
        "text/plain; x=\x1b[31m",
        "text/plain\x7f",
    ],
    ids=["crlf", "lf", "cr", "nul", "soh", "esc", "del"],
)
async def test_control_characters_in_content_type_are_a_protocol_error(
    relay: Any, ctype: str
) -> None:
    async with script_app(relay) as (_app, base, client):
        resp = await client.post(
            f"{base}/script",
            content=scripted({"status": 200, "headers": {"content-type": ctype}, "body": "x"}),
        )
    assert_error(resp, 502, "protocol_error")
    assert "set-cookie" not in resp.headers
    assert "x-evil" not in resp.headers


@pytest.mark.parametrize(
    "body",
    [{"count": 2}, [1, "two", None], 42, 1.5, True, "a plain string", {"u": "ünï 😀 \u2028"}],
    ids=["object", "array", "int", "float", "bool", "string", "unicode"],
)
async def test_body_without_content_type_is_json_encoded(relay: Any, body: Any) -> None:
    async with script_app(relay) as (_app, base, client):
        resp = await client.post(f"{base}/script", content=scripted({"status": 200, "body": body}))
    assert resp.status_code == 200
    assert media(resp.headers["content-type"]) == media(JSON_CT)
    assert json.loads(resp.content.decode("utf-8")) == body
    assert_sandboxed(resp)


async def test_non_string_body_ignores_the_app_content_type(relay: Any) -> None:
    reply = {"status": 200, "headers": {"content-type": "text/html"}, "body": {"html": "<b>"}}
    async with script_app(relay) as (_app, base, client):
        resp = await client.post(f"{base}/script", content=scripted(reply))
    assert resp.status_code == 200
    assert media(resp.headers["content-type"]) == media(JSON_CT)
    assert resp.json() == {"html": "<b>"}
    assert_sandboxed(resp)


async def test_absent_body_is_empty(relay: Any) -> None:
    async with script_app(relay) as (_app, base, client):
        resp = await client.post(f"{base}/script", content=scripted({"status": 200}))
        created = await client.post(f"{base}/script", content=scripted({"status": 201}))
    assert resp.status_code == 200
    assert resp.content == b""
    assert created.status_code == 201
    assert created.content == b""
    assert_sandboxed(resp)


async def test_other_app_headers_are_ignored(relay: Any) -> None:
    reply = {
        "status": 200,
        "headers": {
            "content-type": "text/plain",
            "Set-Cookie": "stolen=1",
            "Location": "https://evil.example/",
            "Access-Control-Allow-Origin": "*",
            "Content-Security-Policy": "default-src *",
            "X-Content-Type-Options": "off",
            "X-App": "1",
            "Refresh": "0; url=https://evil.example/",
        },
        "body": "hi",
    }
    async with script_app(relay) as (_app, base, client):
        resp = await client.post(f"{base}/script", content=scripted(reply))
    assert resp.status_code == 200
    assert resp.text == "hi"
    for name in ("set-cookie", "location", "access-control-allow-origin", "x-app", "refresh"):
        assert name not in resp.headers, name
    assert resp.headers.get_list("content-security-policy") == [SANDBOX_CSP]
    assert resp.headers.get_list("x-content-type-options") == ["nosniff"]


async def test_app_error_bodies_are_passed_through(relay: Any) -> None:
    error = {"error": {"code": "bad_input", "message": "by must be an integer", "extra": [1]}}
    async with script_app(relay) as (_app, base, client):
        bad = await client.post(f"{base}/script", content=scripted({"status": 400, "body": error}))
        ok_err = await client.post(
            f"{base}/script", content=scripted({"status": 200, "body": {"error": "app says no"}})
        )
        text = await client.post(
            f"{base}/script",
            content=scripted(
                {"status": 500, "headers": {"content-type": "text/plain"}, "body": "boom"}
            ),
        )
    assert bad.status_code == 400
    assert bad.json() == error
    assert_sandboxed(bad)
    assert ok_err.status_code == 200
    assert ok_err.json() == {"error": "app says no"}
    assert text.status_code == 500
    assert text.text == "boom"
    assert text.headers["content-type"] == "text/plain"
    assert_sandboxed(text)


# --- content-type downgrade as a property (hypothesis, app in a thread) ---------------------------


@contextlib.contextmanager
def app_in_thread(relay: Any, handler: Handler, **register: Any) -> Iterator[str]:
    """Run a registered app on its own event loop in a thread; yield its $BASE."""
    ready = threading.Event()
    box: dict[str, Any] = {}

    async def main() -> None:
        stop = asyncio.Event()
        box["stop"] = stop
        box["loop"] = asyncio.get_running_loop()
        async with registered_app(relay, handler, **register) as app:
            box["base"] = await app.mint()
            ready.set()
            await stop.wait()

    def run() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:
            box["error"] = exc
            ready.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(30), "app thread did not start"
    if "error" in box:
        raise box["error"]
    try:
        yield box["base"]
    finally:
        box["loop"].call_soon_threadsafe(box["stop"].set)
        thread.join(10)


LISTED = ["text/html", "application/xhtml+xml", "image/svg+xml", "application/xml", "text/xml"]


@st.composite
def odd_case(draw: st.DrawFn, text: str) -> str:
    flips = draw(st.lists(st.booleans(), min_size=len(text), max_size=len(text)))
    return "".join(c.upper() if f else c.lower() for c, f in zip(text, flips, strict=True))


subtype = st.from_regex(r"[a-z][a-z0-9.-]{0,12}", fullmatch=True)
active_essence = st.one_of(
    st.sampled_from(LISTED),
    st.builds(
        lambda t, s: f"{t}/{s}+xml",
        st.sampled_from(["application", "image", "text", "x-a"]),
        subtype,
    ),
).flatmap(odd_case)
params = st.sampled_from(["", ";charset=utf-8", "; charset=UTF-8", " ; q=1", ";a=b;c=d"])
blanks = st.sampled_from(["", " ", "  ", "   "])


def is_active(ctype: str) -> bool:
    essence = ctype.split(";", 1)[0].strip().lower()
    return essence in LISTED or essence.endswith("+xml")


def test_content_type_downgrade_property(relay: Any) -> None:
    with (
        app_in_thread(relay, script_handler, tools=SCRIPT_TOOLS) as base,
        httpx2.Client(timeout=30) as client,
    ):

        @settings(max_examples=150, deadline=None)
        @given(
            ctype=st.builds(lambda *p: "".join(p), blanks, active_essence, blanks, params),
            body=st.text(max_size=40),
        )
        def check(ctype: str, body: str) -> None:
            reply = {"status": 200, "headers": {"content-type": ctype}, "body": body}
            resp = client.post(f"{base}/script", content=scripted(reply))
            assert resp.status_code == 200, (ctype, resp.text)
            assert resp.headers["content-type"] == PLAIN_CT, ctype
            assert resp.content == body.encode("utf-8")
            assert resp.headers["x-content-type-options"] == "nosniff"
            assert resp.headers["content-security-policy"] == SANDBOX_CSP

        check()


inert_essence = st.builds(
    lambda t, s: f"{t}/{s}",
    st.sampled_from(["text", "application", "image", "audio", "font"]),
    st.from_regex(r"[a-z][a-z0-9.+-]{0,14}", fullmatch=True),
).filter(lambda c: not is_active(c))


def test_inert_content_types_pass_through_property(relay: Any) -> None:
    with (
        app_in_thread(relay, script_handler, tools=SCRIPT_TOOLS) as base,
        httpx2.Client(timeout=30) as client,
    ):

        @settings(max_examples=80, deadline=None)
        @given(ctype=st.builds(lambda e, p: e + p.strip(), inert_essence, params))
        def check(ctype: str) -> None:
            reply = {"status": 200, "headers": {"content-type": ctype}, "body": "inert"}
            resp = client.post(f"{base}/script", content=scripted(reply))
            assert resp.status_code == 200, (ctype, resp.text)
            assert resp.headers["content-type"] == ctype
            assert resp.text == "inert"

        check()


# --- §2.6 504: sync timeout -----------------------------------------------------------------------


async def test_no_reply_within_sync_timeout_is_504_and_late_reply_dropped(relay: Any) -> None:
    """The shared relay runs with a 3 s sync timeout (TEST_RELAY_ARGS)."""

    def handler(call: dict[str, Any]) -> dict[str, Any] | None:
        if call["path"] == "/ok":
            return None  # never answer in time
        return script_handler(call)

    async with script_app(relay, handler) as (app, base, client):
        started = time.monotonic()
        resp = await client.get(f"{base}/ok")
        elapsed = time.monotonic() - started
        assert_error(resp, 504, "tool_timeout")
        assert 2.9 <= elapsed < 20, elapsed
        late_id = app.calls[0]["id"]
        # The late reply is dropped: it neither breaks the socket nor leaks into another call.
        await send(app.ws, {"type": "tool_reply", "id": late_id, "status": 200, "body": "late"})
        pong = await app.request("ping")
        assert pong["type"] == "pong"
        nxt = await client.post(
            f"{base}/script", content=scripted({"status": 200, "body": {"fresh": True}})
        )
    assert nxt.status_code == 200
    assert nxt.json() == {"fresh": True}


# --- §2.6 429: in-flight cap (the real 100) -------------------------------------------------------


async def test_101st_call_in_flight_is_429(patient_relay: Any) -> None:
    release = asyncio.Event()

    async def handler(call: dict[str, Any]) -> dict[str, Any]:
        await release.wait()
        return {"status": 200, "body": {"path": call["path"]}}

    limits = httpx2.Limits(max_connections=200, max_keepalive_connections=200)
    async with registered_app(patient_relay, handler, tools=SCRIPT_TOOLS) as app:
        base = await app.mint()
        other_base = await app.mint("second token, same session")
        async with httpx2.AsyncClient(timeout=60, limits=limits) as client:
            held = [asyncio.create_task(client.get(f"{base}/ok")) for _ in range(100)]
            try:
                await wait_for(lambda: len(app.calls) >= 100, timeout=40)
                over = await client.get(f"{base}/ok", timeout=20)
                over_other_token = await client.get(f"{other_base}/ok", timeout=20)
                over_unknown_tool = await client.get(f"{base}/nosuch", timeout=20)
                over_csrf = await client.get(
                    f"{base}/ok", headers={"Sec-Fetch-Site": "cross-site"}, timeout=20
                )
                meta = await client.get(f"{base}/tools.json", timeout=20)
                pong = await app.request("ping")
                assert len(app.calls) == 100
            finally:
                release.set()
            results = await asyncio.gather(*held)
            after = await client.get(f"{base}/ok")
    assert_error(over, 429, "too_many_inflight")
    assert_error(over_other_token, 429, "too_many_inflight")
    # Check order: in-flight cap (10) before tool lookup (11); CSRF (8) before the cap.
    assert_error(over_unknown_tool, 429, "too_many_inflight")
    assert_error(over_csrf, 403, "csrf_denied")
    assert meta.status_code == 200
    assert pong["type"] == "pong"
    assert [r.status_code for r in results] == [200] * 100
    assert after.status_code == 200
    assert len(app.calls) == 101


# --- §2.6 503: drops, holds, no session -----------------------------------------------------------


async def test_dropped_socket_fails_calls_in_flight_with_503(patient_relay: Any) -> None:
    def handler(call: dict[str, Any]) -> None:
        return None  # keep the call in flight

    async with registered_app(patient_relay, handler, tools=SCRIPT_TOOLS) as app:
        base = await app.mint()
        async with httpx2.AsyncClient(timeout=30) as client:
            calls = [asyncio.create_task(client.get(f"{base}/ok")) for _ in range(3)]
            await wait_for(lambda: len(app.calls) >= 3)
            kill = await client.post(
                f"{patient_relay.http}/_debug/kill-ws/{app.session_id}?hold=60000"
            )
            assert kill.status_code == 200
            started = time.monotonic()
            results = await asyncio.gather(*calls)
            elapsed = time.monotonic() - started
            await client.post(f"{patient_relay.http}/_debug/kill-ws/{app.session_id}?end=1")
    for resp in results:
        assert_error(resp, 503, "app_offline")
    assert elapsed < 20


async def test_held_session_answers_503_with_retry_after(relay: Any) -> None:
    async with script_app(relay) as (app, base, client):
        kill = await client.post(f"{relay.http}/_debug/kill-ws/{app.session_id}?hold=60000")
        assert kill.status_code == 200
        resp = await client.get(f"{base}/ok")
        script = await client.post(f"{base}/script", content=scripted({"status": 200}))
        await client.post(f"{relay.http}/_debug/kill-ws/{app.session_id}?end=1")
    for r in (resp, script):
        error = assert_error(r, 503, "app_offline")
        assert r.headers.get("retry-after") == "2"
        assert re.search(r"offline for \d+ s\b", error["message"]), error["message"]
    assert app.calls == []


async def test_unknown_session_is_503_for_any_well_formed_token(relay: Any) -> None:
    async with httpx2.AsyncClient(timeout=10) as client:
        for token in ("as_ZZZZZZZZ_" + "A" * 22, "as_00000000_" + "_-" * 11):
            for path in ("/ok", "/agents.md", "/tools.json", "/_as_tasks/x"):
                resp = await client.get(f"{relay.http}/v1/t/{token}{path}")
                assert_error(resp, 503, "app_offline")


async def test_ended_session_looks_like_no_session(relay: Any) -> None:
    async with script_app(relay) as (app, base, client):
        assert (await client.get(f"{base}/ok")).status_code == 200
        await app.close()  # close code 1000 ends the session

        async def ended() -> httpx2.Response:
            deadline = time.monotonic() + 15
            while True:
                r = await client.get(f"{base}/agents.md")
                if r.status_code == 503 or time.monotonic() > deadline:
                    return r
                await asyncio.sleep(0.02)

        md = await ended()
        tool = await client.get(f"{base}/ok")
        token = base.rsplit("/", 1)[1]
        never = await client.get(f"{relay.http}/v1/t/{token[:3]}ZZZZZZZZ{token[11:]}/ok")
    assert_error(md, 503, "app_offline")
    assert_error(tool, 503, "app_offline")
    assert_error(never, 503, "app_offline")
    # Never reveal which tokens existed: an ended session and a never-existing one look alike.
    assert tool.json() == never.json()
    assert len(app.calls) == 1


# --- §3.2 revocation as the agent sees it ---------------------------------------------------------


async def test_revoked_token_stops_before_the_next_call(relay: Any) -> None:
    async with script_app(relay) as (app, base, client):
        other = await app.mint("keep")
        assert (await client.get(f"{base}/ok")).status_code == 200
        token = base.rsplit("/", 1)[1]
        reply = await app.request("revoke_agent_token", token=token)
        assert reply["ok"] is True
        calls_before = len(app.calls)
        revoked_call = await client.get(f"{base}/ok")
        revoked_md = await client.get(f"{base}/agents.md")
        revoked_post = await client.post(f"{base}/script", content=scripted({"status": 200}))
        still = await client.get(f"{other}/ok")
    assert_error(revoked_call, 401, "token_invalid")
    assert_error(revoked_md, 401, "token_invalid")
    assert_error(revoked_post, 401, "token_invalid")
    assert still.status_code == 200
    assert len(app.calls) == calls_before + 1
    assert app.calls[-1]["path"] == "/ok"


async def test_revocation_races_no_call_through(relay: Any) -> None:
    """Calls fired right after the revoke reply never reach the app."""
    async with script_app(relay) as (app, base, client):
        token = base.rsplit("/", 1)[1]
        reply = await app.request("revoke_agent_token", token=token)
        assert reply["ok"] is True
        results = await asyncio.gather(*(client.get(f"{base}/ok") for _ in range(20)))
        pong = await app.request("ping")
    assert pong["type"] == "pong"
    for r in results:
        assert_error(r, 401, "token_invalid")
    assert app.calls == []
