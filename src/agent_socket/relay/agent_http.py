"""The agent surface ``/v1/t/<token>/…`` — PROTOCOL.md §2, in the check order of §2.6.

A raw ASGI handler: it is the hot path, and it must read the body itself so that the 413 is
decided while the body streams in.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace

import orjson

from agent_socket.protocol import ids
from agent_socket.protocol.errors import ErrorCode
from agent_socket.protocol.frames import Registration
from agent_socket.relay import replies
from agent_socket.relay.asgi import Receive, Scope, Send
from agent_socket.relay.events import elapsed_ms, event, logging_requests
from agent_socket.relay.hub import Cluster, ClusterUnavailable
from agent_socket.relay.replies import LINK_HEADERS, SANDBOX_HEADERS, Response
from agent_socket.relay.session import CallFailed, Session, State
from agent_socket.relay.state import RelayState

PREFIX = "/v1/t/"
MARKDOWN = "text/markdown; charset=utf-8"
TASKS_PREFIX = "/_as_tasks/"

NOT_FOUND = replies.error(ErrorCode.NOT_FOUND, "no such route")
OFFLINE = replies.error(
    ErrorCode.APP_OFFLINE,
    "the app is not connected; retry shortly, or ask the user to reconnect it",
)
_TOO_LARGE = replies.error(ErrorCode.BODY_TOO_LARGE, "the request body is over the size limit")
CSRF_DENIED = replies.error(
    ErrorCode.CSRF_DENIED, "tool calls from web pages are refused (Sec-Fetch-Site)"
)
TOKEN_INVALID = replies.error(ErrorCode.TOKEN_INVALID, "this link is unknown or was revoked")


class _Disconnected(Exception):
    pass


@dataclass(slots=True)
class RequestHeaders:
    """What the agent surface reads from a request's headers, gathered in one pass."""

    upgrade: bool = False
    content_length: int | None = None
    site: str | None = None
    #: ``content-type`` and every ``x-*`` header but ``x-real-ip`` and ``x-forwarded-*`` (§2.3)
    forwarded: dict[str, str] = field(default_factory=dict)

    @classmethod
    def read(cls, scope: Scope) -> RequestHeaders:
        out = cls()
        forwarded = out.forwarded
        for raw_key, raw_value in scope["headers"]:
            key = bytes(raw_key).lower()
            if key == b"content-type" or (
                key.startswith(b"x-")
                and key != b"x-real-ip"
                and not key.startswith(b"x-forwarded-")
            ):
                name = key.decode("latin-1")
                value = bytes(raw_value).decode("latin-1")
                forwarded[name] = f"{forwarded[name]}, {value}" if name in forwarded else value
            elif key == b"upgrade":
                out.upgrade = True
            elif key == b"content-length":
                with contextlib.suppress(ValueError):
                    out.content_length = int(raw_value)
            elif key == b"sec-fetch-site" and out.site is None:
                out.site = bytes(raw_value).decode("latin-1")
        return out


async def _read_body(receive: Receive, announced: int | None, cap: int) -> bytes | None:
    """The whole body, or None as soon as it is known to exceed ``cap``.

    The 413 is then sent at once; the server discards the rest of the body as it arrives, so a
    client that keeps sending still reads its answer and keeps its connection.
    """
    if announced is not None and announced > cap:
        return None
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > cap:
                return None
            chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks) if len(chunks) != 1 else chunks[0]


def offline_for(ms: int) -> str:
    """How long the app has been away, in the contract's wording (§2.6)."""
    seconds = ms // 1000
    if seconds < 90:
        return f"offline for {seconds} s"
    if seconds < 90 * 60:
        return f"offline for {seconds // 60} min"
    return f"offline for {seconds // 3600} h"


def held_response(away_ms: int) -> Response:
    """503 for a held session: the app may come back, so the agent is told when to retry."""
    return Response(
        503,
        replies.JSON_TYPE,
        orjson.dumps(
            {
                "error": {
                    "code": ErrorCode.APP_OFFLINE.value,
                    "message": f"the app is away ({offline_for(away_ms)}); "
                    "retry shortly, and if it persists ask the user to reconnect it",
                }
            }
        ),
        extra_headers=((b"retry-after", b"2"),),
    )


def meta_response(registration: Registration, tail: str) -> Response | None:
    """``agents.md``, ``tools.json`` and unknown ``/_as_*`` paths (§2.1, §2.2); None otherwise.
    Task polls are answered by whoever holds the tasks."""
    if tail == "/agents.md":
        return Response(200, MARKDOWN, registration.agents_md_body)
    if tail == "/tools.json":
        return Response(200, replies.JSON_TYPE, registration.tools_json_body)
    if tail.startswith("/_as_"):
        return replies.error(ErrorCode.NOT_FOUND, f"no such framework path {tail}")
    return None


