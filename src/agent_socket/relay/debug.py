"""Debug endpoints — PROTOCOL.md §7. Mounted only when the relay runs with ``--debug``."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from agent_socket.protocol.errors import CloseCode
from agent_socket.relay.session import State
from agent_socket.relay.state import RelayState

_OK = "ok"


def routes(relay: RelayState) -> list[Route]:
    hub = relay.hub

    async def health(request: Request) -> Response:
        return PlainTextResponse(_OK)

    async def kill_ws(request: Request) -> Response:
        """Drop the app's socket as a network loss would (1011); hold, or end with ?end=1."""
        session = hub.get(request.path_params["sid"])
        if session is not None and session.state is not State.ENDED:
            if request.query_params.get("end") == "1":
                session.end("debug kill-ws ?end=1", CloseCode.INTERNAL, "killed by debug")
            else:
                session.drop(CloseCode.INTERNAL, "killed by debug")
                hold = request.query_params.get("hold")
                if hold is not None and hold.isdigit() and session.state is State.HELD:
                    session.hold(int(hold))
        return PlainTextResponse(_OK)

    async def state(request: Request) -> Response:
        session = hub.get(request.path_params["sid"])
        if session is None:
            return JSONResponse(
                {
                    "session": False,
                    "appConnected": False,
                    "lastFrameAt": None,
                    "heldUntil": None,
                    "tokens": 0,
                    "tasks": 0,
                }
            )
        return JSONResponse(session.debug_state())

    async def evict(request: Request) -> Response:
        """Forget the live object as a restart would: the socket goes, durable state stays."""
        session = hub.get(request.path_params["sid"])
        if session is not None and session.state is State.ATTACHED:
            if hub.cluster is not None:  # the durable state lives on in the cluster's storage
                hub.release(session, CloseCode.INTERNAL, "evicted by debug")
            else:
                session.drop(CloseCode.INTERNAL, "evicted by debug")
        return PlainTextResponse(_OK)

    return [
        Route("/_debug/health", health),
        Route("/_debug/kill-ws/{sid}", kill_ws, methods=["POST"]),
        Route("/_debug/state/{sid}", state),
        Route("/_debug/evict/{sid}", evict, methods=["POST"]),
    ]
