"""Session lifecycle — PROTOCOL.md §3.5 (liveness), §4 (end, hold, resume), §5 (close codes) and
§7 (debug endpoints).

The shared relay holds a dropped session for 3 s (TEST_RELAY_ARGS); timing tests that need other
windows start a relay of their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import httpx2
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from tests.conftest import RelayProcess, running_relay
from tests.e2e.checks import assert_error
from tests.e2e.wire import (
    App,
    Handler,
    closed_with,
    recv,
    recv_type,
    register_frame,
    registered_app,
    send,
)

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
SESSION_ID_RE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{8}$")
STATE_KEYS = {"session", "appConnected", "lastFrameAt", "heldUntil", "tokens", "tasks"}


# --- fixtures and helpers --------------------------------------------------------------------


@pytest.fixture(scope="module")
def liveness_relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayProcess]:
    """Apps silent for 1.5 s are closed; held sessions last 30 s."""
    tmp = tmp_path_factory.mktemp("liveness")
    args = ("--debug", "--heartbeat-timeout-ms", "1500", "--resume-grace-ms", "30000")
    with running_relay(*args, tmp=tmp) as proc:
        yield proc


@pytest.fixture(scope="module")
def no_hold_relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayProcess]:
    tmp = tmp_path_factory.mktemp("no-hold")
    with running_relay("--debug", "--resume-grace-ms", "0", tmp=tmp) as proc:
        yield proc


@pytest.fixture(scope="module")
def plain_relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayProcess]:
    """A relay without --debug."""
    with running_relay(tmp=tmp_path_factory.mktemp("no-debug")) as proc:
        yield proc


def random_session_id() -> str:
    return "".join(secrets.choice(CROCKFORD) for _ in range(8))


def resume_frame(session_id: str, secret: Any, **fields: Any) -> dict[str, Any]:
    frame = register_frame(type="resume", sessionId=session_id, **fields)
    if secret is not None:
        frame["secret"] = secret
    return frame


async def state(http: httpx2.AsyncClient, relay: RelayProcess, sid: str) -> dict[str, Any]:
    resp = await http.get(f"{relay.http}/_debug/state/{sid}")
    assert resp.status_code == 200, resp.text
    return resp.json()


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.05)
    return await check()


async def wait_away(http: httpx2.AsyncClient, relay: RelayProcess, sid: str) -> None:
    """Until the relay has noticed that the app's socket is gone."""

    async def away() -> bool:
        return (await state(http, relay, sid))["appConnected"] is False

    assert await eventually(away), "the relay never noticed the drop"


async def wait_status(
    http: httpx2.AsyncClient, url: str, status: int, timeout: float = 5
) -> httpx2.Response:
    deadline = time.monotonic() + timeout
    while True:
        resp = await http.get(url)
        if resp.status_code == status or time.monotonic() > deadline:
            return resp
        await asyncio.sleep(0.05)


def assert_offline_held(resp: httpx2.Response) -> None:
    assert_error(resp, 503, "app_offline")
    assert resp.headers.get("retry-after") == "2"


async def drop(ws: ClientConnection, how: str) -> None:
    if how == "abort":
        ws.transport.abort()
    elif how == "1005":
        await ws.close(code=None)  # type: ignore[arg-type]  # a close frame without a code
    else:
        await ws.close(int(how))


@contextlib.asynccontextmanager
async def resumed_app(
    relay: RelayProcess, sid: str, secret: str, handler: Handler | None = None, **fields: Any
) -> AsyncIterator[App]:
    """Resume ``sid`` on a ?session= socket and answer calls with ``handler``."""
    url = f"{relay.ws}?session={sid}"
    async with connect(url, max_size=None, ping_interval=None) as ws:
        await send(ws, resume_frame(sid, secret, **fields))
        reply = await recv_type(ws, "register_reply")
        assert reply["ok"] is True, reply
        app = App(ws, reply, relay.http)
        app.start(handler)
        try:
            yield app
        finally:
            if app._reader is not None:
                app._reader.cancel()


async def resume_refused(
    relay: RelayProcess, url_sid: str, frame: dict[str, Any]
) -> tuple[dict[str, Any], int | None, str | None]:
    async with connect(f"{relay.ws}?session={url_sid}", ping_interval=None) as ws:
        await send(ws, frame)
        reply = await recv_type(ws, "register_reply")
        if reply.get("ok") is not False:
            return reply, None, None
        code, reason = await closed_with(ws)
    return reply, code, reason


