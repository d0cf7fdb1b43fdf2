"""Thin ASGI helpers shared by the raw handlers: responses, denials, header lookup."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = Iterable[tuple[bytes, bytes]]


def header(scope: Scope, name: bytes) -> str | None:
    """The first value of a request header (``name`` lower-case), decoded as latin-1."""
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value).decode("latin-1")
    return None


def client_host(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


async def respond(
    send: Send, status: int, content_type: str, body: bytes, headers: Headers = ()
) -> None:
    """Send a whole HTTP response."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type.encode("latin-1")),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def deny_upgrade(
    send: Send, status: int, content_type: str, body: bytes, headers: Headers = ()
) -> None:
    """Refuse a WebSocket upgrade with an HTTP response (ASGI websocket denial extension)."""
    await send(
        {
            "type": "websocket.http.response.start",
            "status": status,
            "headers": [(b"content-type", content_type.encode("latin-1")), *headers],
        }
    )
    await send({"type": "websocket.http.response.body", "body": body})
