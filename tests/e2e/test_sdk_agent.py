"""AgentClient and the CLI (`agent-socket call` / `tools`) end to end, against every error code.

Each framework error of PROTOCOL.md §2.6 that an agent URL can produce is provoked for real and
must raise its own exception class. (``rate_limited`` only applies to ``/v1/_ws`` upgrades and
``relay_full`` to registrations, so agents never see them; their mapping is unit-tested.)
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest

from agent_socket import (
    AgentClient,
    App,
    AppOfflineError,
    Backoff,
    BodyTooLargeError,
    CsrfDeniedError,
    NotFoundError,
    ProtocolError,
    Reply,
    Session,
    State,
    TaskTimeoutError,
    TokenInvalidError,
    ToolTimeoutError,
    TooManyInflightError,
    TooManyTasksError,
)
from tests.e2e.test_sdk_support import FAST, counter_app, eventually, kill_ws

pytestmark = pytest.mark.timeout(60)


def build_app() -> App:
    app = counter_app("agent-errors")
    gate = asyncio.Event()
    app.gate = gate  # type: ignore[attr-defined]
    app.waiting = 0  # type: ignore[attr-defined]

    @app.tool("/wait")
    async def wait() -> str:
        app.waiting += 1  # type: ignore[attr-defined]
        await gate.wait()
        app.waiting -= 1  # type: ignore[attr-defined]
        return "released"

    @app.tool("/wait-task", long_running=True)
    async def wait_task() -> str:
        await gate.wait()
        return "released"

    @app.tool("/too-slow")
    async def too_slow() -> str:
        await asyncio.sleep(3.6)  # the test relay's sync timeout is 3 s
        return "late"

    @app.tool("/bad-header")
    async def bad_header() -> Reply:
        return Reply.text("x", "text/plain\r\nx-evil: 1")

    return app


@pytest.fixture
async def served(relay: Any) -> AsyncIterator[tuple[App, Session, str]]:
    app = build_app()
    options = {**FAST, "backoff": Backoff(base=0.8, cap=0.8, jitter=0)}
    async with app.connect(relay.http, **options) as session:
        link = await session.mint_link("agent")
        yield app, session, link.url


async def test_reads_briefing_and_tools(served: tuple[App, Session, str]) -> None:
    async with AgentClient(served[2]) as agent:
        assert "/increment" in await agent.agents_md()
        tools = {(t.method, t.path): t for t in await agent.tools()}
        assert tools[("POST", "/increment")].input_schema["properties"]["by"]["type"] == "integer"
        assert tools[("GET", "/count")].has_schema is False
        # The method comes from tools.json when not given.
        assert await agent.call("/count") == {"count": 0}
        assert await agent.call("/increment", {"by": 2}) == {"count": 2}


async def test_framework_errors(served: tuple[App, Session, str]) -> None:
    _app, session, link = served
    base = link.removesuffix("/agents.md")
    async with AgentClient(link) as agent:
        with pytest.raises(NotFoundError) as caught:
            await agent.call("/nope", method="POST")
        assert caught.value.status == 404
        async with AgentClient(base[:-3] + "!!!/agents.md") as malformed:
            with pytest.raises(NotFoundError):
                await malformed.call("/count", method="GET")
        with pytest.raises(CsrfDeniedError) as csrf:
            await agent.call("/count", headers={"sec-fetch-site": "cross-site"})
        assert csrf.value.status == 403
        with pytest.raises(BodyTooLargeError) as big:
            await agent.call("/increment", raw=b"x" * (1024 * 1024 + 1))
        assert big.value.status == 413
        with pytest.raises(ProtocolError) as upgrade:
            await agent.call("/count", headers={"upgrade": "h2c"})
        assert upgrade.value.status == 400
        with pytest.raises(ProtocolError) as bad_reply:
            await agent.call("/bad-header")
        assert bad_reply.value.status == 502
        revoked = await session.mint_link("to revoke")
        await session.revoke_link(revoked)
        async with AgentClient(revoked.url) as gone:
            with pytest.raises(TokenInvalidError) as invalid:
                await gone.call("/count")
        assert invalid.value.status == 401


async def test_in_flight_and_task_caps(served: tuple[App, Session, str]) -> None:
    app, _session, link = served
    gate: asyncio.Event = app.gate  # type: ignore[attr-defined]
    async with AgentClient(link, poll_interval=0.05) as agent:
        calls = [asyncio.create_task(agent.call("/wait")) for _ in range(100)]
        await eventually(lambda: app.waiting == 100, what="100 calls in flight")  # type: ignore[attr-defined]
        with pytest.raises(TooManyInflightError) as inflight:
            await agent.call("/wait")
        assert inflight.value.status == 429
        gate.set()
        assert await asyncio.gather(*calls) == ["released"] * 100
        gate.clear()
        started = await asyncio.gather(
            *(agent.request("/wait-task", wait=False) for _ in range(100))
        )
        assert all(response.status == 202 for response in started)
        with pytest.raises(TooManyTasksError) as tasks:
            await agent.request("/wait-task", wait=False)
        assert tasks.value.status == 503
        with pytest.raises(TaskTimeoutError):
            await agent.wait_task(str(started[0].task_id), timeout=0.2)
        gate.set()
        done = await agent.wait_task(str(started[0].task_id), timeout=5)
        assert done.body == "released"
        with pytest.raises(NotFoundError):  # a result is given once
            await agent.task(str(started[0].task_id))


async def test_tool_timeout(served: tuple[App, Session, str]) -> None:
    async with AgentClient(served[2]) as agent:
        with pytest.raises(ToolTimeoutError) as caught:
            await agent.call("/too-slow")
    assert caught.value.status == 504


async def test_app_offline_while_held(relay: Any, served: tuple[App, Session, str]) -> None:
    _app, session, link = served
    sid = session.session_id
    assert sid is not None
    await kill_ws(relay, sid)
    await eventually(lambda: session.state is State.RECONNECTING)
    async with AgentClient(link) as agent:
        with pytest.raises(AppOfflineError) as caught:
            await agent.call("/count")
        assert caught.value.status == 503 and caught.value.retry_after == 2
        await eventually(lambda: session.state is State.REGISTERED)
        assert await agent.call("/count") == {"count": 0}


async def _cli(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "agent_socket",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin", "NO_COLOR": "1"},
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_cli_call_and_tools(served: tuple[App, Session, str]) -> None:
    link = served[2]
    code, out, err = await _cli("call", link, "/increment", '{"by": 2}', "--json")
    assert (code, json.loads(out)) == (0, {"count": 2}), err
    code, out, _ = await _cli("call", link, "/count")
    assert code == 0 and json.loads(out) == {"count": 2}
    code, out, err = await _cli("call", link, "/increment", '{"by": "x"}', "--json")
    assert code == 1
    assert json.loads(out)["error"]["code"] == "bad_input"
    code, out, err = await _cli("call", link, "/increment", "{not json")
    assert code == 1 and "not valid JSON" in err
    code, out, err = await _cli("tools", link)
    assert code == 0, err
    for needle in ("/increment", "/count", "POST", "GET", '"integer"', "agent-errors"):
        assert needle in out
    code, out, _ = await _cli("tools", link, "--json")
    assert code == 0 and {t["path"] for t in json.loads(out)["tools"]} >= {"/increment", "/count"}
