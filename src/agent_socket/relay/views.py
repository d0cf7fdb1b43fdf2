"""Extra views of every agent link (issue 9): ``$BASE/mcp`` and ``$BASE/openapi.json``.

The agent surface (:mod:`agent_socket.relay.agent_http`) hands these a
:class:`~agent_socket.relay.agent_http.LinkRequest` once the token has been checked (PROTOCOL.md
§2.6 steps 1–7) — on any node of a cluster, against the cluster's storage when the session lives
elsewhere; a tool the app registered at the same method and path still wins. Views hold no
session: they read ``LinkRequest.registration`` and make calls and task polls through
``LinkRequest.surface.answer``, the agent surface's one pipeline. This module holds what both
views share: the link's public URL and a whole-response writer.
"""

from __future__ import annotations

import re

from agent_socket.relay.agent_http import PREFIX, LinkView
from agent_socket.relay.asgi import Headers, Scope, Send, header
from agent_socket.relay.replies import LINK_HEADERS
from agent_socket.relay.state import RelayState

#: What MCP tool names and OpenAPI operation ids may hold (the strictest clients' rule).
NAME_RE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_NAME_MAX = 64
_NOT_NAME = re.compile(r"[^a-zA-Z0-9_-]+")


def identifier(text: str) -> str:
    """``text`` as a name matching :data:`NAME_RE`: other characters become ``_``."""
    name = _NOT_NAME.sub("_", text).strip("_")
    name = re.sub(r"__+", "_", name)[:_NAME_MAX]
    return name or "tool"


def unique(name: str, taken: set[str]) -> str:
    """``name``, or ``name_2``, ``name_3``… (cut to fit), whichever is free; then taken."""
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        suffix = f"_{n}"
        candidate = name[: _NAME_MAX - len(suffix)] + suffix
    taken.add(candidate)
    return candidate


def request_origin(relay: RelayState, scope: Scope) -> str:
    """The relay's public origin: the configured ``public_url``, else scheme + ``Host``."""
    if relay.config.public_url:
        return relay.config.public_url.rstrip("/")
    scheme = "https" if scope.get("scheme") in ("https", "wss") else "http"
    host = header(scope, b"host")
    if not host:
        server = scope.get("server") or ("127.0.0.1", relay.config.port)
        host = f"{server[0]}:{server[1]}"
    return f"{scheme}://{host}"


def link_base(relay: RelayState, scope: Scope, token: str) -> str:
    """``$BASE`` for this request: ``<origin>/v1/t/<token>``."""
    return f"{request_origin(relay, scope)}{PREFIX}{token}"


async def send_whole(
    send: Send, status: int, content_type: str | None, body: bytes, headers: Headers = ()
) -> int:
    """Send a whole response with the headers every agent URL carries; returns ``status``."""
    out = [*LINK_HEADERS, *headers]
    if content_type is not None:
        out.append((b"content-type", content_type.encode("latin-1")))
    out.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": out})
    await send({"type": "http.response.body", "body": body})
    return status


def link_views(relay: RelayState) -> dict[str, LinkView]:
    """The views :class:`~agent_socket.relay.agent_http.AgentSurface` serves under ``$BASE``."""
    # Imported here: both modules use the helpers above.
    from agent_socket.relay.mcp import McpView
    from agent_socket.relay.openapi import OpenApiView

    return {"/mcp": McpView(relay), "/openapi.json": OpenApiView(relay)}