async def assert_resume_rejected(relay: RelayProcess, url_sid: str, frame: dict[str, Any]) -> None:
    reply, code, reason = await resume_refused(relay, url_sid, frame)
    assert reply["ok"] is False, reply
    assert reply["error"]["code"] == "resume_failed"
    assert "resumeSecret" not in reply
    assert (code, reason) == (4401, "resume rejected")


async def no_frame_within(ws: ClientConnection, seconds: float) -> None:
    with pytest.raises(TimeoutError):
        got = await asyncio.wait_for(ws.recv(), seconds)
        pytest.fail(f"unexpected frame {got!r}")


async def wait_calls(app: App, count: int = 1) -> None:
    for _ in range(100):
        if len(app.calls) >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the call never reached the app")


def never_reply(call: dict[str, Any]) -> None:
    return None


# --- ending and holding ----------------------------------------------------------------------


async def test_close_1000_ends_the_session(relay: RelayProcess, http: httpx2.AsyncClient) -> None:
    async with registered_app(relay) as app:
        base = await app.mint()
        sid, secret = app.session_id, app.secret
        await app.close()
    resp = await wait_status(http, f"{base}/agents.md", 503)
    assert_error(resp, 503, "app_offline")
    assert_error(await http.get(f"{base}/tools.json"), 503, "app_offline")
    assert_error(await http.post(f"{base}/increment", json={}), 503, "app_offline")
    await assert_resume_rejected(relay, sid, resume_frame(sid, secret))


@pytest.mark.parametrize("how", ["1001", "4000", "1005", "1011", "abort"])
async def test_other_drops_hold_the_session(
    relay: RelayProcess, http: httpx2.AsyncClient, how: str
) -> None:
    async with registered_app(relay) as app:
        base = await app.mint()
        sid, secret = app.session_id, app.secret
        dropped_at = time.time() * 1000
        await drop(app.ws, how)
        await wait_away(http, relay, sid)
        # held: the briefing still answers, calls get 503 + Retry-After: 2
        md = await http.get(f"{base}/agents.md")
        assert md.status_code == 200 and md.text.endswith("# Test app\nA counter.")
        assert (await http.get(f"{base}/tools.json")).status_code == 200
        assert_offline_held(await http.post(f"{base}/increment", json={"by": 1}))
        st = await state(http, relay, sid)
        assert st["session"] is True and st["appConnected"] is False
        assert st["heldUntil"] is not None
        assert abs(st["heldUntil"] - (dropped_at + 3000)) < 1500, st
        # and the app can come back
        async with resumed_app(relay, sid, secret) as back:
            resp = await http.post(f"{base}/increment", json={"by": 1})
            assert resp.status_code == 200
            assert len(back.calls) == 1


async def test_calls_in_flight_at_a_drop_fail_503(
    relay: RelayProcess, http: httpx2.AsyncClient
) -> None:
    async with registered_app(relay, handler=never_reply) as app:
        base = await app.mint()
        calls = [
            asyncio.create_task(http.post(f"{base}/increment", json={"by": i})) for i in range(3)
        ]
        await wait_calls(app, 3)
        start = time.monotonic()
        app.ws.transport.abort()
        results = await asyncio.gather(*calls)
        assert time.monotonic() - start < 2.5  # failed at the drop, not at the 3 s timeout
        for resp in results:
            assert_error(resp, 503, "app_offline")


async def test_hold_expiry_ends_the_session(relay: RelayProcess, http: httpx2.AsyncClient) -> None:
    async with registered_app(relay) as app:
        base = await app.mint()
        sid, secret = app.session_id, app.secret
        start = time.monotonic()
        app.ws.transport.abort()
        await wait_away(http, relay, sid)
        assert (await http.get(f"{base}/agents.md")).status_code == 200
        resp = await wait_status(http, f"{base}/agents.md", 503, timeout=10)
        elapsed = time.monotonic() - start
    assert_error(resp, 503, "app_offline")
    assert 2.5 <= elapsed <= 8, elapsed
    await assert_resume_rejected(relay, sid, resume_frame(sid, secret))


