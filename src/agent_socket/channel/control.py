"""The local hand-over between ``channel`` commands and a running host: a Unix socket.

One request per connection, one JSON object per line each way::

    {"op": "send", "outbox_id": 7}            → {"ok": true, "seq": 42}
    {"op": "recv", "name": …, "since": …, "wait": …} → the /recv answer
    {"op": "peers"} / {"op": "status"} / {"op": "stop", "end": false}

Messages never travel over this socket on their own: ``channel send`` first commits its message
to the room's SQLite outbox (atomic: wholly there or not at all), then asks the host to publish
the outbox (``send``). If the host is down, or dies mid-request, the message stays queued and
the next host publishes it exactly once; the command can always learn its seq from the log.

The socket lives in the user's ``0700`` room directory (or a ``0700`` temp directory when that
path is too long for a socket), so only the user can connect: no secret is needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from agent_socket.channel.core import ChannelError

log = logging.getLogger("agent_socket.channel")

#: Largest request line the host reads (a recv request is tiny; sends go through SQLite).
MAX_REQUEST_BYTES = 64 * 1024
#: Read buffer for answers: a recv answer holds up to ~1 MiB of text, escaped.
MAX_ANSWER_BYTES = 16 * 1024 * 1024

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class HostDown(Exception):
    """No host is running for the room (or it went away during the request)."""


class ControlError(Exception):
    """The host refused the request."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# -- host side --------------------------------------------------------------------------------


class ControlServer:
    """Serves control requests on ``path`` with ``handler``; a stale socket file is replaced.

    Start it only while holding the room's host lock, so the file can only be stale.
    """

    def __init__(self, path: Path, handler: Handler) -> None:
        self.path = path
        self._handler = handler
        self._server: asyncio.Server | None = None
        self._conns: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        old = os.umask(0o077)  # the socket file is the user's alone from its creation
        try:
            self._server = await asyncio.start_unix_server(
                self._serve, path=str(self.path), limit=MAX_REQUEST_BYTES
            )
        finally:
            os.umask(old)

    async def close(self) -> None:
        """Stop accepting, drop open requests (their clients see the host go), remove the file."""
        if self._server is not None:
            self._server.close()
        for writer in list(self._conns):
            writer.close()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._conns.add(writer)
        try:
            line = await reader.readline()
            try:
                request = json.loads(line)
                if not isinstance(request, dict):
                    raise ValueError("not an object")
                answer = await self._handler(request)
            except ChannelError as exc:
                answer = {"error": {"code": exc.code, "message": exc.message}}
            except (ValueError, TypeError, KeyError) as exc:
                answer = {"error": {"code": "bad_request", "message": str(exc)}}
            writer.write(json.dumps(answer, ensure_ascii=False).encode() + b"\n")
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        except Exception:
            log.exception("control request failed")
        finally:
            self._conns.discard(writer)
            writer.close()


# -- command side -----------------------------------------------------------------------------


def request(path: Path, payload: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Send one request to the host and return its answer.

    Raises :class:`HostDown` when no host listens or it goes away before answering (the caller
    falls back to the log), :class:`ControlError` when the host refuses, ``TimeoutError`` after
    ``timeout`` seconds.
    """
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        try:
            sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError, ConnectionResetError) as exc:
            raise HostDown(str(exc)) from None
        except OSError as exc:
            raise HostDown(str(exc)) from None
        try:
            sock.sendall(json.dumps(payload).encode() + b"\n")
            chunks: list[bytes] = []
            total = 0
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
                total += len(chunk)
                if chunk.endswith(b"\n") or total > MAX_ANSWER_BYTES:
                    break
        except TimeoutError as exc:
            raise TimeoutError("the host did not answer in time") from exc
        except (ConnectionResetError, BrokenPipeError) as exc:
            raise HostDown(str(exc)) from None
    finally:
        sock.close()
    data = b"".join(chunks)
    if not data.endswith(b"\n"):
        raise HostDown("the host closed the connection before answering")
    answer = json.loads(data)
    if not isinstance(answer, dict):
        raise HostDown("the host sent a malformed answer")
    error = answer.get("error")
    if isinstance(error, dict):
        raise ControlError(str(error.get("code", "error")), str(error.get("message", "")))
    return answer
