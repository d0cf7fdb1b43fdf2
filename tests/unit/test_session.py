"""The session state machine (PROTOCOL.md §3–§4) without any network: a fake link records frames."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from typing import Any

import pytest

from agent_socket.protocol.errors import CloseCode, ErrorCode
from agent_socket.protocol.frames import parse_registration
from agent_socket.protocol.limits import Limits
from agent_socket.relay.hub import Hub, RelayFull
from agent_socket.relay.replies import Response, StartTask
from agent_socket.relay.session import CallFailed, Session, State

LIMITS = Limits(max_sync_tool_ms=300, heartbeat_timeout_ms=2000, resume_grace_ms=300)
REGISTRATION = parse_registration(
    {"appId": "app", "agentsMd": "# doc", "tools": [{"path": "/t"}]}, LIMITS
)


class FakeLink:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.closed: tuple[int, str] | None = None

    async def send(self, text: str) -> None:
        if self.closed:
            raise ConnectionError
        self.sent.append(json.loads(text))

    def close(self, code: int, reason: str) -> None:
        self.closed = self.closed or (code, reason)


def new_session(limits: Limits = LIMITS) -> tuple[Hub, Session, FakeLink, str]:
    hub = Hub(limits, max_sessions=10, max_held_bytes=10**9)
    link = FakeLink()
    session, secret = hub.create(REGISTRATION, link)
    return hub, session, link, secret


async def test_a_call_is_answered_by_the_matching_reply() -> None:
    _, session, link, _ = new_session()
    call = asyncio.create_task(session.call("POST", "/t", "{}", {}))
    await asyncio.sleep(0)
    frame = link.sent[-1]
    assert frame["type"] == "tool_call" and frame["path"] == "/t"
    session.on_tool_reply({"id": "unknown", "status": 500})
    session.on_tool_reply({"id": frame["id"], "status": 200, "body": 1})
    response = await call
    assert isinstance(response, Response) and (response.status, response.body) == (200, b"1")
    assert session.pending == {}


async def test_timeout_then_the_late_reply_is_dropped() -> None:
    _, session, link, _ = new_session()
    with pytest.raises(CallFailed) as failed:
        await session.call("POST", "/t", "", {})
    assert failed.value.code is ErrorCode.TOOL_TIMEOUT
    session.on_tool_reply({"id": link.sent[-1]["id"], "status": 200})  # must not raise
    assert session.pending == {}


async def test_a_drop_fails_calls_in_flight_and_holds() -> None:
    hub, session, _, _ = new_session()
    call = asyncio.create_task(session.call("POST", "/t", "", {}))
    await asyncio.sleep(0)
    session.drop(1006, "gone")
    with pytest.raises(CallFailed) as failed:
        await call
    assert failed.value.code is ErrorCode.APP_OFFLINE
    assert session.state is State.HELD and session.held_until is not None
    assert hub.get(session.id) is session


async def test_hold_expiry_ends_the_session() -> None:
    hub, session, _, _ = new_session()
    session.drop(1006, "gone")
    await asyncio.sleep(0.45)
    assert session.state is State.ENDED and hub.get(session.id) is None


async def test_no_hold_window_ends_at_once() -> None:
    _, session, _, _ = new_session(replace(LIMITS, resume_grace_ms=0))
    session.drop(1006, "gone")
    assert session.state is State.ENDED


async def test_silence_closes_4408_and_holds_while_frames_keep_it_alive() -> None:
    _, session, link, _ = new_session(replace(LIMITS, heartbeat_timeout_ms=300))
    for _ in range(4):
        await asyncio.sleep(0.1)
        session.touch()
    assert session.state is State.ATTACHED
    await asyncio.sleep(0.45)
    assert link.closed == (CloseCode.TIMEOUT, "heartbeat timeout")
    assert session.state is State.HELD


async def test_attach_replaces_the_old_link_with_4410() -> None:
    _, session, old, _ = new_session()
    call = asyncio.create_task(session.call("POST", "/t", "", {}))
    await asyncio.sleep(0)
    new = FakeLink()
    session.attach(new, REGISTRATION)
    assert old.closed is not None and old.closed[0] == CloseCode.REPLACED
    with pytest.raises(CallFailed):
        await call
    assert session.link is new and session.state is State.ATTACHED


async def test_tokens_cap_revoke_and_lookup() -> None:
    _, session, _, _ = new_session(replace(LIMITS, max_tokens_per_session=2))
    first, second = session.mint("a"), session.mint(5)
    assert first is not None and second is not None and second.label == ""
    assert session.mint("c") is None
    verifier = first.token[12:]
    assert session.accepts(verifier)
    assert session.revoke(first.token) and not session.accepts(verifier)
    assert not session.revoke(first.token)
    assert not session.revoke("as_ZZZZZZZZ_" + verifier)


async def test_a_task_is_recorded_when_its_202_arrives() -> None:
    _, session, link, _ = new_session()
    call = asyncio.create_task(session.call("POST", "/t", "", {}))
    await asyncio.sleep(0)
    session.on_tool_reply({"id": link.sent[-1]["id"], "status": 202, "taskId": "job"})
    # A task_complete read right after the 202 must find the task, before the caller resumes.
    assert "job" in session.tasks
    session.complete_task("job", Response(200, "application/json", b"1"))
    assert await call == StartTask("job")
    done = session.take_task("job")
    assert done is not None and done.result is not None


async def test_a_full_task_table_answers_too_many_tasks() -> None:
    _, session, link, _ = new_session(replace(LIMITS, max_tasks_per_session=1))
    assert session.start_task("first")
    call = asyncio.create_task(session.call("POST", "/t", "", {}))
    await asyncio.sleep(0)
    session.on_tool_reply({"id": link.sent[-1]["id"], "status": 202, "taskId": "second"})
    response = await call
    assert isinstance(response, Response) and response.status == 503
    assert b"too_many_tasks" in response.body and "second" not in session.tasks


async def test_tasks_cap_overwrite_and_single_delivery() -> None:
    _, session, _, _ = new_session(replace(LIMITS, max_tasks_per_session=1))
    assert session.start_task("a")
    assert session.start_task("a")  # a reused id overwrites
    assert not session.start_task("b")
    pending = session.take_task("a")
    assert pending is not None and pending.result is None
    session.complete_task("a", Response(200, "application/json", b"1"))
    done = session.take_task("a")
    assert done is not None and done.result is not None
    assert session.take_task("a") is None


async def test_end_clears_everything_and_closes_1000() -> None:
    hub, session, link, _ = new_session()
    session.mint("x")
    session.start_task("t")
    session.end("test")
    assert link.closed == (1000, "session ended")
    assert session.tokens == {} and session.tasks == {}
    assert hub.get(session.id) is None


async def test_caps_end_longest_away_held_sessions_first() -> None:
    hub = Hub(LIMITS, max_sessions=2, max_held_bytes=10**9)
    first, _ = hub.create(REGISTRATION, FakeLink())
    second, _ = hub.create(REGISTRATION, FakeLink())
    with pytest.raises(RelayFull):
        hub.create(REGISTRATION, FakeLink())
    first.drop(1006, "gone")
    third, _ = hub.create(REGISTRATION, FakeLink())
    assert first.state is State.ENDED
    assert {second.id, third.id} == set(hub.sessions)


async def test_held_bytes_cap_ends_longest_away_first() -> None:
    hub = Hub(LIMITS, max_sessions=10, max_held_bytes=REGISTRATION.size)
    first, _ = hub.create(REGISTRATION, FakeLink())
    second, _ = hub.create(REGISTRATION, FakeLink())
    first.drop(1006, "gone")
    assert first.state is State.HELD
    await asyncio.sleep(0.01)
    second.drop(1006, "gone")
    assert first.state is State.ENDED and second.state is State.HELD
