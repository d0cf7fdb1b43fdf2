"""WebSocket handshakes that the server layer refuses still get the contract's answers.

uvicorn hands a request with ``Upgrade: websocket`` to its WebSocket protocol, which refuses a
malformed handshake (no ``Sec-WebSocket-Key``, wrong method, …) itself with a plain-text
400/405/426 before the relay sees the request. PROTOCOL.md §2.6 wants any ``Upgrade`` on an
agent URL answered ``400 protocol_error`` (after a malformed token's 404), and §3 a bad upgrade
on ``/v1/_ws`` the same 400; elsewhere it is ``404 not_found``. This subclass answers those
refusals with the relay's JSON errors; valid handshakes go on exactly as before.
"""

from __future__ import annotations

import orjson
from uvicorn.protocols.websockets.websockets_sansio_impl import (
    STATUS_PHRASES,
    WebSocketsSansIOProtocol,
)
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from agent_socket.protocol import ids
from agent_socket.protocol.errors import ErrorCode, error_body
from agent_socket.relay.replies import JSON_TYPE, LINK_HEADERS

AGENT_PREFIX = "/v1/t/"
APP_SOCKET_PATH = "/v1/_ws"


def refusal(path: str) -> tuple[int, ErrorCode, str]:
    """Status, code and message for a refused handshake on ``path``."""
    if path.startswith(AGENT_PREFIX):
        token = path[len(AGENT_PREFIX) :].partition("/")[0]
        if ids.parse_token(token) is None:
            return 404, ErrorCode.NOT_FOUND, "no such route"
        return 400, ErrorCode.PROTOCOL_ERROR, "no upgrades on an agent URL"
    if path == APP_SOCKET_PATH:
        return 400, ErrorCode.PROTOCOL_ERROR, "/v1/_ws needs a valid WebSocket upgrade"
    return 404, ErrorCode.NOT_FOUND, "no WebSocket endpoint here; apps use /v1/_ws"


class RelayWebSocketProtocol(WebSocketsSansIOProtocol):
    def handle_connect(self, event: Request) -> None:
        # accept() only builds the response; the server sends it in handle_connect.
        if self.conn.accept(event).status_code == 101:
            super().handle_connect(event)
            return
        path = event.path.partition("?")[0]
        status, code, message = refusal(path)
        body = orjson.dumps(error_body(code, message))
        headers = Headers(
            [
                ("Content-Type", JSON_TYPE),
                ("Content-Length", str(len(body))),
                ("Connection", "close"),
                *(
                    (name.decode("latin-1"), value.decode("latin-1"))
                    for name, value in LINK_HEADERS
                    if path.startswith(AGENT_PREFIX) or name == b"x-content-type-options"
                ),
            ]
        )
        # What the base class does for a refused handshake, with our response.
        self.handshake_complete = True
        self.close_sent = True
        self.conn.send_response(Response(status, STATUS_PHRASES[status], headers, body))
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.transport.close()
