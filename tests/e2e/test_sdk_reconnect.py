"""SDK end to end: staying connected — resume, fresh sessions, replacement, offline work.

Drops are made with the relay's debug endpoint ``POST /_debug/kill-ws/<sid>`` (PROTOCOL.md §7):
the app's socket is closed with 1011 as a network loss would, and the session is held.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from typing import Any

import httpx2
import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

from agent_socket import (
    AgentClient,
    AppOfflineError,
    Backoff,
    ReconnectInfo,
    SessionChange,
    State,
    TokenInvalidError,
)
from agent_socket.protocol.frames import HEARTBEAT_PING
from tests.e2e.test_sdk_support import (
    FAST,
    call_ok,
    counter_app,
    debug_state,
    eventually,
    kill_ws,
)

pytestmark = pytest.mark.timeout(60)

#: A reconnect slow enough (0.6 s, no jitter) to act while the app is offline.
SLOW = {**FAST, "backoff": Backoff(base=0.6, cap=0.6, jitter=0)}


async def test_drop_then_resume_keeps_session_and_links(relay: Any) -> None:
    reconnects: list[ReconnectInfo] = []
    changes: list[SessionChange] = []
    app = counter_app()
    async with app.connect(
        relay.http, on_reconnect=reconnects.append, on_session_changed=changes.append, **FAST
    ) as session:
        link = await session.mint_link("keep")
        sid = session.session_id
        assert sid is not None
        await call_ok(link.url, "/increment", {"by": 1})
        await kill_ws(relay, sid)
        await eventually(lambda: len(reconnects) == 1, what="on_reconnect")
        assert reconnects[0].resumed is True and reconnects[0].session_id == sid
        assert session.state is State.REGISTERED and session.session_id == sid
        assert [item.token for item in session.links()] == [link.token]
        assert await call_ok(link.url, "/increment", {"by": 1}) == {"count": 2}
        # Twice more: the backoff restarts after each success.
        for round_no in range(2):
            await kill_ws(relay, sid)
            await eventually(lambda n=round_no: len(reconnects) == n + 2, what="resume")
        assert all(info.resumed for info in reconnects) and changes == []
        assert await call_ok(link.url, "/count") == {"count": 2}


async def test_requests_made_while_offline_wait_for_the_resume(relay: Any) -> None:
    async with counter_app().connect(relay.http, **SLOW) as session:
        sid = session.session_id
        assert sid is not None
        await kill_ws(relay, sid)
        await eventually(lambda: session.state is State.RECONNECTING)
        link = await session.mint_link("offline")  # waits for the reconnect
        assert session.session_id == sid
        assert await call_ok(link.url, "/count") == {"count": 0}


async def test_resume_refused_starts_fresh_and_remints(relay: Any) -> None:
    reconnects: list[ReconnectInfo] = []
    changes: list[SessionChange] = []
    app = counter_app()
    async with app.connect(
        relay.http, on_reconnect=reconnects.append, on_session_changed=changes.append, **FAST
    ) as session:
        alice = await session.mint_link("alice")
        bob = await session.mint_link("bob")
        old_sid = session.session_id
        assert old_sid is not None
        await kill_ws(relay, old_sid, end="1")  # the relay ends the session: resume → 4401
        await eventually(lambda: len(changes) == 1, what="on_session_changed")
        change = changes[0]
        assert change.old_session_id == old_sid
        assert change.new_session_id == session.session_id != old_sid
        assert [(old.label, new.label) for old, new in change.links] == [
            ("alice", "alice"),
            ("bob", "bob"),
        ]
        assert set(change.urls) == {alice.url, bob.url}
        await eventually(lambda: len(reconnects) == 1)
        assert reconnects[0].resumed is False
        assert sorted(link.label for link in session.links()) == ["alice", "bob"]
        new_alice = change.urls[alice.url]
        assert await call_ok(new_alice, "/increment", {"by": 3}) == {"count": 3}
        with pytest.raises(AppOfflineError):
            await call_ok(alice.url, "/count")


async def test_replaced_by_another_socket_goes_fresh(relay: Any) -> None:
    changes: list[SessionChange] = []
    app = counter_app()
    async with app.connect(relay.http, on_session_changed=changes.append, **FAST) as session:
        link = await session.mint_link("mine")
        state = session.resume_state
        assert state is not None
        sid, secret = state.split(":")
        # Someone else resumes our session with its secret: we get 4410.
        async with connect(f"{relay.ws}?session={sid}") as other:
            await other.send(
                json.dumps(
                    {
                        "type": "resume",
                        "sessionId": sid,
                        "secret": secret,
                        "appId": "intruder",
                        "agentsMd": "",
                        "tools": [],
                    }
                )
            )
            reply = json.loads(await asyncio.wait_for(other.recv(), 5))
            assert reply["ok"] is True and reply["resumed"] is True
            await eventually(lambda: len(changes) == 1, what="fresh session after 4410")
            assert changes[0].old_session_id == sid
            assert session.session_id not in (None, sid)
            new_url = changes[0].urls[link.url]
            assert await call_ok(new_url, "/count") == {"count": 0}
            await other.close()


async def test_revocation_while_offline_rides_on_the_resume(relay: Any) -> None:
    async with counter_app().connect(relay.http, **SLOW) as session:
        gone = await session.mint_link("gone")
        kept = await session.mint_link("kept")
        sid = session.session_id
        assert sid is not None
        await kill_ws(relay, sid)
        await eventually(lambda: session.state is State.RECONNECTING)
        assert await session.revoke_link(gone) is True  # queued: no socket to send it on
        assert [link.label for link in session.links()] == ["kept"]
        # The relay still has it until the resume frame carries revokeTokens.
        assert (await debug_state(relay, sid))["tokens"] == 2
        await eventually(lambda: session.state is State.REGISTERED, what="resume")
        assert session.session_id == sid
        assert (await debug_state(relay, sid))["tokens"] == 1
        with pytest.raises(TokenInvalidError):
            await call_ok(gone.url, "/count")
        assert await call_ok(kept.url, "/count") == {"count": 0}


async def test_task_finishing_while_offline_is_delivered_after_resume(relay: Any) -> None:
    app = counter_app()
    release = asyncio.Event()

    @app.tool("/job", long_running=True)
    async def job() -> dict[str, str]:
        await release.wait()
        return {"job": "done"}

    async with app.connect(relay.http, **SLOW) as session:
        link = await session.mint_link()
        sid = session.session_id
        assert sid is not None
        async with AgentClient(link.url, poll_interval=0.05, poll_max=0.1) as agent:
            started = await agent.request("/job", wait=False)
            task_id = started.task_id
            assert task_id is not None
            await kill_ws(relay, sid)
            await eventually(lambda: session.state is State.RECONNECTING)
            release.set()  # completes while there is no socket
            await asyncio.sleep(0.05)
            result = await agent.wait_task(task_id, timeout=5)
            assert (result.status, result.body) == (200, {"job": "done"})


async def test_saved_secret_restart_keeps_the_links(relay: Any) -> None:
    first = await counter_app().connect(relay.http, **FAST)
    link = await first.mint_link("saved")
    saved = first.resume_state
    sid = first.session_id
    assert saved is not None
    await first.close(end=False)  # the process "exits" without ending the session

    changes: list[SessionChange] = []
    restarted = counter_app()  # a new process: new objects, same code
    async with restarted.connect(
        relay.http, resume=saved, on_session_changed=changes.append, **FAST
    ) as second:
        assert second.session_id == sid
        assert [(item.token, item.label, item.url) for item in second.links()] == [
            (link.token, "saved", link.url)
        ]
        assert await call_ok(link.url, "/increment", {"by": 7}) == {"count": 7}
        assert changes == []


async def test_saved_secret_the_relay_no_longer_knows_starts_fresh(relay: Any) -> None:
    changes: list[SessionChange] = []
    bogus = "ZZZZZZZZ:" + "A" * 43
    async with counter_app().connect(
        relay.http, resume=bogus, on_session_changed=changes.append, **FAST
    ) as session:
        assert session.session_id not in (None, "ZZZZZZZZ")
        assert len(changes) == 1 and changes[0].old_session_id == "ZZZZZZZZ"
        assert changes[0].links == ()


async def test_close_while_offline_ends_the_held_session(relay: Any) -> None:
    session = await counter_app().connect(relay.http, **SLOW)
    link = await session.mint_link()
    sid = session.session_id
    assert sid is not None
    await kill_ws(relay, sid, hold="60000")
    await eventually(lambda: session.state is State.RECONNECTING)
    assert (await debug_state(relay, sid))["session"] is True
    await session.close()  # no socket: uses the end frame on a ?session= socket
    assert (await debug_state(relay, sid))["session"] is False
    with pytest.raises(AppOfflineError) as caught:
        await call_ok(link.url, "/count")
    assert caught.value.retry_after is None  # ended, not held


async def test_heartbeat_is_the_exact_frame_and_keeps_the_session_alive(relay: Any) -> None:
    options = {**FAST, "heartbeat_interval": 0.2}
    async with counter_app().connect(relay.http, **options) as session:
        sid = session.session_id
        assert sid is not None
        before = (await debug_state(relay, sid))["lastFrameAt"]

        async def advanced() -> bool:
            return bool((await debug_state(relay, sid))["lastFrameAt"] > before)

        await eventually(advanced, timeout=3, what="heartbeat reaching the relay")


async def test_silent_relay_is_given_up_after_heartbeat_timeout() -> None:
    """A relay that stops answering (no pong, nothing) is dropped and reconnected."""
    sockets: list[ServerConnection] = []
    pings: list[str] = []

    async def handler(ws: ServerConnection) -> None:
        sockets.append(ws)
        first = json.loads(await ws.recv())
        await ws.send(
            json.dumps(
                {
                    "type": "register_reply",
                    "ok": True,
                    "sessionId": "Q7R5X2KM",
                    "resumeSecret": "S" * 43,
                    **({"resumed": True} if first["type"] == "resume" else {}),
                }
            )
        )
        async for raw in ws:  # swallow everything, answer nothing (a half-dead path)
            if raw == HEARTBEAT_PING:
                pings.append(raw)
            elif isinstance(raw, str) and '"list_agent_tokens"' in raw and len(sockets) > 1:
                frame = json.loads(raw)
                await ws.send(
                    json.dumps({"type": "list_agent_tokens_reply", "id": frame["id"], "tokens": []})
                )

    reconnects: list[ReconnectInfo] = []
    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        options = {**FAST, "heartbeat_interval": 0.1, "heartbeat_timeout": 0.5}
        async with counter_app().connect(
            f"http://127.0.0.1:{port}", on_reconnect=reconnects.append, **options
        ) as session:
            await eventually(lambda: len(reconnects) == 1, timeout=5, what="reconnect")
            assert reconnects[0].resumed is True
            assert session.state is State.REGISTERED
    assert pings and set(pings) == {'{"type":"ping","id":"as_hb"}'}
    assert len(sockets) >= 2


async def test_no_tasks_threads_or_sessions_leak(fresh_relay: Any) -> None:
    def running() -> set[asyncio.Task[Any]]:
        return {t for t in asyncio.all_tasks() if not t.done()}

    baseline_tasks = running()
    baseline_threads = threading.active_count()
    app = counter_app()

    @app.tool("/sync-work")
    def sync_work() -> int:
        return 1

    for round_no in range(15):
        reconnects: list[ReconnectInfo] = []
        session = await app.connect(fresh_relay.http, on_reconnect=reconnects.append, **FAST)
        link = await session.mint_link()
        assert await call_ok(link.url, "/sync-work") == 1
        if round_no % 3 == 1:
            sid = session.session_id
            assert sid is not None
            await kill_ws(fresh_relay, sid)
            await eventually(lambda r=reconnects: len(r) == 1, what="resume")
        elif round_no % 4 == 3:
            sid = session.session_id
            assert sid is not None
            await kill_ws(fresh_relay, sid)  # and close at once, racing the drop
        if round_no % 5 == 2:
            await session.close(end=False)
        else:
            await session.close()

    def leaked() -> set[asyncio.Task[Any]]:
        return running() - baseline_tasks - {asyncio.current_task()}

    # Closing returns before the last socket task has unwound on a loaded machine: every task
    # must end, not necessarily within a fixed tenth of a second.
    with contextlib.suppress(AssertionError):
        await eventually(lambda: not leaked(), what="tasks to end")
    assert not leaked(), leaked()
    await eventually(lambda: threading.active_count() <= baseline_threads, what="threads")
    assert len(list(app._sessions)) == 0
    async with httpx2.AsyncClient() as http:
        health = (await http.get(f"{fresh_relay.http}/healthz")).json()
    # Ended sessions are gone; the three closed with end=False are held (3 s hold window).
    assert health["sessions"] <= 3