@pytest.mark.parametrize("how", ["abort", "1001"])
async def test_zero_grace_ends_at_once(
    no_hold_relay: RelayProcess, http: httpx2.AsyncClient, how: str
) -> None:
    async with registered_app(no_hold_relay) as app:
        base = await app.mint()
        sid, secret = app.session_id, app.secret
        await drop(app.ws, how)
        resp = await wait_status(http, f"{base}/agents.md", 503, timeout=3)
        assert_error(resp, 503, "app_offline")
        await assert_resume_rejected(no_hold_relay, sid, resume_frame(sid, secret))


# --- liveness (§3.5) -------------------------------------------------------------------------


async def test_silent_app_is_closed_4408_and_held(
    liveness_relay: RelayProcess, http: httpx2.AsyncClient
) -> None:
    async with connect(liveness_relay.ws, ping_interval=None) as ws:
        await send(ws, register_frame())
        reply = await recv(ws)
        start = time.monotonic()
        await send(ws, {"type": "mint_agent_token", "id": "m"})
        token = (await recv(ws))["token"]
        code, reason = await closed_with(ws, timeout=10)
        elapsed = time.monotonic() - start
    assert (code, reason) == (4408, "heartbeat timeout")
    assert 1.2 <= elapsed <= 6, elapsed
    base = f"{liveness_relay.http}/v1/t/{token}"
    assert (await http.get(f"{base}/agents.md")).status_code == 200
    assert_offline_held(await http.post(f"{base}/increment", json={}))
    st = await state(http, liveness_relay, reply["sessionId"])
    assert st["session"] is True and st["appConnected"] is False and st["heldUntil"] is not None


@pytest.mark.parametrize(
    "frame",
    ['{"type":"ping","id":"as_hb"}', '{"type":"list_agent_tokens","id":"l"}'],
    ids=["heartbeat", "other-frame"],
)
async def test_frames_keep_the_app_alive(liveness_relay: RelayProcess, frame: str) -> None:
    async with connect(liveness_relay.ws, ping_interval=None) as ws:
        await send(ws, register_frame())
        assert (await recv(ws))["ok"] is True
        start = time.monotonic()
        while time.monotonic() - start < 3.5:  # well past the 1.5 s timeout
            await ws.send(frame)
            assert (await recv(ws))["type"] in {"pong", "list_agent_tokens_reply"}
            await asyncio.sleep(0.3)
        # silence now: closed once the timeout passes
        silent = time.monotonic()
        code, reason = await closed_with(ws, timeout=10)
        assert (code, reason) == (4408, "heartbeat timeout")
        assert time.monotonic() - silent <= 6


# --- resume (§4) -----------------------------------------------------------------------------


async def test_resume_after_a_drop(relay: RelayProcess, http: httpx2.AsyncClient) -> None:
    async with registered_app(relay) as app:
        base = await app.mint()
        sid, secret = app.session_id, app.secret
        app.ws.transport.abort()
        await wait_away(http, relay, sid)
        url = f"{relay.ws}?session={sid}"
        async with connect(url, ping_interval=None) as ws:
            await send(ws, resume_frame(sid, secret))
            reply = await recv(ws)
            assert reply["type"] == "register_reply"
            assert reply["ok"] is True
            assert reply["sessionId"] == sid
            assert reply["resumeSecret"] == secret
            assert reply["resumed"] is True
            st = await state(http, relay, sid)
            assert st["appConnected"] is True and st["heldUntil"] is None
            call = asyncio.create_task(http.post(f"{base}/increment", json={"by": 2}))
            frame = await recv_type(ws, "tool_call")
            assert frame["method"] == "POST" and frame["path"] == "/increment"
            assert json.loads(frame["body"]) == {"by": 2}
            await send(ws, {"type": "tool_reply", "id": frame["id"], "status": 200, "body": 7})
            resp = await call
            assert resp.status_code == 200 and resp.json() == 7