@functools.lru_cache(maxsize=512)
def _header_list(
    content_type: str, sandboxed: bool, extra: tuple[tuple[bytes, bytes], ...]
) -> tuple[tuple[bytes, bytes], ...]:
    """The headers of a response, but for its length: built once per kind of response."""
    headers = [*LINK_HEADERS, *extra]
    if sandboxed:
        headers.extend(SANDBOX_HEADERS)
    headers.append((b"content-type", content_type.encode("latin-1")))
    return tuple(headers)


def _fixed_headers(response: Response) -> tuple[tuple[bytes, bytes], ...]:
    return _header_list(response.content_type, response.sandboxed, response.extra_headers)


@dataclass(slots=True)
class Call:
    """An agent request after checks (1)–(3): all a node needs to answer it (§2.3)."""

    method: str
    tail: str
    verifier: str
    site: str | None
    headers: dict[str, str]
    body: bytes

    @property
    def cross_site(self) -> bool:
        """Sent by a web page (§2.5): browsers set Sec-Fetch-Site, page scripts cannot."""
        return bool(self.site) and self.site != "none"


@dataclass(frozen=True, slots=True)
class LinkRequest:
    """An authenticated request to one of a link's extra views (MCP, OpenAPI, …), on whichever
    node received it. It holds no session object: a view reads ``registration`` (the app's at
    the time of the request) and makes calls and task polls through ``surface.answer``, which
    works whether the session lives on this node, on another one, or only in durable storage.
    """

    scope: Scope
    session_id: str
    #: The token's verifier, checked live when the request arrived.
    verifier: str
    registration: Registration
    surface: AgentSurface
    token: str
    tail: str
    body: bytes
    #: The request's ASGI ``receive`` (its body already read): lets a streaming view notice
    #: the client hanging up.
    receive: Receive | None = None


#: A view answers the whole request itself (it may stream) and returns the status it sent.
LinkView = Callable[[LinkRequest, Send], Awaitable[int]]


