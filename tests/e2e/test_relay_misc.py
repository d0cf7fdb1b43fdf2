"""Relay-wide behaviour — PROTOCOL.md §2.6/§3 (upgrade errors, wrong path), §6 (upgrade rate
limit), §1/§8 (no secrets in logs), plus the relay's operational surface: /healthz, the landing
page, SIGTERM and the session memory bound (--max-sessions, close 4429 ``relay_full``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.conftest import RelayProcess, running_relay, start_relay
from tests.e2e.wire import (
    closed_with,
    recv,
    recv_type,
    register_frame,
    registered_app,
    send,
)


@contextlib.contextmanager
def relay_with(tmp: Path, *args: str) -> Iterator[RelayProcess]:
    with running_relay(*args, tmp=tmp) as proc:
        yield proc


async def upgrade(url: str, headers: dict[str, str] | None = None) -> int:
    """Open and close a WebSocket; return the HTTP status (101 when accepted)."""
    try:
        async with connect(url, ping_interval=None, additional_headers=headers):
            return 101
    except InvalidStatus as refused:
        return refused.response.status_code


async def refused_upgrade(url: str, headers: dict[str, str] | None = None) -> Any:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(url, ping_interval=None, additional_headers=headers):
            pass
    return refused.value.response


def assert_json_error(status: int, headers: Any, body: bytes, want: int, code: str) -> None:
    assert status == want
    assert headers["content-type"].startswith("application/json")
    assert headers["x-content-type-options"] == "nosniff"
    assert json.loads(body)["error"]["code"] == code


# --- HTTP surface ------------------------------------------------------------------------------


async def test_ws_path_without_upgrade_is_400(
    relay: RelayProcess, http: httpx2.AsyncClient
) -> None:
    for method in ("GET", "POST"):
        resp = await http.request(method, f"{relay.http}/v1/_ws")
        assert_json_error(resp.status_code, resp.headers, resp.content, 400, "protocol_error")


@pytest.mark.parametrize("path", ["/v1/nope", "/", "/v1/_wsx", "/v1/_ws/extra", "/v1/t"])
async def test_websocket_on_a_wrong_path(relay: RelayProcess, path: str) -> None:
    url = f"ws://127.0.0.1:{relay.port}{path}"
    try:
        async with connect(url, ping_interval=None) as ws:
            code, _ = await closed_with(ws)
            assert code == 4400
    except InvalidStatus as refused:
        assert refused.response.status_code == 404


async def test_healthz_counts_sessions(fresh_relay: RelayProcess, http: httpx2.AsyncClient) -> None:
    async def health() -> dict[str, Any]:
        resp = await http.get(f"{fresh_relay.http}/healthz")
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("application/json")
        return resp.json()

    body = await health()
    assert body["status"] == "ok"
    assert isinstance(body["version"], str) and body["version"]
    assert body["sessions"] == 0
    async with registered_app(fresh_relay) as first, registered_app(fresh_relay):
        assert (await health())["sessions"] == 2
        await first.close()  # 1000 ends that session
        for _ in range(60):
            if (await health())["sessions"] == 1:
                break
            await asyncio.sleep(0.05)
        assert (await health())["sessions"] == 1


async def test_landing_page_is_html(relay: RelayProcess, http: httpx2.AsyncClient) -> None:
    resp = await http.get(f"{relay.http}/")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/html")
    assert "<" in resp.text


# --- upgrade rate limit (§6) -------------------------------------------------------------------


async def test_default_rate_limit_is_100_upgrades_per_address(tmp_path: Path) -> None:
    with relay_with(tmp_path) as proc:
        start = time.monotonic()
        statuses = [await upgrade(proc.ws) for _ in range(100)]
        assert time.monotonic() - start < 9, "too slow to test a 10 s window"
        assert statuses == [101] * 100
        response = await refused_upgrade(proc.ws)
        assert_json_error(
            response.status_code, response.headers, response.body, 429, "rate_limited"
        )


async def test_rate_limit_boundary_and_window(tmp_path: Path) -> None:
    with relay_with(tmp_path, "--ws-rate-limit", "5", "--ws-rate-window-ms", "2000") as proc:
        statuses = [await upgrade(proc.ws) for _ in range(5)]
        assert statuses == [101] * 5
        last_ok = time.monotonic()
        response = await refused_upgrade(proc.ws)
        assert_json_error(
            response.status_code, response.headers, response.body, 429, "rate_limited"
        )
        # ?session= upgrades count too
        assert await upgrade(f"{proc.ws}?session=ABCDEFGH") == 429
        # other routes are not limited
        async with httpx2.AsyncClient() as http:
            assert (await http.get(f"{proc.http}/healthz")).status_code == 200
        await asyncio.sleep(max(0.0, 2.4 - (time.monotonic() - last_ok)))
        assert await upgrade(proc.ws) == 101


async def test_forwarded_for_is_honoured_from_a_trusted_proxy(tmp_path: Path) -> None:
    args = ("--ws-rate-limit", "3", "--forwarded-allow-ips", "127.0.0.1")
    with relay_with(tmp_path, *args) as proc:
        one = {"X-Forwarded-For": "203.0.113.1"}
        two = {"X-Forwarded-For": "203.0.113.2"}
        assert [await upgrade(proc.ws, one) for _ in range(3)] == [101] * 3
        assert await upgrade(proc.ws, one) == 429
        # a different client address behind the same proxy has its own budget
        assert [await upgrade(proc.ws, two) for _ in range(3)] == [101] * 3
        assert await upgrade(proc.ws, two) == 429


async def test_forwarded_for_is_ignored_from_an_untrusted_peer(tmp_path: Path) -> None:
    args = ("--ws-rate-limit", "3", "--forwarded-allow-ips", "192.0.2.99")
    with relay_with(tmp_path, *args) as proc:
        statuses = [
            await upgrade(proc.ws, {"X-Forwarded-For": f"203.0.113.{i}"}) for i in range(1, 5)
        ]
        assert statuses == [101, 101, 101, 429]


# --- shutdown --------------------------------------------------------------------------------


async def test_sigterm_closes_apps_1012_and_exits(fresh_relay: RelayProcess) -> None:
    async with registered_app(fresh_relay) as a, registered_app(fresh_relay) as b:
        start = time.monotonic()
        fresh_relay.proc.send_signal(signal.SIGTERM)
        codes = await asyncio.gather(closed_with(a.ws, 10), closed_with(b.ws, 10))
        assert [code for code, _ in codes] == [1012, 1012]
        try:
            await asyncio.to_thread(
                fresh_relay.proc.wait, max(0.1, 10 - (time.monotonic() - start))
            )
        except subprocess.TimeoutExpired:
            pytest.fail("the relay did not exit within 10 s of SIGTERM")
        assert time.monotonic() - start < 10


# --- no secrets in the log (§1, §8) ----------------------------------------------------------


async def test_log_never_contains_tokens_or_secrets(
    fresh_relay: RelayProcess, http: httpx2.AsyncClient
) -> None:
    relay = fresh_relay
    async with registered_app(relay) as app:
        tokens = [(await app.request("mint_agent_token", label=f"t{i}"))["token"] for i in range(3)]
        sid, secret = app.session_id, app.secret
        base = f"{relay.http}/v1/t/{tokens[0]}"
        assert (await http.get(f"{base}/agents.md")).status_code == 200
        assert (await http.get(f"{base}/tools.json?x=1")).status_code == 200
        assert (await http.post(f"{base}/increment", json={"by": 1})).status_code == 200
        assert (await http.get(f"{base}/nope")).status_code == 404
        assert (await app.request("revoke_agent_token", token=tokens[1]))["ok"] is True
        assert (await http.get(f"{relay.http}/v1/t/{tokens[1]}/agents.md")).status_code == 401
        await app.request("list_agent_tokens")
        # a resume and an end both carry the secret
        app.ws.transport.abort()
        await asyncio.sleep(0.3)
        async with connect(f"{relay.ws}?session={sid}", ping_interval=None) as ws:
            frame = register_frame(
                type="resume", sessionId=sid, secret=secret, revokeTokens=[tokens[2]]
            )
            await send(ws, frame)
            assert (await recv_type(ws, "register_reply"))["ok"] is True
            await send(ws, {"type": "mint_agent_token", "id": "m"})
            tokens.append((await recv_type(ws, "mint_agent_token_reply"))["token"])
            async with connect(f"{relay.ws}?session={sid}", ping_interval=None) as ender:
                await send(ender, {"type": "end", "sessionId": sid, "secret": secret})
                assert (await recv(ender))["ok"] is True
    relay.stop()  # flush everything the process wrote
    log = relay.log()
    assert secret not in log
    for token in tokens:
        assert token not in log, f"token {token[:12]}… in the relay log"
        assert token[12:] not in log, f"verifier of {token[:12]}… in the relay log"


# --- memory bound: --max-sessions --------------------------------------------------------------


async def test_max_sessions_ends_longest_away_then_refuses(
    tmp_path: Path, http: httpx2.AsyncClient
) -> None:
    args = ("--debug", "--max-sessions", "3", "--resume-grace-ms", "60000")
    proc = start_relay(*args, tmp=tmp_path)
    try:
        async with contextlib.AsyncExitStack() as stack:
            apps = [await stack.enter_async_context(registered_app(proc)) for _ in range(3)]
            a, b, _ = apps
            bases = [await app.mint() for app in apps]

            async def away(sid: str) -> None:
                for _ in range(100):
                    st = (await http.get(f"{proc.http}/_debug/state/{sid}")).json()
                    if st["appConnected"] is False:
                        return
                    await asyncio.sleep(0.05)
                raise AssertionError("drop not noticed")

            a.ws.transport.abort()
            await away(a.session_id)
            await asyncio.sleep(0.3)
            b.ws.transport.abort()
            await away(b.session_id)
            # a 4th registers: the longest-away held session (A) ends, B stays held
            d = await stack.enter_async_context(registered_app(proc))
            a_md = await http.get(f"{bases[0]}/agents.md")
            assert a_md.status_code == 503 and a_md.json()["error"]["code"] == "app_offline"
            assert (await http.get(f"{bases[1]}/agents.md")).status_code == 200
            assert (await http.post(f"{bases[2]}/increment", json={})).status_code == 200
            # B comes back: B, C and D are all live
            url = f"{proc.ws}?session={b.session_id}"
            ws_b = await stack.enter_async_context(connect(url, ping_interval=None))
            await send(ws_b, register_frame(type="resume", sessionId=b.session_id, secret=b.secret))
            assert (await recv(ws_b))["ok"] is True
            # a 5th is refused: relay_full, close 4429
            async with connect(proc.ws, ping_interval=None) as ws:
                await send(ws, register_frame())
                reply = await recv_type(ws, "register_reply")
                assert reply["ok"] is False
                assert reply["error"]["code"] == "relay_full"
                code, _ = await closed_with(ws)
                assert code == 4429
            # nobody live was harmed
            assert (await http.post(f"{bases[2]}/increment", json={})).status_code == 200
            assert (await d.request("ping"))["type"] == "pong"
            health = (await http.get(f"{proc.http}/healthz")).json()
            assert health["sessions"] == 3
    finally:
        proc.stop()