@pytest.mark.parametrize(
    "secret",
    ["wrong", "missing", "short", "number", "null", "bad-chars", "other-session"],
)
async def test_resume_with_a_bad_secret_is_rejected(
    relay: RelayProcess, http: httpx2.AsyncClient, secret: str
) -> None:
    async with registered_app(relay) as other, registered_app(relay) as app:
        base = await app.mint()
        sid, good = app.session_id, app.secret
        app.ws.transport.abort()
        await wait_away(http, relay, sid)
        frame = resume_frame(sid, good)
        if secret == "wrong":
            frame["secret"] = ("A" if good[0] != "A" else "B") + good[1:]
        elif secret == "missing":
            del frame["secret"]
        elif secret == "short":
            frame["secret"] = good[:20]
        elif secret == "number":
            frame["secret"] = 12345
        elif secret == "null":
            frame["secret"] = None
        elif secret == "bad-chars":
            frame["secret"] = "!" * 43
        else:
            frame["secret"] = other.secret
        await assert_resume_rejected(relay, sid, frame)
        # a refused attempt leaves the held session alone: the right secret still works
        assert (await http.get(f"{base}/agents.md")).status_code == 200
        async with resumed_app(relay, sid, good):
            assert (await http.post(f"{base}/increment", json={})).status_code == 200


async def test_resume_session_id_must_match_the_url(
    relay: RelayProcess, http: httpx2.AsyncClient
) -> None:
    async with registered_app(relay) as a, registered_app(relay) as b:
        a.ws.transport.abort()
        b.ws.transport.abort()
        await wait_away(http, relay, a.session_id)
        await wait_away(http, relay, b.session_id)
        # URL names A; the frame names B with B's secret, or B with A's secret
        await assert_resume_rejected(relay, a.session_id, resume_frame(b.session_id, b.secret))
        await assert_resume_rejected(relay, a.session_id, resume_frame(b.session_id, a.secret))
        async with resumed_app(relay, a.session_id, a.secret):
            pass


async def test_resume_of_unknown_session_is_rejected(relay: RelayProcess) -> None:
    sid = random_session_id()
    await assert_resume_rejected(relay, sid, resume_frame(sid, "A" * 43))


async def test_resume_validation_comes_before_the_session_lookup(relay: RelayProcess) -> None:
    sid = random_session_id()
    reply, code, reason = await resume_refused(
        relay, sid, resume_frame(sid, "A" * 43, appId="not valid!")
    )
    assert reply["ok"] is False and reply["error"]["code"] == "invalid_app_id"
    assert (code, reason) == (4001, "invalid app_id")


async def test_resume_of_ended_session_is_rejected(
    relay: RelayProcess, http: httpx2.AsyncClient
) -> None:
    async with registered_app(relay) as app:
        base = await app.mint()
        sid, secret = app.session_id, app.secret
        await app.close()
    assert (await wait_status(http, f"{base}/agents.md", 503)).status_code == 503
    await assert_resume_rejected(relay, sid, resume_frame(sid, secret))


@pytest.mark.parametrize(
    ("fields", "code", "close"),
    [
        ({"appId": "bad id"}, "invalid_app_id", (4001, "invalid app_id")),
        ({"agentsMd": "a" * 65537}, "agents_md_too_large", (4413, "agents.md too large")),
        ({"tools": [{"path": "/agents.md"}]}, "reserved_path", (4400, "reserved path")),
        ({"tools": [{"path": "/a"}, {"path": "/a"}]}, "protocol_error", (4400, "duplicate tool")),
    ],
    ids=["app-id", "agents-md", "reserved-path", "duplicate"],
)
async def test_resume_validates_registration_before_secret(
    relay: RelayProcess,
    http: httpx2.AsyncClient,
    fields: dict[str, Any],
    code: str,
    close: tuple[int, str],
) -> None:
    async with registered_app(relay) as app:
        sid = app.session_id
        app.ws.transport.abort()
        await wait_away(http, relay, sid)
        reply, close_code, reason = await resume_refused(
            relay, sid, resume_frame(sid, "W" * 43, **fields)
        )
        assert reply["ok"] is False
        assert reply["error"]["code"] == code
        assert (close_code, reason) == close


