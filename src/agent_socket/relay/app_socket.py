"""The app WebSocket ``/v1/_ws`` — PROTOCOL.md §3, §4 and §5.

One :class:`AppSocket` per connection. A plain socket registers a new session; a ``?session=``
socket may only ``resume`` or ``end`` that session, and becomes the session's app socket once it
has resumed. Frames are handled in arrival order; tool calls flow the other way through
:class:`SocketLink`, which is all a :class:`Session` knows of this socket.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, Literal
from urllib.parse import parse_qs

import orjson

from agent_socket.protocol import ids
from agent_socket.protocol.errors import (
    CloseCode,
    CloseReason,
    ErrorCode,
    ProtocolViolation,
)
from agent_socket.protocol.frames import (
    HEARTBEAT_PING,
    HEARTBEAT_PONG,
    REPLY_BEFORE_REGISTER,
    dumps,
    error_reply,
    parse_registration,
    parse_update,
)
from agent_socket.protocol.limits import MAX_REVOKE_ON_RESUME, utf16_units
from agent_socket.relay import replies
from agent_socket.relay.asgi import Receive, Scope, Send, client_host, deny_upgrade, header
from agent_socket.relay.events import event
from agent_socket.relay.hub import ClusterUnavailable, RelayFull
from agent_socket.relay.ratelimit import client_address
from agent_socket.relay.session import Session, State
from agent_socket.relay.state import RelayState

_closers: set[asyncio.Task[None]] = set()

#: What ``AppSocket._next`` returns instead of a frame, besides the peer's close code (≥ 1000).
TIMED_OUT = -1  # the register/resume deadline passed
OVERSIZED = -2  # the frame is over the frame cap (close 1009)


class SocketLink:
    """:class:`~agent_socket.relay.session.AppLink` over an ASGI WebSocket."""

    __slots__ = ("_send", "closed")

    def __init__(self, send: Send) -> None:
        self._send = send
        self.closed = False

    async def send(self, text: str) -> None:
        if self.closed:
            raise ConnectionError("socket closed")
        await self._send({"type": "websocket.send", "text": text})

    def close(self, code: int, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        task = asyncio.get_running_loop().create_task(self._close(code, reason))
        _closers.add(task)
        task.add_done_callback(_closers.discard)

    async def _close(self, code: int, reason: str) -> None:
        with contextlib.suppress(OSError, RuntimeError):  # already gone
            await self._send({"type": "websocket.close", "code": int(code), "reason": reason})


async def deny(send: Send, code: ErrorCode, message: str) -> None:
    """Refuse the upgrade with an HTTP error: 429 ``rate_limited`` or 400 ``protocol_error``."""
    refusal = replies.error(code, message)
    await deny_upgrade(send, refusal.status, refusal.content_type, refusal.body, replies.NOSNIFF)


async def handle(scope: Scope, receive: Receive, send: Send, relay: RelayState) -> None:
    """Entry point for a WebSocket upgrade on ``/v1/_ws``."""
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
    resume_id = _session_param(query, "session")
    forced_id = _session_param(query, "force_session") if relay.config.debug else None
    if resume_id is False or forced_id is False:
        await deny(send, ErrorCode.PROTOCOL_ERROR, "?session= must be an 8-char session id")
        return
    peer = client_address(client_host(scope), header(scope, b"x-forwarded-for"), relay.proxies)
    if not relay.limiter.allow(peer):
        await deny(send, ErrorCode.RATE_LIMITED, "too many WebSocket upgrades; slow down")
        return
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    conn = AppSocket(relay, receive, SocketLink(send))
    if resume_id:
        await conn.run_resume(resume_id)
    else:
        await conn.run_plain(forced_id or None)


def _session_param(query: dict[str, list[str]], name: str) -> str | Literal[False] | None:
    """The session id in ``?name=``: None when absent, False when malformed."""
    if name not in query:
        return None
    value = query[name][0]
    return value if ids.SESSION_ID_RE.match(value) else False


class AppSocket:
    def __init__(self, relay: RelayState, receive: Receive, link: SocketLink) -> None:
        self.relay = relay
        self.limits = relay.limits
        self.receive = receive
        self.link = link
        self.session: Session | None = None

    # ---- reading frames --------------------------------------------------------------------

    async def _next(self, deadline: float | None) -> str | int | None:
        """The next text frame; the close code when the socket is gone; ``TIMED_OUT`` or
        ``OVERSIZED``; None for a frame to skip (binary that is not UTF-8)."""
        try:
            if deadline is None:
                message = await self.receive()
            else:
                remaining = deadline - asyncio.get_running_loop().time()
                message = await asyncio.wait_for(self.receive(), max(remaining, 0))
        except TimeoutError:
            return TIMED_OUT
        kind = message["type"]
        if kind == "websocket.disconnect":
            return int(message.get("code") or CloseCode.NORMAL)
        text = message.get("text")
        if text is None:
            raw = message.get("bytes") or b""
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                return None
        if len(text) * 2 > self.limits.max_frame_units and (
            utf16_units(text) > self.limits.max_frame_units
        ):
            return OVERSIZED
        return str(text)

    @property
    def attached(self) -> bool:
        return self.session is not None and self.session.link is self.link

    # ---- plain socket: register, then the app's frames ---------------------------------------

    async def run_plain(self, forced_id: str | None) -> None:
        if forced_id is not None and self.relay.hub.get(forced_id) is not None:
            self.link.close(CloseCode.CONFLICT, CloseReason.ALREADY_CONNECTED)
            await self._drain()
            return
        # Registering runs in its own frame so the register text and its parsed frame are not
        # kept alive for the socket's whole life (a few KiB per idle session).
        if await self._until_registered(forced_id):
            await self._serve()

    async def _until_registered(self, forced_id: str | None) -> bool:
        """Frames before a successful register (§3.1); False when the socket is done."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.limits.register_timeout_ms / 1000
        while self.session is None:
            item = await self._next(deadline)
            if isinstance(item, int):
                if item == TIMED_OUT:
                    self.link.close(CloseCode.TIMEOUT, CloseReason.REGISTER_TIMEOUT)
                elif item == OVERSIZED:
                    self.link.close(CloseCode.TOO_BIG, CloseReason.FRAME_TOO_LARGE)
                else:
                    return False
                await self._drain()
                return False
            if item is None or self.link.closed:
                continue
            if item == HEARTBEAT_PING:
                await self._send(HEARTBEAT_PONG)
                continue
            frame = _object(item)
            if frame is not None:
                await self._before_register(frame, forced_id)
        return True

    async def _before_register(self, frame: dict[str, Any], forced_id: str | None) -> None:
        kind = frame["type"]
        if kind == "register":
            await self._register(frame, forced_id)
        elif kind == "ping":
            await self._pong(frame)
        elif kind in REPLY_BEFORE_REGISTER and frame.get("id") is not None:
            await self._send(
                error_reply(
                    f"{kind}_reply", frame["id"], ErrorCode.PROTOCOL_ERROR, "register first"
                )
            )
        elif kind == "resume":
            await self._send(
                error_reply(
                    "register_reply",
                    frame.get("id"),
                    ErrorCode.PROTOCOL_ERROR,
                    "resume needs a /v1/_ws?session=<id> socket",
                )
            )
            self.link.close(CloseCode.INVALID_TOOLS, CloseReason.RESUME_NEEDS_SESSION)

    async def _register(self, frame: dict[str, Any], forced_id: str | None) -> None:
        try:
            registration = parse_registration(frame, self.limits)
        except ProtocolViolation as bad:
            await self._refuse(bad)
            return
        hub = self.relay.hub
        if forced_id is not None and hub.get(forced_id) is not None:
            self.link.close(CloseCode.CONFLICT, CloseReason.ALREADY_CONNECTED)
            return
        try:
            session, secret = hub.create(registration, self.link, forced_id)
        except RelayFull:
            await self._send(
                error_reply(
                    "register_reply",
                    None,
                    ErrorCode.RELAY_FULL,
                    "this relay holds its maximum of sessions; try again later",
                )
            )
            self.link.close(CloseCode.RELAY_FULL, CloseReason.RELAY_FULL)
            return
        self.session = session
        await hub.attached(session)
        await hub.persist(session)
        await self._send(
            dumps(
                {
                    "type": "register_reply",
                    "ok": True,
                    "sessionId": session.id,
                    "resumeSecret": secret,
                }
            )
        )

    async def _refuse(self, bad: ProtocolViolation) -> None:
        await self._send(dumps({"type": "register_reply", "ok": False, "error": bad.as_error()}))
        self.link.close(bad.close_code, bad.close_reason)

    # ---- ?session= socket: resume or end, nothing else -----------------------------------------

    async def run_resume(self, session_id: str) -> None:
        hub = self.relay.hub
        hub.waiting[session_id] += 1
        try:
            if hub.waiting[session_id] > self.limits.max_resume_sockets:
                self.link.close(CloseCode.CONFLICT, CloseReason.TOO_MANY_RESUME)
                await self._drain()
                return
            resumed = await self._await_resume(session_id)
        finally:
            hub.waiting[session_id] -= 1
            if hub.waiting[session_id] <= 0:
                del hub.waiting[session_id]
        if resumed:
            await self._serve()
        else:
            await self._drain()

    async def _await_resume(self, session_id: str) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.limits.register_timeout_ms / 1000
        while not self.link.closed:
            item = await self._next(deadline)
            if isinstance(item, int):
                if item == TIMED_OUT:
                    self.link.close(CloseCode.TIMEOUT, CloseReason.RESUME_TIMEOUT)
                elif item == OVERSIZED:
                    self.link.close(CloseCode.TOO_BIG, CloseReason.FRAME_TOO_LARGE)
                return False
            frame = _object(item) if item is not None else None
            if frame is None:
                continue
            try:
                if frame["type"] == "resume":
                    return await self._resume(session_id, frame)
                if frame["type"] == "end":
                    await self._end(session_id, frame)
            except ClusterUnavailable:
                # Not a refusal: the SDK retries later and keeps its session.
                self.link.close(CloseCode.TRY_AGAIN, CloseReason.TRY_AGAIN)
        return False

    @staticmethod
    def _proves(session_id: str, frame: dict[str, Any], secret_check: bytes) -> bool:
        """Whether a resume/end frame proves the app holds this session's secret."""
        secret = frame.get("secret")
        well_formed = isinstance(secret, str) and ids.SECRET_RE.match(secret) is not None
        same_id = frame.get("sessionId") == session_id
        return ids.matches(secret, secret_check) and well_formed and same_id

    async def _authorised(self, session_id: str, frame: dict[str, Any]) -> Session | None:
        """The session when the frame proves the app holds its secret; one answer otherwise.

        In cluster mode a session held by another node (or by none) is taken over from the
        durable state: the previous owner lets go of it first.
        """
        hub = self.relay.hub
        session = hub.get(session_id)
        if session is None and hub.cluster is not None:
            return await hub.cluster.take_over(
                session_id,
                lambda check: self._proves(session_id, frame, check),
                str(frame.get("secret", "")),
            )
        if session is None or session.state is State.ENDED:
            return None
        return session if self._proves(session_id, frame, session.secret_check) else None

    async def _resume(self, session_id: str, frame: dict[str, Any]) -> bool:
        try:
            registration = parse_registration(frame, self.limits)
        except ProtocolViolation as bad:
            await self._refuse(bad)
            return False
        session = await self._authorised(session_id, frame)
        if session is None:
            await self._send(
                error_reply("register_reply", None, ErrorCode.RESUME_FAILED, "resume was refused")
            )
            self.link.close(CloseCode.RESUME_REJECTED, CloseReason.RESUME_REJECTED)
            return False
        revoke = frame.get("revokeTokens")
        if isinstance(revoke, list):
            for token in revoke[:MAX_REVOKE_ON_RESUME]:
                session.revoke(token)
        session.attach(self.link, registration)
        self.session = session
        hub = self.relay.hub
        await hub.attached(session)
        await hub.persist(session)
        event("session_resumed", session=session.id, app=registration.app_id)
        await self._send(
            dumps(
                {
                    "type": "register_reply",
                    "ok": True,
                    "sessionId": session.id,
                    "resumeSecret": frame["secret"],
                    "resumed": True,
                }
            )
        )
        return True

    async def _end(self, session_id: str, frame: dict[str, Any]) -> None:
        hub = self.relay.hub
        if hub.get(session_id) is None and hub.cluster is not None:
            ended = await hub.cluster.end_elsewhere(
                session_id, lambda check: self._proves(session_id, frame, check)
            )
            session = None
        else:
            session = await self._authorised(session_id, frame)
            ended = session is not None
        if not ended:
            await self._send(
                error_reply("end_reply", None, ErrorCode.RESUME_FAILED, "end was refused")
            )
            self.link.close(CloseCode.RESUME_REJECTED, CloseReason.END_REJECTED)
            return
        if session is not None:
            session.end("app sent end")
        await self._send(dumps({"type": "end_reply", "ok": True}))
        self.link.close(CloseCode.NORMAL, CloseReason.SESSION_ENDED)

    # ---- a live app socket -------------------------------------------------------------------

    async def _serve(self) -> None:
        """Handle the app's frames until its socket closes."""
        while True:
            item = await self._next(None)
            if isinstance(item, int):
                self._gone(item)
                if item == OVERSIZED:
                    self.link.close(CloseCode.TOO_BIG, CloseReason.FRAME_TOO_LARGE)
                    await self._drain()
                return
            if item is None or not self.attached:
                continue
            session = self.session
            assert session is not None
            session.touch()
            if item == HEARTBEAT_PING:
                await self._send(HEARTBEAT_PONG)
                continue
            frame = _object(item)
            if frame is not None:
                await self._dispatch(session, frame)

    def _gone(self, code: int) -> None:
        """The socket closed (or broke the frame cap): end, or hold, the session (§4)."""
        session = self.session
        if session is None or not self.attached:
            return
        if code == OVERSIZED:
            session.end("frame too large", CloseCode.TOO_BIG, CloseReason.FRAME_TOO_LARGE)
        elif code == CloseCode.NORMAL:
            session.end("app closed with 1000")
        else:
            session.drop(code, CloseReason.DROPPED)

    async def _dispatch(self, session: Session, frame: dict[str, Any]) -> None:
        kind = frame["type"]
        if kind == "tool_reply":
            session.on_tool_reply(frame)
        elif kind == "task_complete":
            self._task_complete(session, frame)
        elif kind == "ping":
            await self._pong(frame)
        elif kind == "mint_agent_token":
            await self._mint(session, frame)
        elif kind == "revoke_agent_token":
            await self._revoke(session, frame)
        elif kind == "list_agent_tokens":
            tokens = [
                {
                    "token": record.token,
                    "url": self.relay.link_url(record.token),
                    "label": record.label,
                    "mintedAt": record.minted_at,
                }
                for record in session.tokens.values()
            ]
            await self._send(
                dumps(
                    {
                        "type": "list_agent_tokens_reply",
                        "id": frame.get("id"),
                        "ok": True,
                        "tokens": tokens,
                    }
                )
            )
        elif kind == "update_tools":
            await self._update_tools(session, frame)
        elif kind in ("register", "resume"):
            await self._send(
                error_reply(
                    "register_reply",
                    frame.get("id"),
                    ErrorCode.PROTOCOL_ERROR,
                    "this socket is already registered",
                )
            )

    async def _mint(self, session: Session, frame: dict[str, Any]) -> None:
        record = session.mint(frame.get("label"))
        if record is None:
            await self._send(
                error_reply(
                    "mint_agent_token_reply",
                    frame.get("id"),
                    ErrorCode.TOO_MANY_TOKENS,
                    f"at most {self.limits.max_tokens_per_session} live tokens per session",
                )
            )
            return
        event("token_minted", session=session.id, token=ids.redact(record.token))
        await self.relay.hub.persist(session)
        await self._send(
            dumps(
                {
                    "type": "mint_agent_token_reply",
                    "id": frame.get("id"),
                    "ok": True,
                    "token": record.token,
                    "url": self.relay.link_url(record.token),
                    "label": record.label,
                    "expiresAt": None,
                }
            )
        )

    async def _revoke(self, session: Session, frame: dict[str, Any]) -> None:
        if not session.revoke(frame.get("token")):
            await self._send(
                error_reply(
                    "revoke_agent_token_reply",
                    frame.get("id"),
                    ErrorCode.NOT_FOUND,
                    "no such live token in this session",
                )
            )
            return
        event("token_revoked", session=session.id, token=ids.redact(frame["token"]))
        await self.relay.hub.persist(session)
        reply = {"type": "revoke_agent_token_reply", "id": frame.get("id"), "ok": True}
        await self._send(dumps(reply))

    async def _update_tools(self, session: Session, frame: dict[str, Any]) -> None:
        frame_id = frame.get("id")
        if not isinstance(frame_id, str):
            return
        try:
            session.registration = parse_update(frame, session.registration, self.limits)
        except ProtocolViolation as bad:
            await self._send(
                dumps(
                    {
                        "type": "update_tools_reply",
                        "id": frame_id,
                        "ok": False,
                        "error": bad.as_error(),
                    }
                )
            )
            return
        event("tools_updated", session=session.id, tools=len(session.registration.tools))
        await self.relay.hub.persist(session)
        await self._send(dumps({"type": "update_tools_reply", "id": frame_id, "ok": True}))

    def _task_complete(self, session: Session, frame: dict[str, Any]) -> None:
        task_id = frame.get("taskId")
        if not isinstance(task_id, str) or task_id not in session.tasks:
            return
        result = replies.task_result(
            frame, self.limits.max_task_result_bytes, self.limits.max_task_content_type_chars
        )
        if result is not None:
            session.complete_task(task_id, result)
            self.relay.hub.task_changed(session, task_id)

    # ---- small helpers -----------------------------------------------------------------------

    async def _pong(self, frame: dict[str, Any]) -> None:
        reply: dict[str, Any] = {"type": "pong"}
        if "id" in frame:
            reply["id"] = frame["id"]
        await self._send(dumps(reply))

    async def _send(self, text: str) -> None:
        # A socket going away is handled by the read loop when its disconnect arrives.
        with contextlib.suppress(OSError, RuntimeError):
            await self.link.send(text)

    async def _drain(self) -> None:
        """After closing: consume events until the socket is gone."""
        while True:
            message = await self.receive()
            if message["type"] == "websocket.disconnect":
                return


def _object(text: str) -> dict[str, Any] | None:
    """A JSON object frame with a string ``type``, else None (such frames are ignored)."""
    try:
        frame = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    if isinstance(frame, dict) and isinstance(frame.get("type"), str):
        return frame
    return None