class AgentSurface:
    """The agent surface. ``views`` maps extra paths under ``$BASE`` to their handlers; a tool
    the app registered at the same method and path takes precedence over a view."""

    def __init__(self, relay: RelayState, views: dict[str, LinkView] | None = None) -> None:
        self.relay = relay
        self.views = views or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        response, session_id, token, tail = await self._answer(scope, receive)
        if isinstance(response, LinkRequest):
            status = await self.views[tail](replace(response, receive=receive), send)
            self._log(scope, session_id, token, tail, status, started)
            return
        body = response.body
        headers = [*_fixed_headers(response), (b"content-length", str(len(body)).encode())]
        if scope["type"] == "websocket":
            await send(
                {
                    "type": "websocket.http.response.start",
                    "status": response.status,
                    "headers": headers,
                }
            )
            await send({"type": "websocket.http.response.body", "body": body})
        else:
            await send(
                {"type": "http.response.start", "status": response.status, "headers": headers}
            )
            await send({"type": "http.response.body", "body": body})
        self._log(scope, session_id, token, tail, response.status, started)

    @staticmethod
    def _log(
        scope: Scope, session_id: str, token: str, tail: str, status: int, started: float
    ) -> None:
        if not logging_requests():
            return
        event(
            "agent_request",
            session=session_id,
            token=ids.redact(token) if session_id else "malformed",
            method=scope.get("method", "WS"),
            path=tail,
            status=status,
            ms=elapsed_ms(started),
        )

    async def _answer(
        self, scope: Scope, receive: Receive
    ) -> tuple[Response | LinkRequest, str, str, str]:
        path: str = scope["path"]
        token, slash, rest = path[len(PREFIX) :].partition("/")
        tail = slash + rest
        parsed = ids.parse_token(token)
        if parsed is None:  # (1)
            return NOT_FOUND, "", token, tail
        session_id, verifier = parsed
        headers = RequestHeaders.read(scope)
        if scope["type"] == "websocket" or headers.upgrade:
            return (  # (2)
                replies.error(ErrorCode.PROTOCOL_ERROR, "no upgrades on an agent URL"),
                session_id,
                token,
                tail,
            )
        try:
            body = await _read_body(
                receive, headers.content_length, self.relay.limits.max_body_bytes
            )
        except _Disconnected:
            return NOT_FOUND, session_id, token, tail
        if body is None:  # (3)
            return _TOO_LARGE, session_id, token, tail
        call = Call(
            method=scope["method"].upper(),
            tail=tail,
            verifier=verifier,
            site=headers.site,
            headers=headers.forwarded,
            body=body,
        )
        session = self.relay.hub.get(session_id)
        if session is None:
            cluster = self.relay.hub.cluster
            if cluster is None:  # (4)
                return OFFLINE, session_id, token, tail
            if tail in self.views:
                view = await self._remote_view(cluster, session_id, call, scope, token)
                if view is not None:
                    return view, session_id, token, tail
            return await cluster.route(session_id, call), session_id, token, tail
        return await self.route(session, call, scope, token), session_id, token, tail

    async def _remote_view(
        self, cluster: Cluster, session_id: str, call: Call, scope: Scope, token: str
    ) -> Response | LinkRequest | None:
        """A view path of a session another node holds (or only storage has): checks (4)–(6)
        against the durable state. None when the app registered a tool at that method and path
        (the tool wins: the caller routes the call to the owner as usual)."""
        try:
            snapshot = await cluster.load(session_id)
        except ClusterUnavailable:
            return replies.error(
                ErrorCode.APP_OFFLINE, "the relay cluster is unavailable; retry shortly"
            )
        if snapshot is None:  # (4)
            return OFFLINE
        # (5): a view path is never empty.
        if not snapshot.accepts(call.verifier):  # (6)
            return TOKEN_INVALID
        registration = snapshot.registration
        if (call.method, call.tail) in registration.index:
            return None
        return self._link_request(scope, session_id, call, registration, token)

    def _link_request(
        self, scope: Scope, session_id: str, call: Call, registration: Registration, token: str
    ) -> LinkRequest:
        return LinkRequest(
            scope=scope,
            session_id=session_id,
            verifier=call.verifier,
            registration=registration,
            surface=self,
            token=token,
            tail=call.tail,
            body=call.body,
        )

    async def answer(self, session_id: str, call: Call) -> Response:
        """Answer a call or a task poll a view makes on an agent's behalf, on any node, with
        every check a plain request to ``$BASE`` gets (checks (4)–(11): token, CSRF through
        ``call.site``, held 503 + Retry-After, in-flight cap, tool lookup, tasks cap)."""
        session = self.relay.hub.get(session_id)
        if session is not None:
            outcome = await self.route(session, call)
            # Without a scope, route never hands out a view.
            return outcome if isinstance(outcome, Response) else NOT_FOUND
        cluster = self.relay.hub.cluster
        if cluster is None:
            return OFFLINE
        return await cluster.route(session_id, call)

    async def registration(self, session_id: str, verifier: str) -> Registration | None:
        """The session's current registration while the session lives and ``verifier`` is
        live; None otherwise (and when the cluster's storage cannot be read)."""
        session = self.relay.hub.get(session_id)
        if session is not None:
            if session.state is State.ENDED or not session.accepts(verifier):
                return None
            return session.registration
        cluster = self.relay.hub.cluster
        if cluster is None:
            return None
        try:
            snapshot = await cluster.load(session_id)
        except ClusterUnavailable:
            return None
        if snapshot is None or not snapshot.accepts(verifier):
            return None
        return snapshot.registration

    async def route(
        self, session: Session, call: Call, scope: Scope | None = None, token: str = ""
    ) -> Response | LinkRequest:
        """Checks (4)–(11) and the call itself, for a session this process holds."""
        if session.state is State.ENDED:  # (4)
            return OFFLINE
        tail = call.tail
        if tail in ("", "/"):  # (5)
            return NOT_FOUND
        if not session.accepts(call.verifier):  # (6)
            return TOKEN_INVALID
        meta = self._meta(session, tail)  # (7)
        if meta is not None:
            return meta
        method = call.method
        index = session.registration.index
        if scope is not None and tail in self.views and (method, tail) not in index:
            return self._link_request(scope, session.id, call, session.registration, token)
        if call.cross_site:  # (8)
            return CSRF_DENIED
        if session.state is State.HELD:  # (9)
            return held_response(session.away_for_ms())
        if session.inflight_full:  # (10)
            return replies.error(
                ErrorCode.TOO_MANY_INFLIGHT,
                f"{self.relay.limits.max_inflight_per_session} calls already in flight; slow down",
            )
        if (method, tail) not in index:  # (11)
            return replies.error(ErrorCode.NOT_FOUND, f"no tool for {method} {tail}")
        return await self._call(session, call)

    def _meta(self, session: Session, tail: str) -> Response | None:
        if tail.startswith(TASKS_PREFIX):
            return self._poll(session, tail[len(TASKS_PREFIX) :])
        return meta_response(session.registration, tail)

    def _poll(self, session: Session, task_id: str) -> Response:
        task = session.take_task(task_id)
        if task is not None and task.result is not None:
            self.relay.hub.task_changed(session, task_id)
        if task is None:
            return replies.error(ErrorCode.NOT_FOUND, "no such task (results are given once)")
        if task.result is None:
            return replies.json_response(
                202, {"taskId": task_id, "completed": False}, sandboxed=True
            )
        return task.result

    async def _call(self, session: Session, call: Call) -> Response:
        try:
            outcome = await session.call(
                call.method, call.tail, call.body.decode("utf-8", "replace"), call.headers
            )
        except CallFailed as failed:
            return replies.error(failed.code, failed.message)
        if isinstance(outcome, Response):
            return outcome
        self.relay.hub.task_changed(session, outcome.task_id)
        return replies.json_response(202, {"taskId": outcome.task_id}, sandboxed=True)