async def test_resume_replaces_registration_and_keeps_tokens_and_tasks(
    relay: RelayProcess, http: httpx2.AsyncClient
) -> None:
    def start_task(call: dict[str, Any]) -> dict[str, Any]:
        return {"status": 202, "taskId": "t1", "body": None}

    async with registered_app(relay, handler=start_task) as app:
        base = await app.mint()
        sid, secret = app.session_id, app.secret
        resp = await http.post(f"{base}/increment", json={"by": 1})
        assert resp.status_code == 202 and resp.json() == {"taskId": "t1"}
        app.ws.transport.abort()
        await wait_away(http, relay, sid)
        new = {
            "appId": "renamed-app",
            "agentsMd": "# Renamed doc",
            "appDescription": "new description",
            "tools": [{"method": "PUT", "path": "/renamed", "description": "new"}],
        }
        async with resumed_app(relay, sid, secret, **new) as back:
            doc = (await http.get(f"{base}/tools.json")).json()
            assert doc["app"] == {
                "id": "renamed-app",
                "name": "renamed-app",
                "description": "new description",
            }
            assert [(t["method"], t["path"]) for t in doc["tools"]] == [("PUT", "/renamed")]
            assert (await http.get(f"{base}/agents.md")).text.endswith("# Renamed doc")
            assert_error(await http.post(f"{base}/increment", json={}), 404, "not_found")
            assert (await http.put(f"{base}/renamed")).status_code == 200
            assert back.calls[-1]["path"] == "/renamed"
            # the task survived the resume
            poll = await http.get(f"{base}/_as_tasks/t1")
            assert poll.status_code == 202
            assert poll.json() == {"taskId": "t1", "completed": False}
            await send(
                back.ws, {"type": "task_complete", "taskId": "t1", "status": 200, "body": {"ok": 1}}
            )

            # the first poll that sees the result consumes it
            result = None
            for _ in range(100):
                result = await http.get(f"{base}/_as_tasks/t1")
                if result.status_code != 202:
                    break
                await asyncio.sleep(0.05)
            assert result is not None
            assert result.status_code == 200 and result.json() == {"ok": 1}
            assert_error(await http.get(f"{base}/_as_tasks/t1"), 404, "not_found")


async def test_resume_revokes_tokens_before_going_live(
    relay: RelayProcess, http: httpx2.AsyncClient
) -> None:
    async with registered_app(relay) as app:
        tokens = [(await app.request("mint_agent_token", label=f"t{i}"))["token"] for i in range(3)]
        sid, secret = app.session_id, app.secret
        app.ws.transport.abort()
        await wait_away(http, relay, sid)
        async with resumed_app(relay, sid, secret, revokeTokens=[tokens[0], tokens[2]]) as back:
            for token, status in zip(tokens, [401, 200, 401], strict=True):
                resp = await http.post(f"{relay.http}/v1/t/{token}/increment", json={})
                assert resp.status_code == status, (token, resp.text)
            assert len(back.calls) == 1
            listed = await back.request("list_agent_tokens")
            assert [t["token"] for t in listed["tokens"]] == [tokens[1]]


async def test_resume_replaces_an_attached_socket(
    relay: RelayProcess, http: httpx2.AsyncClient
) -> None:
    async with registered_app(relay, handler=never_reply) as old:
        base = await old.mint()
        pending = asyncio.create_task(http.post(f"{base}/increment", json={"by": 1}))
        await wait_calls(old)
        async with resumed_app(relay, old.session_id, old.secret) as new:
            assert new.reply["resumed"] is True
            assert await closed_with(old.ws) == (4410, "replaced by a resumed connection")
            assert_error(await pending, 503, "app_offline")
            resp = await http.post(f"{base}/increment", json={"by": 2})
            assert resp.status_code == 200
            assert len(new.calls) == 1 and len(old.calls) == 1


async def test_session_socket_answers_only_resume_and_end(
    relay: RelayProcess, http: httpx2.AsyncClient
) -> None:
    async with registered_app(relay) as app:
        base = await app.mint()
        url = f"{relay.ws}?session={app.session_id}"
        async with connect(url, ping_interval=None) as ws:
            for frame in [
                '{"type":"ping","id":"as_hb"}',
                {"type": "ping", "id": "p"},
                {"type": "mint_agent_token", "id": "m", "label": "x"},
                {"type": "list_agent_tokens", "id": "l"},
                {"type": "revoke_agent_token", "id": "r", "token": base.rsplit("/", 1)[1]},
                {"type": "update_tools", "id": "u", "tools": []},
                register_frame(),
            ]:
                await send(ws, frame)
            await no_frame_within(ws, 1.0)
            # nothing happened to the session
            assert (await http.post(f"{base}/increment", json={})).status_code == 200
            assert len((await app.request("list_agent_tokens"))["tokens"]) == 1
            # and the same socket can still resume
            await send(ws, resume_frame(app.session_id, app.secret))
            reply = await recv_type(ws, "register_reply")
            assert reply["ok"] is True and reply["resumed"] is True


