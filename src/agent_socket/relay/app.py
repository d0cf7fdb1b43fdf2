"""``create_app(config)`` → the relay's ASGI app. The route table of PROTOCOL.md at a glance:

=========================  ==============================================================
``/v1/t/<token>/…``        agent surface (§2) — raw ASGI, the hot path
``/v1/_ws``                app WebSocket (§3, §4); plain HTTP there is 400 protocol_error
``/_debug/…``              debug endpoints (§7), only with ``--debug``
``/``, ``/healthz``        landing page and health
``/sdk/…``, ``/examples/…``  browser SDK and example pages
anything else              404 ``not_found`` (a WebSocket elsewhere is refused the same way)
=========================  ==============================================================
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from agent_socket.protocol.errors import CloseCode, CloseReason, ErrorCode
from agent_socket.relay import app_socket, debug, replies, web
from agent_socket.relay.agent_http import PREFIX, AgentSurface
from agent_socket.relay.asgi import Receive, Scope, Send, deny_upgrade, respond
from agent_socket.relay.config import RelayConfig
from agent_socket.relay.state import RelayState
from agent_socket.relay.views import link_views

if TYPE_CHECKING:
    from agent_socket.relay.cluster import NatsCluster

APP_SOCKET_PATH = "/v1/_ws"


def _error(code: ErrorCode, message: str) -> bytes:
    return replies.error(code, message).body


class RelayApp:
    """Dispatches the protocol's two surfaces directly; the rest goes through Starlette."""

    def __init__(self, config: RelayConfig) -> None:
        self.state = RelayState(config)
        self.agents = AgentSurface(self.state, link_views(self.state))
        self.cluster = _cluster(self.state, self.agents) if config.nats else None
        extra: list[BaseRoute] = debug.routes(self.state) if config.debug else []  # type: ignore[assignment]
        self.site = Starlette(
            routes=[*extra, *web.routes(self.state)],
            exception_handlers={HTTPException: self._http_error},
            lifespan=self._lifespan,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        path = scope.get("path", "")
        if path.startswith(PREFIX):
            await self.agents(scope, receive, send)
        elif path == APP_SOCKET_PATH:
            if kind == "websocket":
                await app_socket.handle(scope, receive, send, self.state)
            else:
                body = _error(ErrorCode.PROTOCOL_ERROR, "/v1/_ws needs a WebSocket upgrade")
                await respond(send, 400, replies.JSON_TYPE, body, replies.NOSNIFF)
        elif kind == "websocket":
            body = _error(ErrorCode.NOT_FOUND, "no WebSocket endpoint here; apps use /v1/_ws")
            await deny_upgrade(send, 404, replies.JSON_TYPE, body, replies.NOSNIFF)
        else:
            await self.site(scope, receive, send)

    async def _http_error(self, request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        code = ErrorCode.NOT_FOUND if status in (404, 405) else ErrorCode.PROTOCOL_ERROR
        message = "no such route" if status in (404, 405) else "bad request"
        return Response(
            _error(code, message),
            status_code=404 if status == 405 else status,
            media_type=replies.JSON_TYPE,
            headers={"x-content-type-options": "nosniff"},
        )

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        if self.cluster is not None:
            await self.cluster.start()
        yield
        # Shutdown: app sockets go with 1012 so SDKs reconnect (to this relay once it is back,
        # or in cluster mode to any relay: the sessions stay in the cluster's storage).
        self.state.hub.close_all(CloseCode.RESTART, CloseReason.RESTARTING)
        if self.cluster is not None:
            await self.cluster.stop()


def _cluster(state: RelayState, agents: AgentSurface) -> NatsCluster:
    try:
        from agent_socket.relay.cluster import NatsCluster
    except ImportError as missing:  # pragma: no cover - depends on the install
        raise SystemExit(
            "cluster mode (--nats) needs the NATS client: pip install 'agent-socket[cluster]'"
        ) from missing
    cluster = NatsCluster(state, state.config.nats or "", state.config.nats_bucket)
    cluster.surface = agents
    state.hub.cluster = cluster
    return cluster


def create_app(config: RelayConfig | None = None) -> RelayApp:
    return RelayApp(config or RelayConfig())
