"""Errors on the agent surface: CSRF, the §2.6 table and the order of checks on ``/v1/t/…``.

PROTOCOL.md §2.5 (CSRF), §2.6 (error body, every row reachable over HTTP, check order 1–11) and §1
(token format). Tests that need exact bytes on the wire (Upgrade headers, a body that is never
finished) use a raw asyncio socket instead of an HTTP client.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import connect

from tests.conftest import TEST_RELAY_ARGS, running_relay
from tests.e2e.checks import assert_error, check_error
from tests.e2e.wire import registered_app

MIB = 1024 * 1024
TOKEN_RE = re.compile(r"^as_([0-9A-HJKMNP-TV-Z]{8})_([A-Za-z0-9_-]{22})$")
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
NO_SESSION_TOKEN = "as_ZZZZZZZZ_" + "A" * 22  # well-formed; no such session on a fresh relay
WS_KEY = base64.b64encode(b"0123456789abcdef").decode()


def tool_handler(call: dict[str, Any]) -> dict[str, Any]:
    return {"status": 200, "body": {"called": call["path"]}}


TOOLS = [
    {"method": "POST", "path": "/act", "description": "has side effects"},
    {"method": "GET", "path": "/read", "description": "reads"},
]


def wrong_verifier(token: str) -> str:
    last = token[-1]
    return token[:-1] + ("A" if last != "A" else "B")


# --- a raw HTTP/1.1 exchange ----------------------------------------------------------------------


@dataclass
class Raw:
    status: int
    headers: dict[str, str]
    body: bytes
    elapsed: float  # seconds from the first byte sent to the end of the response head
    sent: int  # body bytes the client managed to write

    def error(self, status: int, code: str) -> dict[str, Any]:
        return check_error(self.status, self.headers, self.body, status, code)


async def raw_http(
    port: int,
    head: str,
    body: bytes = b"",
    *,
    chunked: bool = False,
    timeout: float = 15,
) -> Raw:
    """Send ``head`` (request line and headers, without the blank line), then ``body`` in the
    background while the response is read; the body is never finished beyond what is given."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    sent = 0

    async def pump() -> None:
        nonlocal sent
        step = 64 * 1024
        try:
            for i in range(0, len(body), step):
                piece = body[i : i + step]
                writer.write(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
                await writer.drain()
                sent += len(piece)
        except (ConnectionError, OSError):
            pass

    started = time.monotonic()
    writer.write(head.encode("latin-1") + b"\r\n\r\n")
    pumping = asyncio.create_task(pump())
    try:
        async with asyncio.timeout(timeout):
            raw_head = await reader.readuntil(b"\r\n\r\n")
            elapsed = time.monotonic() - started
            lines = raw_head.decode("latin-1").split("\r\n")
            status = int(lines[0].split(" ")[1])
            headers: dict[str, str] = {}
            for line in lines[1:]:
                if line:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
            if "content-length" in headers:
                data = await reader.readexactly(int(headers["content-length"]))
            elif headers.get("transfer-encoding", "").lower() == "chunked":
                data = b""
                while True:
                    size = int((await reader.readuntil(b"\r\n")).strip(), 16)
                    if size == 0:
                        break
                    data += await reader.readexactly(size)
                    await reader.readexactly(2)
            else:
                data = await reader.read()
    finally:
        pumping.cancel()
        writer.close()
    return Raw(status, headers, data, elapsed, sent)


def head(method: str, path: str, port: int, *extra: str) -> str:
    return "\r\n".join([f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", *extra])


WS_UPGRADE = (
    "Upgrade: websocket",
    "Connection: Upgrade",
    f"Sec-WebSocket-Key: {WS_KEY}",
    "Sec-WebSocket-Version: 13",
)
H2C_UPGRADE = (
    "Upgrade: h2c",
    "Connection: Upgrade, HTTP2-Settings",
    "HTTP2-Settings: AAMAAABkAAQAAP__",
)


# --- §2.5 CSRF ------------------------------------------------------------------------------------

SEC_FETCH_SITE = [None, "none", "", "same-origin", "same-site", "cross-site"]
ALLOWED = {None, "none", ""}


@pytest.mark.parametrize("site", SEC_FETCH_SITE, ids=repr)
@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_csrf_on_tool_paths(relay: Any, site: str | None, method: str) -> None:
    headers = {} if site is None else {"Sec-Fetch-Site": site}
    path = "/act" if method == "POST" else "/read"
    async with registered_app(relay, tool_handler, tools=TOOLS) as app:
        base = await app.mint()
        async with httpx2.AsyncClient(timeout=15) as client:
            resp = await client.request(method, f"{base}{path}", headers=headers, content=b"{}")
        pong = await app.request("ping")
    assert pong["type"] == "pong"
    if site in ALLOWED:
        assert resp.status_code == 200, resp.text
        assert resp.json() == {"called": path}
        assert len(app.calls) == 1
    else:
        assert_error(resp, 403, "csrf_denied")
        assert app.calls == []


@pytest.mark.parametrize("site", SEC_FETCH_SITE, ids=repr)
async def test_csrf_exempt_meta_paths(relay: Any, site: str | None) -> None:
    headers = {} if site is None else {"Sec-Fetch-Site": site}

    def handler(call: dict[str, Any]) -> dict[str, Any]:
        return {"status": 202, "taskId": "csrf-task"}

    async with registered_app(relay, handler, tools=TOOLS) as app:
        base = await app.mint()
        async with httpx2.AsyncClient(timeout=15) as client:
            started = await client.post(f"{base}/act")
            assert started.status_code == 202
            md = await client.get(f"{base}/agents.md", headers=headers)
            tools = await client.post(f"{base}/tools.json", headers=headers)
            task = await client.get(f"{base}/_as_tasks/csrf-task", headers=headers)
            missing = await client.get(f"{base}/_as_tasks/missing", headers=headers)
            other = await client.get(f"{base}/_as_other", headers=headers)
    assert md.status_code == 200
    assert md.headers["content-type"].lower().startswith("text/markdown")
    assert tools.status_code == 200
    assert tools.json()["version"] == "1.0"
    assert task.status_code == 202
    assert task.json() == {"taskId": "csrf-task", "completed": False}
    # Meta paths (7) are decided before CSRF (8): unknown ones are 404, never 403.
    assert_error(missing, 404, "not_found")
    assert_error(other, 404, "not_found")
    assert len(app.calls) == 1


async def test_csrf_before_tool_lookup(relay: Any) -> None:
    async with registered_app(relay, tool_handler, tools=TOOLS) as app:
        base = await app.mint()
        async with httpx2.AsyncClient(timeout=15) as client:
            denied = await client.post(f"{base}/nosuch", headers={"Sec-Fetch-Site": "cross-site"})
            wrong_method = await client.get(f"{base}/act", headers={"Sec-Fetch-Site": "same-site"})
            plain = await client.post(f"{base}/nosuch")
    assert_error(denied, 403, "csrf_denied")
    assert_error(wrong_method, 403, "csrf_denied")
    assert_error(plain, 404, "not_found")
    assert app.calls == []


async def test_csrf_before_app_offline(relay: Any) -> None:
    async with registered_app(relay, tool_handler, tools=TOOLS) as app:
        base = await app.mint()
        async with httpx2.AsyncClient(timeout=15) as client:
            kill = await client.post(f"{relay.http}/_debug/kill-ws/{app.session_id}?hold=60000")
            assert kill.status_code == 200
            denied = await client.post(f"{base}/act", headers={"Sec-Fetch-Site": "cross-site"})
            offline = await client.post(f"{base}/act")
            await client.post(f"{relay.http}/_debug/kill-ws/{app.session_id}?end=1")
    assert_error(denied, 403, "csrf_denied")
    assert_error(offline, 503, "app_offline")
    assert offline.headers.get("retry-after") == "2"


# The CSRF check before the in-flight cap (8 before 10) and the cap before the tool lookup
# (10 before 11) need 100 calls in flight: see test_tool_calls.py::test_101st_call_in_flight_is_429.


# --- §1 / §2.6 (1): malformed tokens --------------------------------------------------------------


def malformed_variants(token: str) -> list[str]:
    sid, verifier = token[3:11], token[12:]
    return [
        "xs_" + token[3:],
        "AS_" + token[3:],
        "as-" + token[3:],
        token[3:],
        "as__" + token[3:],
        f"as_{sid[:7]}_{verifier}",
        f"as_{sid}9_{verifier}",
        f"as_{sid}_{verifier[:21]}",
        f"as_{sid}_{verifier}A",
        f"as_I{sid[1:]}_{verifier}",
        f"as_{sid[:7]}L_{verifier}",
        f"as_O{sid[1:]}_{verifier}",
        f"as_{sid[:4]}U{sid[5:]}_{verifier}",
        f"as_{sid.lower() if sid.lower() != sid else 'abcdefgh'}_{verifier}",
        f"as_{sid}_{verifier[:21]}.",
        f"as_{sid}_{verifier[:10]}~{verifier[11:]}",
        f"as_{sid}_{verifier[:10]}+{verifier[11:]}",
        f"as_{sid}_{verifier[:21]}=",
        f"as_{sid}-{verifier}",
        f"as_{sid}{verifier}",
        f"{token}_",
        "as_",
        "",
    ]


async def test_malformed_tokens_are_404(relay: Any) -> None:
    async with registered_app(relay, tool_handler, tools=TOOLS) as app:
        base = await app.mint()
        token = base.rsplit("/", 1)[1]
        assert TOKEN_RE.match(token)
        async with httpx2.AsyncClient(timeout=15) as client:
            for bad in malformed_variants(token):
                assert not TOKEN_RE.match(bad), bad
                for path in ("/agents.md", "/tools.json", "/act", "/_as_tasks/x"):
                    resp = await client.post(f"{relay.http}/v1/t/{bad}{path}")
                    assert_error(resp, 404, "not_found")
    assert app.calls == []


@st.composite
def malformed_token(draw: st.DrawFn) -> str:
    sid = "".join(draw(st.lists(st.sampled_from(CROCKFORD), min_size=8, max_size=8)))
    verifier = draw(st.from_regex(r"[A-Za-z0-9_-]{22}", fullmatch=True))
    prefix = "as_"
    bad_sid_char = st.sampled_from(list("ILOUilou.~!$*+,;=") + list("abcxyz"))
    bad_verifier_char = st.sampled_from(list(".~!$*+,;=@:"))
    kind = draw(st.sampled_from(["prefix", "sid-len", "ver-len", "sid-char", "ver-char", "sep"]))
    if kind == "prefix":
        prefix = draw(st.from_regex(r"[A-Za-z_-]{0,5}", fullmatch=True))
    elif kind == "sid-len":
        n = draw(st.integers(0, 12).filter(lambda n: n != 8))
        sid = (sid * 2)[:n]
    elif kind == "ver-len":
        n = draw(st.integers(0, 30).filter(lambda n: n != 22))
        verifier = (verifier * 2)[:n]
    elif kind == "sid-char":
        i = draw(st.integers(0, 7))
        sid = sid[:i] + draw(bad_sid_char) + sid[i + 1 :]
    elif kind == "ver-char":
        i = draw(st.integers(0, 21))
        verifier = verifier[:i] + draw(bad_verifier_char) + verifier[i + 1 :]
    else:
        return f"{prefix}{sid}{draw(st.sampled_from(['', '-', '__', '.']))}{verifier}"
    return f"{prefix}{sid}_{verifier}"


def test_malformed_token_property(relay: Any) -> None:
    with httpx2.Client(timeout=15) as client:

        @settings(max_examples=200, deadline=None)
        @given(token=malformed_token(), path=st.sampled_from(["/agents.md", "/act"]))
        def check(token: str, path: str) -> None:
            assert not TOKEN_RE.match(token)
            resp = client.post(f"{relay.http}/v1/t/{token}{path}")
            assert_error(resp, 404, "not_found")

        check()


def test_well_formed_token_without_session_property(relay: Any) -> None:
    """Any well-formed token for no session is 503 app_offline, never 404 or 401 (§2.6)."""
    with httpx2.Client(timeout=15) as client:

        @settings(max_examples=50, deadline=None)
        @given(
            sid=st.lists(st.sampled_from(CROCKFORD), min_size=8, max_size=8).map("".join),
            verifier=st.from_regex(r"[A-Za-z0-9_-]{22}", fullmatch=True),
        )
        def check(sid: str, verifier: str) -> None:
            token = f"as_{sid}_{verifier}"
            assert TOKEN_RE.match(token)
            resp = client.post(f"{relay.http}/v1/t/{token}/act")
            assert_error(resp, 503, "app_offline")

        check()


# --- §2.6 (2): Upgrade headers on agent URLs ----------------------------------------------------


@pytest.mark.parametrize("path", ["/agents.md", "/tools.json", "/act", "/_as_tasks/x", "/nosuch"])
@pytest.mark.parametrize("upgrade", ["websocket", "h2c"])
async def test_upgrade_on_agent_url_is_400(relay: Any, path: str, upgrade: str) -> None:
    async with registered_app(relay, tool_handler, tools=TOOLS) as app:
        base = await app.mint()
        target = base.removeprefix(relay.http) + path
        extra = WS_UPGRADE if upgrade == "websocket" else H2C_UPGRADE
        raw = await raw_http(relay.port, head("GET", target, relay.port, *extra))
        pong = await app.request("ping")
    raw.error(400, "protocol_error")
    assert pong["type"] == "pong"
    assert app.calls == []


async def test_websocket_client_cannot_open_an_agent_url(relay: Any) -> None:
    from websockets.exceptions import InvalidStatus

    async with registered_app(relay, tool_handler, tools=TOOLS) as app:
        base = await app.mint()
        url = base.replace("http://", "ws://") + "/act"
        with pytest.raises(InvalidStatus) as info:
            async with connect(url):
                pass
    assert info.value.response.status_code == 400
    assert json.loads(info.value.response.body)["error"]["code"] == "protocol_error"
    assert app.calls == []


async def test_any_upgrade_header_without_connection_upgrade_is_400(relay: Any) -> None:
    async with registered_app(relay, tool_handler, tools=TOOLS) as app:
        base = await app.mint()
        async with httpx2.AsyncClient(timeout=15) as client:
            h2c = await client.post(f"{base}/act", headers={"Upgrade": "h2c"})
            other = await client.get(f"{base}/agents.md", headers={"Upgrade": "foo/1"})
    assert_error(h2c, 400, "protocol_error")
    assert_error(other, 400, "protocol_error")
    assert app.calls == []


# --- §2.6 (3): body over 1 MiB ------------------------------------------------------------------


async def test_body_of_exactly_1_mib_is_accepted(relay: Any) -> None:
    async with registered_app(relay, tool_handler, tools=TOOLS) as app:
        base = await app.mint()
        async with httpx2.AsyncClient(timeout=30) as client:
            resp = await client.post(f"{base}/act", content=b"a" * MIB)
    assert resp.status_code == 200, resp.text
    assert len(app.calls) == 1
    assert len(app.calls[0]["body"]) == MIB


async def test_body_over_1_mib_is_413(relay: Any) -> None:
    """What a plain HTTP client sees: it sends 1 MiB + 1 and must get the 413 back."""
    async with registered_app(relay, tool_handler, tools=TOOLS) as app:
        base = await app.mint()
        async with httpx2.AsyncClient(timeout=30) as client:
            resp = await client.post(f"{base}/act", content=b"a" * (MIB + 1))
    assert_error(resp, 413, "body_too_large")
    assert app.calls == []


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
async def test_body_over_1_mib_raw(relay: Any, framing: str) -> None:
    async with registered_app(relay, tool_handler, tools=TOOLS) as app:
        base = await app.mint()
        target = base.removeprefix(relay.http) + "/act"
        length = (
            f"Content-Length: {MIB + 1}"
            if framing == "content-length"
            else "Transfer-Encoding: chunked"
        )
        raw = await raw_http(
            relay.port,
            head("POST", target, relay.port, length),
            b"a" * (MIB + 1),
            chunked=framing == "chunked",
        )
    raw.error(413, "body_too_large")
    assert app.calls == []


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
async def test_413_is_decided_while_streaming(relay: Any, framing: str) -> None:
    """Announce 100 MB (or stream chunks), send 1.5 MiB and stop: the 413 must arrive anyway."""
    async with registered_app(relay, tool_handler, tools=TOOLS) as app:
        base = await app.mint()
        target = base.removeprefix(relay.http) + "/act"
        length = (
            "Content-Length: 100000000"
            if framing == "content-length"
            else "Transfer-Encoding: chunked"
        )
        raw = await raw_http(
            relay.port,
            head("POST", target, relay.port, length, "Content-Type: application/octet-stream"),
            b"b" * (3 * MIB // 2),
            chunked=framing == "chunked",
            timeout=10,
        )
    raw.error(413, "body_too_large")
    assert raw.elapsed < 2.0, raw.elapsed
    assert app.calls == []


@pytest.mark.parametrize("who", ["no-session", "bad-verifier", "live"])
async def test_413_comes_before_session_and_verifier_checks(relay: Any, who: str) -> None:
    async with registered_app(relay, tool_handler, tools=TOOLS) as app:
        base = await app.mint()
        token = base.rsplit("/", 1)[1]
        token = {"no-session": NO_SESSION_TOKEN, "bad-verifier": wrong_verifier(token)}.get(
            who, token
        )
        raw = await raw_http(
            relay.port,
            head("POST", f"/v1/t/{token}/act", relay.port, "Content-Length: 100000000"),
            b"c" * (3 * MIB // 2),
        )
    raw.error(413, "body_too_large")
    assert app.calls == []


# --- §2.6 check order: each adjacent pair, with one request failing both ------------------------


async def test_order_1_malformed_before_2_upgrade(relay: Any) -> None:
    bad = "as_ILOU0000_" + "A" * 22
    for extra in (WS_UPGRADE, H2C_UPGRADE):
        raw = await raw_http(relay.port, head("GET", f"/v1/t/{bad}/agents.md", relay.port, *extra))
        raw.error(404, "not_found")


async def test_order_1_malformed_before_3_body_too_large(relay: Any) -> None:
    raw = await raw_http(
        relay.port,
        head("POST", "/v1/t/as_short/act", relay.port, "Content-Length: 100000000"),
        b"d" * (3 * MIB // 2),
    )
    raw.error(404, "not_found")


async def test_order_2_upgrade_before_3_body_too_large(relay: Any) -> None:
    async with registered_app(relay, tool_handler, tools=TOOLS) as app:
        base = await app.mint()
        target = base.removeprefix(relay.http) + "/act"
        raw = await raw_http(
            relay.port,
            head("POST", target, relay.port, "Upgrade: h2c", "Content-Length: 2000000"),
            b"e" * (3 * MIB // 2),
        )
    raw.error(400, "protocol_error")
    assert app.calls == []


async def test_order_2_upgrade_before_4_no_session(relay: Any) -> None:
    raw = await raw_http(
        relay.port, head("GET", f"/v1/t/{NO_SESSION_TOKEN}/agents.md", relay.port, *WS_UPGRADE)
    )
    raw.error(400, "protocol_error")


async def test_order_3_body_too_large_before_4_no_session(relay: Any) -> None:
    raw = await raw_http(
        relay.port,
        head("POST", f"/v1/t/{NO_SESSION_TOKEN}/act", relay.port, "Content-Length: 100000000"),
        b"f" * (3 * MIB // 2),
    )
    raw.error(413, "body_too_large")


async def test_order_4_no_session_before_5_no_trailing_path(relay: Any) -> None:
    async with httpx2.AsyncClient(timeout=15) as client:
        resp = await client.get(f"{relay.http}/v1/t/{NO_SESSION_TOKEN}")
    assert_error(resp, 503, "app_offline")


async def test_order_5_no_trailing_path_before_6_verifier(relay: Any) -> None:
    async with registered_app(relay, tool_handler, tools=TOOLS) as app:
        base = await app.mint()
        token = base.rsplit("/", 1)[1]
        async with httpx2.AsyncClient(timeout=15) as client:
            wrong = await client.get(f"{relay.http}/v1/t/{wrong_verifier(token)}")
            right = await client.post(f"{relay.http}/v1/t/{token}")
            wrong_with_path = await client.get(f"{relay.http}/v1/t/{wrong_verifier(token)}/read")
    assert_error(wrong, 404, "not_found")
    assert_error(right, 404, "not_found")
    assert_error(wrong_with_path, 401, "token_invalid")
    assert app.calls == []


@pytest.mark.parametrize(
    "path", ["/agents.md", "/tools.json", "/_as_tasks/x", "/_as_other", "/read", "/nosuch"]
)
async def test_order_6_verifier_before_7_meta_paths(relay: Any, path: str) -> None:
    async with registered_app(relay, tool_handler, tools=TOOLS) as app:
        base = await app.mint()
        token = base.rsplit("/", 1)[1]
        async with httpx2.AsyncClient(timeout=15) as client:
            resp = await client.get(f"{relay.http}/v1/t/{wrong_verifier(token)}{path}")
            revoked_token = (await app.mint("to revoke")).rsplit("/", 1)[1]
            assert (await app.request("revoke_agent_token", token=revoked_token))["ok"]
            revoked = await client.get(f"{relay.http}/v1/t/{revoked_token}{path}")
    assert_error(resp, 401, "token_invalid")
    assert_error(revoked, 401, "token_invalid")
    assert app.calls == []


@pytest.mark.parametrize("path", ["/_as_other", "/_as_tasks/missing", "/_as_", "/_as_tasks"])
async def test_order_7_meta_paths_before_8_csrf(relay: Any, path: str) -> None:
    async with registered_app(relay, tool_handler, tools=TOOLS) as app:
        base = await app.mint()
        async with httpx2.AsyncClient(timeout=15) as client:
            resp = await client.post(f"{base}{path}", headers={"Sec-Fetch-Site": "cross-site"})
    assert_error(resp, 404, "not_found")
    assert app.calls == []


async def test_order_8_csrf_before_9_app_away(relay: Any) -> None:
    async with registered_app(relay, tool_handler, tools=TOOLS) as app:
        base = await app.mint()
        async with httpx2.AsyncClient(timeout=15) as client:
            await client.post(f"{relay.http}/_debug/kill-ws/{app.session_id}?hold=60000")
            resp = await client.get(f"{base}/read", headers={"Sec-Fetch-Site": "same-origin"})
            await client.post(f"{relay.http}/_debug/kill-ws/{app.session_id}?end=1")
    assert_error(resp, 403, "csrf_denied")


async def test_order_9_app_away_before_11_tool_lookup(relay: Any) -> None:
    """(9) and (10) cannot fail together: a held session has no calls in flight (§4 fails them
    all at the drop). So (9) is shown against the tool lookup (11) instead."""
    async with registered_app(relay, tool_handler, tools=TOOLS) as app:
        base = await app.mint()
        async with httpx2.AsyncClient(timeout=15) as client:
            await client.post(f"{relay.http}/_debug/kill-ws/{app.session_id}?hold=60000")
            resp = await client.post(f"{base}/nosuch")
            await client.post(f"{relay.http}/_debug/kill-ws/{app.session_id}?end=1")
    error = assert_error(resp, 503, "app_offline")
    assert resp.headers.get("retry-after") == "2"
    assert re.search(r"offline for \d+ s\b", error["message"]), error["message"]


async def test_order_4_no_session_before_8_csrf(relay: Any) -> None:
    async with httpx2.AsyncClient(timeout=15) as client:
        resp = await client.post(
            f"{relay.http}/v1/t/{NO_SESSION_TOKEN}/act", headers={"Sec-Fetch-Site": "cross-site"}
        )
    assert_error(resp, 503, "app_offline")


# --- §2.6: the remaining rows reachable over HTTP ----------------------------------------------


async def test_ws_endpoint_without_upgrade_is_400(relay: Any) -> None:
    async with httpx2.AsyncClient(timeout=15) as client:
        get = await client.get(f"{relay.http}/v1/_ws")
        post = await client.post(f"{relay.http}/v1/_ws", content=b"{}")
    assert_error(get, 400, "protocol_error")
    assert_error(post, 400, "protocol_error")


@pytest.mark.parametrize("session", ["bad", "ILOU1234", "abcdefgh", "Q7R5X2K", "Q7R5X2KMM"])
async def test_malformed_session_query_is_400(relay: Any, session: str) -> None:
    raw = await raw_http(
        relay.port, head("GET", f"/v1/_ws?session={session}", relay.port, *WS_UPGRADE)
    )
    raw.error(400, "protocol_error")


@pytest.mark.parametrize("path", ["/nope", "/v1/nope", "/v1/t", "/v1/t/", "/v1/tx/abc"])
async def test_unknown_route_is_404(relay: Any, path: str) -> None:
    async with httpx2.AsyncClient(timeout=15) as client:
        resp = await client.get(f"{relay.http}{path}")
    assert_error(resp, 404, "not_found")


async def test_no_tool_for_method_and_path_is_404(relay: Any) -> None:
    async with registered_app(relay, tool_handler, tools=TOOLS) as app:
        base = await app.mint()
        async with httpx2.AsyncClient(timeout=15) as client:
            wrong_method = await client.get(f"{base}/act")
            wrong_path = await client.post(f"{base}/acts")
            case = await client.post(f"{base}/ACT")
            slash = await client.post(f"{base}/act/")
            empty = await client.get(f"{base}/")
    for resp in (wrong_method, wrong_path, case, slash, empty):
        assert_error(resp, 404, "not_found")
    assert app.calls == []


@pytest.fixture(scope="module")
def rate_limited_relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    args = list(TEST_RELAY_ARGS)
    args[args.index("--ws-rate-limit") + 1] = "3"
    with running_relay(*args, tmp=tmp_path_factory.mktemp("ratelimit")) as proc:
        yield proc


async def test_ws_upgrade_rate_limit_is_429(rate_limited_relay: Any) -> None:
    relay = rate_limited_relay
    for _ in range(3):
        async with connect(relay.ws) as ws:
            await ws.close()
    raw = await raw_http(relay.port, head("GET", "/v1/_ws", relay.port, *WS_UPGRADE))
    raw.error(429, "rate_limited")
    # Agent HTTP is not limited by the upgrade rate limit.
    async with httpx2.AsyncClient(timeout=15) as client:
        resp = await client.get(f"{relay.http}/v1/t/{NO_SESSION_TOKEN}/agents.md")
    assert_error(resp, 503, "app_offline")