async def test_fifth_waiting_resume_socket_is_closed_4409(
    relay: RelayProcess, http: httpx2.AsyncClient
) -> None:
    async with registered_app(relay) as app, contextlib.AsyncExitStack() as stack:
        url = f"{relay.ws}?session={app.session_id}"
        waiting = [
            await stack.enter_async_context(connect(url, ping_interval=None)) for _ in range(4)
        ]
        await asyncio.sleep(0.3)
        async with connect(url, ping_interval=None) as fifth:
            assert await closed_with(fifth) == (4409, "too many resume attempts")
        # the four waiting sockets are still usable
        await send(waiting[3], resume_frame(app.session_id, app.secret))
        reply = await recv_type(waiting[3], "register_reply")
        assert reply["ok"] is True


@pytest.mark.parametrize(
    "value", ["abc", "ABCDEFGHJ", "ILOU0000", "abcdefgh", "ABCD%20EFG", "ABCDEFGH%0A", "%00"]
)
async def test_malformed_session_param_is_refused_at_upgrade(
    relay: RelayProcess, value: str
) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(f"{relay.ws}?session={value}", ping_interval=None):
            pass
    response = refused.value.response
    assert response.status_code == 400
    assert json.loads(response.body)["error"]["code"] == "protocol_error"


async def test_plain_socket_never_joins_an_existing_session(relay: RelayProcess) -> None:
    async with registered_app(relay) as first, registered_app(relay) as second:
        assert first.session_id != second.session_id


# --- end (§4) ----------------------------------------------------------------------------------


async def test_end_ends_the_session_and_closes_the_app(
    relay: RelayProcess, http: httpx2.AsyncClient
) -> None:
    async with registered_app(relay) as app:
        base = await app.mint()
        url = f"{relay.ws}?session={app.session_id}"
        async with connect(url, ping_interval=None) as ws:
            await send(ws, {"type": "end", "sessionId": app.session_id, "secret": app.secret})
            reply = await recv(ws)
            assert reply["type"] == "end_reply" and reply["ok"] is True
            assert await closed_with(ws) == (1000, "session ended")
        assert await closed_with(app.ws) == (1000, "session ended")
    assert_error(await http.get(f"{base}/agents.md"), 503, "app_offline")
    await assert_resume_rejected(relay, app.session_id, resume_frame(app.session_id, app.secret))


async def test_end_of_a_held_session(relay: RelayProcess, http: httpx2.AsyncClient) -> None:
    async with registered_app(relay) as app:
        base = await app.mint()
        app.ws.transport.abort()
        await wait_away(http, relay, app.session_id)
        async with connect(f"{relay.ws}?session={app.session_id}", ping_interval=None) as ws:
            await send(ws, {"type": "end", "sessionId": app.session_id, "secret": app.secret})
            reply = await recv(ws)
            assert reply["type"] == "end_reply" and reply["ok"] is True
            assert await closed_with(ws) == (1000, "session ended")
        assert_error(await http.get(f"{base}/agents.md"), 503, "app_offline")


@pytest.mark.parametrize("bad", ["secret", "missing-secret", "session-id"])
async def test_end_refused(relay: RelayProcess, http: httpx2.AsyncClient, bad: str) -> None:
    async with registered_app(relay) as app:
        base = await app.mint()
        frame: dict[str, Any] = {"type": "end", "sessionId": app.session_id, "secret": app.secret}
        if bad == "secret":
            frame["secret"] = "Z" * 43
        elif bad == "missing-secret":
            del frame["secret"]
        else:
            frame["sessionId"] = random_session_id()
        async with connect(f"{relay.ws}?session={app.session_id}", ping_interval=None) as ws:
            await send(ws, frame)
            reply = await recv(ws)
            assert reply["type"] == "end_reply"
            assert reply["ok"] is False
            assert reply["error"]["code"] == "resume_failed"
            assert await closed_with(ws) == (4401, "end rejected")
        # the session and its app are untouched
        assert (await http.post(f"{base}/increment", json={})).status_code == 200
        assert (await app.request("ping"))["type"] == "pong"


