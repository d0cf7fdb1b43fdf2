"""SDK end to end: links, update_tools, close() and the session's end, connect errors."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx2
import pytest

from agent_socket import (
    AgentClient,
    App,
    AppOfflineError,
    ConnectError,
    NotFoundError,
    RegistrationError,
    RequestError,
    SessionClosedError,
    State,
    TokenInvalidError,
)
from tests.conftest import TEST_RELAY_ARGS, free_port, running_relay
from tests.e2e.test_sdk_support import FAST, call_ok, counter_app, debug_state, eventually

pytestmark = pytest.mark.timeout(60)


async def test_mint_revoke_and_list_links(relay: Any) -> None:
    app = counter_app()
    async with app.connect(relay.http, **FAST) as session:
        assert session.state is State.REGISTERED
        first = await session.mint_link("alice")
        second = await session.mint_link("bob")
        # __BASE__ is replaced by the URL the SDK connected to.
        assert first.url == f"{relay.http}/v1/t/{first.token}/agents.md"
        assert (first.label, second.label) == ("alice", "bob")
        assert first.expires_at is None
        assert [link.label for link in session.links()] == ["alice", "bob"]
        assert await call_ok(first.url, "/increment", {"by": 2}) == {"count": 2}
        assert await session.revoke_link(first) is True
        with pytest.raises(TokenInvalidError):
            await call_ok(first.url, "/increment")
        assert await session.revoke_link(first.token) is False  # no longer live
        assert [link.label for link in session.links()] == ["bob"]
        assert [link.token for link in await session.refresh_links()] == [second.token]
        assert await call_ok(second.url, "/count") == {"count": 2}


async def test_relay_public_url_is_kept(tmp_path: Path) -> None:
    public = "https://relay.example.test"
    with running_relay(*TEST_RELAY_ARGS, "--public-url", public, tmp=tmp_path) as own:
        async with counter_app().connect(own.http, **FAST) as session:
            link = await session.mint_link("x")
            assert link.url == f"{public}/v1/t/{link.token}/agents.md"


async def test_too_many_links_raises(relay: Any) -> None:
    async with counter_app().connect(relay.http, **FAST) as session:
        await asyncio.gather(*(session.mint_link(f"l{n}") for n in range(50)))
        with pytest.raises(RequestError) as caught:
            await session.mint_link("one too many")
        assert caught.value.code == "too_many_tokens"


async def test_update_tools_at_run_time(relay: Any) -> None:
    app = counter_app()
    async with app.connect(relay.http, **FAST) as session:
        link = await session.mint_link()
        async with AgentClient(link.url) as agent:

            @app.tool("/reset")
            async def reset() -> dict[str, int]:
                """Set the counter to zero."""
                return {"count": 0}

            async def listed() -> bool:
                return "/reset" in [t.path for t in await agent.tools()]

            await eventually(listed, what="/reset in tools.json")  # pushed in the background
            assert "/reset" in await agent.agents_md()  # the generated briefing follows
            assert await agent.call("/reset") == {"count": 0}
            app.remove_tool("/reset")
            await session.update_tools()  # explicit: returns once the relay has it
            assert "/reset" not in [t.path for t in await agent.tools()]
            with pytest.raises(NotFoundError):
                await agent.call("/reset", method="POST")


async def test_close_ends_the_session(relay: Any) -> None:
    session = await counter_app().connect(relay.http, **FAST)
    link = await session.mint_link()
    sid = session.session_id
    assert sid is not None
    assert (await debug_state(relay, sid))["appConnected"] is True
    await session.close()
    assert session.state is State.CLOSED
    assert (await debug_state(relay, sid))["session"] is False
    with pytest.raises(AppOfflineError):
        await call_ok(link.url, "/count")
    with pytest.raises(SessionClosedError):
        await session.mint_link()
    await session.close()  # twice is fine
    await session.wait_closed()


async def test_close_without_end_holds_the_session(relay: Any) -> None:
    session = await counter_app().connect(relay.http, **FAST)
    sid = session.session_id
    assert sid is not None
    await session.close(end=False)
    state = await debug_state(relay, sid)
    assert state["session"] is True and state["appConnected"] is False


async def test_unreachable_relay_raises_connect_error() -> None:
    with pytest.raises(ConnectError):
        await counter_app().connect(f"http://127.0.0.1:{free_port()}", **FAST)


async def test_refused_registration_raises(relay: Any) -> None:
    app = App("big", agents_md="x" * 70_000)
    with pytest.raises(RegistrationError) as caught:
        async with app.connect(relay.http, **FAST):
            pass
    assert caught.value.code == "agents_md_too_large"


async def test_link_serves_a_plain_curl_like_client(relay: Any) -> None:
    async with counter_app().connect(relay.http, **FAST) as session:
        link = await session.mint_link()
        base = link.url.removesuffix("/agents.md")
        async with httpx2.AsyncClient() as http:
            response = await http.post(f"{base}/increment", json={"by": 5})
        assert response.json() == {"count": 5}
