"""A raw app-side peer for end-to-end tests: frames on a real WebSocket, no SDK in between.

Tests of the relay speak the wire protocol directly so that they check the contract, not our SDK.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any] | None] | dict[str, Any] | None]

COUNTER_TOOLS = [
    {
        "method": "POST",
        "path": "/increment",
        "description": "Add to the counter",
        "input_schema": {"type": "object", "properties": {"by": {"type": "integer"}}},
    },
    {"method": "GET", "path": "/count", "description": "Read the counter"},
]


def register_frame(**overrides: Any) -> dict[str, Any]:
    frame: dict[str, Any] = {
        "type": "register",
        "appId": "test-app",
        "agentsMd": "# Test app\nA counter.",
        "appDescription": "An app for tests",
        "tools": COUNTER_TOOLS,
    }
    frame.update(overrides)
    return frame


async def send(ws: ClientConnection, frame: dict[str, Any] | str) -> None:
    await ws.send(frame if isinstance(frame, str) else json.dumps(frame))


async def recv(ws: ClientConnection, timeout: float = 5) -> dict[str, Any]:
    """The next JSON frame from the relay."""
    raw = await asyncio.wait_for(ws.recv(), timeout)
    return json.loads(raw)


async def recv_type(ws: ClientConnection, frame_type: str, timeout: float = 5) -> dict[str, Any]:
    """The next frame of ``frame_type``, skipping others (e.g. tool calls)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        frame = await recv(ws, max(0.01, deadline - loop.time()))
        if frame.get("type") == frame_type:
            return frame


async def closed_with(ws: ClientConnection, timeout: float = 5) -> tuple[int | None, str | None]:
    """Wait until the relay closes the socket; return (code, reason) it sent."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(timeout):
            while True:
                await ws.recv()
    await asyncio.wait_for(ws.wait_closed(), timeout)
    rcvd = ws.protocol.close_rcvd
    return (rcvd.code, rcvd.reason) if rcvd is not None else (None, None)


class App:
    """A registered app socket that answers tool calls with ``handler`` in the background."""

    def __init__(self, ws: ClientConnection, reply: dict[str, Any], base: str) -> None:
        self.ws = ws
        self.reply = reply
        self.base = base
        self.session_id: str = reply.get("sessionId", "")
        self.secret: str = reply.get("resumeSecret", "")
        self.calls: list[dict[str, Any]] = []
        self.frames: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.handler: Handler | None = None
        self._reader: asyncio.Task[None] | None = None
        self._answering: set[asyncio.Task[None]] = set()
        self._next_id = 0

    def start(self, handler: Handler | None = None) -> None:
        """Answer tool calls with ``handler`` (default: 200 echo of the call)."""
        self.handler = handler or (lambda call: {"status": 200, "body": {"echo": call}})
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        with contextlib.suppress(Exception):
            async for raw in self.ws:
                frame = json.loads(raw)
                if frame.get("type") == "tool_call":
                    self.calls.append(frame)
                    answer = asyncio.create_task(self._answer(frame))
                    self._answering.add(answer)
                    answer.add_done_callback(self._answering.discard)
                else:
                    await self.frames.put(frame)

    async def _answer(self, call: dict[str, Any]) -> None:
        assert self.handler is not None
        result = self.handler(call)
        if asyncio.iscoroutine(result):
            result = await result
        if result is not None:
            await send(self.ws, {"type": "tool_reply", "id": call["id"], **result})

    async def request(self, frame_type: str, **fields: Any) -> dict[str, Any]:
        """Send a request frame with a fresh id and return its ``*_reply``."""
        self._next_id += 1
        frame_id = f"r{self._next_id}"
        await send(self.ws, {"type": frame_type, "id": frame_id, **fields})
        if self._reader is None:
            return await recv_type(self.ws, f"{frame_type}_reply")
        while True:
            frame = await asyncio.wait_for(self.frames.get(), 5)
            if frame.get("id") == frame_id:
                return frame

    async def mint(self, label: str = "test") -> str:
        """Mint a token and return its agent base URL ($BASE)."""
        reply = await self.request("mint_agent_token", label=label)
        assert reply["ok"], reply
        return f"{self.base}/v1/t/{reply['token']}"

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        await self.ws.close()


@contextlib.asynccontextmanager
async def registered_app(
    relay: Any, handler: Handler | None = None, **register: Any
) -> AsyncIterator[App]:
    """Open an app socket on ``relay``, register it, and answer calls with ``handler``."""
    async with connect(relay.ws, max_size=None) as ws:
        await send(ws, register_frame(**register))
        reply = await recv_type(ws, "register_reply")
        assert reply["ok"], reply
        app = App(ws, reply, relay.http)
        app.start(handler)
        try:
            yield app
        finally:
            if app._reader is not None:
                app._reader.cancel()