# --- debug endpoints (§7) --------------------------------------------------------------------


async def test_debug_health(relay: RelayProcess, http: httpx2.AsyncClient) -> None:
    resp = await http.get(f"{relay.http}/_debug/health")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain")
    assert resp.text.strip() == "ok"


async def test_debug_kill_ws_drops_with_1011_and_holds(
    relay: RelayProcess, http: httpx2.AsyncClient
) -> None:
    async with registered_app(relay) as app:
        base = await app.mint()
        resp = await http.post(f"{relay.http}/_debug/kill-ws/{app.session_id}")
        assert resp.status_code == 200 and resp.text.strip() == "ok"
        code, _ = await closed_with(app.ws)
        assert code == 1011
        await wait_away(http, relay, app.session_id)
        assert (await http.get(f"{base}/agents.md")).status_code == 200
        assert_offline_held(await http.post(f"{base}/increment", json={}))
        async with resumed_app(relay, app.session_id, app.secret):
            assert (await http.post(f"{base}/increment", json={})).status_code == 200


async def test_debug_kill_ws_unknown_session_is_ok(
    relay: RelayProcess, http: httpx2.AsyncClient
) -> None:
    resp = await http.post(f"{relay.http}/_debug/kill-ws/{random_session_id()}")
    assert resp.status_code == 200 and resp.text.strip() == "ok"


async def test_debug_kill_ws_with_short_hold(relay: RelayProcess, http: httpx2.AsyncClient) -> None:
    async with registered_app(relay) as app:
        base = await app.mint()
        start = time.monotonic()
        resp = await http.post(f"{relay.http}/_debug/kill-ws/{app.session_id}?hold=500")
        assert resp.status_code == 200
        resp = await wait_status(http, f"{base}/agents.md", 503, timeout=6)
        assert_error(resp, 503, "app_offline")
        assert time.monotonic() - start < 2.7  # ended by the 0.5 s hold, not the 3 s default


async def test_debug_kill_ws_with_long_hold(relay: RelayProcess, http: httpx2.AsyncClient) -> None:
    async with registered_app(relay) as app:
        now = time.time() * 1000
        resp = await http.post(f"{relay.http}/_debug/kill-ws/{app.session_id}?hold=60000")
        assert resp.status_code == 200
        await wait_away(http, relay, app.session_id)
        st = await state(http, relay, app.session_id)
        assert abs(st["heldUntil"] - (now + 60000)) < 2000, st
        await asyncio.sleep(3.5)  # past the default 3 s window: still held
        st = await state(http, relay, app.session_id)
        assert st["session"] is True
        async with resumed_app(relay, app.session_id, app.secret):
            pass


async def test_debug_kill_ws_end(relay: RelayProcess, http: httpx2.AsyncClient) -> None:
    async with registered_app(relay) as app:
        base = await app.mint()
        resp = await http.post(f"{relay.http}/_debug/kill-ws/{app.session_id}?end=1")
        assert resp.status_code == 200 and resp.text.strip() == "ok"
        await closed_with(app.ws)  # closed; the code is not fixed for ?end=1
        resp = await wait_status(http, f"{base}/agents.md", 503, timeout=3)
        assert_error(resp, 503, "app_offline")
        await assert_resume_rejected(
            relay, app.session_id, resume_frame(app.session_id, app.secret)
        )


