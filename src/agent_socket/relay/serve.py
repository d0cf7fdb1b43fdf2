"""Run the relay under uvicorn with the settings the protocol needs."""

from __future__ import annotations

import logging
import re

import uvicorn

from agent_socket.protocol.limits import UTF8_BYTES_PER_UNIT
from agent_socket.relay import events
from agent_socket.relay.app import create_app
from agent_socket.relay.config import RelayConfig
from agent_socket.relay.handshake import RelayWebSocketProtocol

_TOKEN_IN_TEXT = re.compile(r"(as_[0-9A-HJKMNP-TV-Z]{8}_)[A-Za-z0-9_-]{22}")


class RedactTokens(logging.Filter):
    """Server logs may quote request paths; agent tokens in them lose their verifier."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "as_" in message:
            record.msg = _TOKEN_IN_TEXT.sub(r"\1…", message)
            record.args = ()
        return True


def serve(config: RelayConfig) -> None:
    events.configure(config.log_level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).addFilter(RedactTokens())
    uvicorn.run(
        create_app(config),
        host=config.host,
        port=config.port,
        log_level=config.log_level.lower(),
        access_log=False,  # request lines would carry agent tokens
        proxy_headers=False,  # X-Forwarded-For is handled by the relay, for trusted proxies only
        ws=RelayWebSocketProtocol,  # uvicorn's websockets-sansio, with JSON refusals
        # Let frames of up to 4 Mi UTF-16 units through in UTF-8; the relay counts units itself.
        ws_max_size=config.max_frame_units * UTF8_BYTES_PER_UNIT + 1024,
        ws_ping_interval=None,  # the relay sends no pings of its own (§3.5)
        ws_ping_timeout=None,
        ws_per_message_deflate=False,
        timeout_graceful_shutdown=5,
        lifespan="on",
    )
