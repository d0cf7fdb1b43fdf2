"""Helpers shared by the SDK's end-to-end tests (no tests in here)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx2

from agent_socket import AgentClient, App, Backoff

#: Fast timings: reconnects within a fraction of a second, heartbeats well inside the relay's
#: 15 s test liveness timeout.
FAST: dict[str, Any] = {
    "backoff": Backoff(base=0.05, cap=0.25),
    "heartbeat_interval": 5.0,
    "heartbeat_timeout": 12.0,
    "close_timeout": 2.0,
    "request_timeout": 5.0,
}


async def debug_state(relay: Any, sid: str) -> dict[str, Any]:
    async with httpx2.AsyncClient() as http:
        response = await http.get(f"{relay.http}/_debug/state/{sid}")
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data


async def kill_ws(relay: Any, sid: str, **params: str) -> None:
    async with httpx2.AsyncClient() as http:
        response = await http.post(f"{relay.http}/_debug/kill-ws/{sid}", params=params)
        assert response.status_code == 200


async def eventually(
    check: Callable[[], Awaitable[bool] | bool], timeout: float = 5.0, what: str = ""
) -> None:
    """Wait until ``check()`` is true (polling), or fail after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        await asyncio.sleep(0.02)


def counter_app(name: str = "counter", description: str = "A counter the AI can change.") -> App:
    """An app with ``POST /increment`` and ``GET /count``; tests add their own tools to it."""
    app = App(name, description=description)
    state = {"count": 0}

    @app.tool("/increment")
    async def increment(by: int = 1) -> dict[str, int]:
        """Add `by` to the counter and return the new count."""
        state["count"] += by
        return {"count": state["count"]}

    @app.tool("/count", method="GET")
    def count() -> dict[str, int]:
        """Return the count."""
        return {"count": state["count"]}

    return app


async def call_ok(link: str, path: str, body: Any = None, **kw: Any) -> Any:
    async with AgentClient(link) as agent:
        return await agent.call(path, body, **kw)