async def test_debug_state_shape_and_no_secrets(
    relay: RelayProcess, http: httpx2.AsyncClient
) -> None:
    def start_task(call: dict[str, Any]) -> dict[str, Any]:
        return {"status": 202, "taskId": "job-1"}

    async with registered_app(relay, handler=start_task) as app:
        tokens = [(await app.request("mint_agent_token", label=f"t{i}"))["token"] for i in range(2)]
        resp = await http.get(f"{relay.http}/_debug/state/{app.session_id}")
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("application/json")
        st = resp.json()
        assert set(st) >= STATE_KEYS
        assert st["session"] is True and st["appConnected"] is True
        assert st["heldUntil"] is None
        assert st["tokens"] == 2 and st["tasks"] == 0
        now = time.time() * 1000
        assert isinstance(st["lastFrameAt"], int | float)
        assert abs(st["lastFrameAt"] - now) < 60_000
        first_frame_at = st["lastFrameAt"]
        await asyncio.sleep(0.05)
        assert (await app.request("ping"))["type"] == "pong"
        assert (await state(http, relay, app.session_id))["lastFrameAt"] > first_frame_at
        # a task counts
        base = f"{relay.http}/v1/t/{tokens[0]}"
        assert (await http.post(f"{base}/increment", json={})).status_code == 202
        assert (await state(http, relay, app.session_id))["tasks"] == 1
        # no secrets, no tokens, no verifiers
        text = (await http.get(f"{relay.http}/_debug/state/{app.session_id}")).text
        assert app.secret not in text
        for token in tokens:
            assert token not in text and token[12:] not in text
        # after a drop: heldUntil in epoch ms
        app.ws.transport.abort()
        await wait_away(http, relay, app.session_id)
        st = await state(http, relay, app.session_id)
        assert isinstance(st["heldUntil"], int | float) and st["heldUntil"] > now


async def test_debug_state_of_unknown_session(
    relay: RelayProcess, http: httpx2.AsyncClient
) -> None:
    resp = await http.get(f"{relay.http}/_debug/state/{random_session_id()}")
    # PROTOCOL.md §7 does not say; either no session or not found
    assert resp.status_code in (200, 404)
    if resp.status_code == 200:
        assert resp.json()["session"] is False


async def test_debug_evict_keeps_durable_state(
    relay: RelayProcess, http: httpx2.AsyncClient
) -> None:
    async with registered_app(relay) as app:
        base = await app.mint()
        before = (await http.get(f"{base}/tools.json")).json()
        resp = await http.post(f"{relay.http}/_debug/evict/{app.session_id}")
        assert resp.status_code == 200
        await closed_with(app.ws)  # the socket goes (abruptly: any code or none)
        # durable state reloads on the next request: links still answer, the app can resume
        md = await http.get(f"{base}/agents.md")
        assert md.status_code == 200 and md.text.endswith("# Test app\nA counter.")
        assert (await http.get(f"{base}/tools.json")).json() == before
        assert_error(await http.post(f"{base}/increment", json={}), 503, "app_offline")
        async with resumed_app(relay, app.session_id, app.secret) as back:
            assert back.reply["resumed"] is True
            assert (await http.post(f"{base}/increment", json={})).status_code == 200
            assert len(back.calls) == 1


async def test_debug_force_session(relay: RelayProcess, http: httpx2.AsyncClient) -> None:
    sid = random_session_id()
    async with connect(f"{relay.ws}?force_session={sid}", ping_interval=None) as ws:
        await send(ws, register_frame())
        reply = await recv(ws)
        assert reply["ok"] is True and reply["sessionId"] == sid
        await send(ws, {"type": "mint_agent_token", "id": "m"})
        token = (await recv(ws))["token"]
        assert token.startswith(f"as_{sid}_")
        assert (await http.get(f"{relay.http}/v1/t/{token}/agents.md")).status_code == 200


async def test_debug_endpoints_are_404_without_debug(
    plain_relay: RelayProcess, http: httpx2.AsyncClient
) -> None:
    async with registered_app(plain_relay) as app:
        sid = app.session_id
        for method, path in [
            ("GET", "/_debug/health"),
            ("GET", f"/_debug/state/{sid}"),
            ("POST", f"/_debug/kill-ws/{sid}"),
            ("POST", f"/_debug/kill-ws/{sid}?end=1"),
            ("POST", f"/_debug/evict/{sid}"),
        ]:
            resp = await http.request(method, f"{plain_relay.http}{path}")
            assert resp.status_code == 404, (method, path, resp.status_code)
        # the app was not touched
        assert (await app.request("ping"))["type"] == "pong"
    # force_session is ignored or refused: never places a socket on a chosen id
    forced = random_session_id()
    reply: dict[str, Any] = {}
    with contextlib.suppress(InvalidStatus):
        async with connect(f"{plain_relay.ws}?force_session={forced}", ping_interval=None) as ws:
            await send(ws, register_frame())
            with contextlib.suppress(Exception):
                reply = await recv(ws)
    assert reply.get("sessionId") != forced
