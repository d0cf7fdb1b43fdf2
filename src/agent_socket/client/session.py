"""The app's connection to a relay: register, serve tool calls, stay connected — PROTOCOL.md §3–§5.

The connection is a small state machine; the I/O around it is a thin asyncio layer::

    CONNECTING ──register/resume ok──▶ REGISTERED ──socket lost──▶ RECONNECTING
        │                                   ▲                          │
        │                                   └────resume / fresh ok─────┘
        └──────────────── close() or a fatal refusal ──────────────▶ CLOSED

Invariants:

- tool calls are only served, and requests (mint, revoke, list, update_tools) only sent, while
  REGISTERED; a request whose socket drops before its reply is retried after the reconnect;
- after a drop the session *resumes* (same session id, same links); it starts a *fresh* session
  only when the relay refuses the resume (4401 / ``resume_failed``) or another socket replaced
  ours (4410). After a fresh session every link is minted again with its label and the old → new
  URLs are reported to ``on_session_changed``;
- a registration the relay refuses (bad app id 4001, bad tools 4400, agents.md too large 4413)
  is fatal: retrying cannot help, so the session closes with :class:`RegistrationError`;
- CLOSED is final. ``close()`` ends the session on the relay: with close code 1000 when the
  socket is up, otherwise with an ``end`` frame on a ``?session=`` socket (§4).

Liveness (§3.5): the SDK sends exactly ``{"type":"ping","id":"as_hb"}`` every
``heartbeat_interval`` seconds (25 s) and gives the socket up when nothing at all arrived for
``heartbeat_timeout`` seconds (50 s). Reconnects wait :func:`~.backoff.backoff_delay` (1 s
doubling to 30 s, ±25 %).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Generator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from agent_socket.client.backoff import Backoff
from agent_socket.client.replies import (
    HANDLER_ERROR,
    RESULT_TOO_LARGE,
    Call,
    Deferred,
    Reply,
    ToolError,
    error_envelope,
    reply_fields,
)
from agent_socket.client.tools import BadInput
from agent_socket.protocol.frames import HEARTBEAT_PING, HEARTBEAT_PONG
from agent_socket.protocol.ids import redact
from agent_socket.protocol.limits import (
    HEARTBEAT_INTERVAL_MS,
    HEARTBEAT_TIMEOUT_MS,
    MAX_REVOKE_ON_RESUME,
    MAX_TASK_CONTENT_TYPE_CHARS,
    MAX_TASK_RESULT_BYTES,
    REGISTER_TIMEOUT_MS,
)

if TYPE_CHECKING:
    from agent_socket.client.tools import Tool

log = logging.getLogger("agent_socket.client")

#: Close codes after which a resume cannot work: start a fresh session (§4, §5).
#: The relay is shutting down (SIGTERM): reconnect, preferably to another relay.
RELAY_RESTARTING = 1012
FRESH_AFTER = frozenset({4401, 4410})
#: Close codes of a refused registration: the same registration would be refused again.
FATAL_AFTER = frozenset({4001, 4400, 4413})
#: Close code of a deliberate end (§4). Anything else holds the session on the relay.
END_CODE = 1000
#: Close code for leaving without ending: the relay holds the session for a later resume.
LEAVE_CODE = 1001


class State(StrEnum):
    """Where the connection is (see the module docstring for the transitions)."""

    CONNECTING = "connecting"
    REGISTERED = "registered"
    RECONNECTING = "reconnecting"
    CLOSED = "closed"


TRANSITIONS: dict[State, frozenset[State]] = {
    State.CONNECTING: frozenset({State.REGISTERED, State.RECONNECTING, State.CLOSED}),
    State.REGISTERED: frozenset({State.RECONNECTING, State.CLOSED}),
    State.RECONNECTING: frozenset({State.REGISTERED, State.CLOSED}),
    State.CLOSED: frozenset(),
}


class Next(Enum):
    """What to do after a socket ended or a handshake failed."""

    RESUME = "resume"  # reconnect to the same session
    FRESH = "fresh"  # forget the session and register anew
    FAIL = "fail"  # stop: the relay refused our registration


def after_close(code: int | None, *, has_session: bool) -> Next:
    """The decision after a socket closed with ``code`` (``None``: no close frame received)."""
    if code in FRESH_AFTER:
        return Next.FRESH
    if code in FATAL_AFTER:
        return Next.FAIL
    return Next.RESUME if has_session else Next.FRESH


class SessionError(Exception):
    """Base class of the app-side SDK errors."""


class RegistrationError(SessionError):
    """The relay refused the registration (``invalid_app_id``, ``reserved_path`` …)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.message = message


class RequestError(SessionError):
    """A request frame (mint, revoke, update_tools) was answered ``ok: false``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.message = message


class SessionClosedError(SessionError):
    """The session is closed; nothing more can be sent."""


class ConnectError(SessionError):
    """The first connection to the relay failed (unreachable, refused upgrade, timeout)."""


@dataclass(frozen=True, slots=True)
class Link:
    """One agent link: paste ``url`` into an AI chat. ``str(link)`` is the URL.

    ``token`` is the credential inside the URL: whoever holds either can call every tool until
    the link is revoked or the session ends. ``expires_at`` is always ``None`` (§1).
    """

    token: str
    url: str
    label: str = ""
    minted_at: float | None = None
    expires_at: float | None = None

    def __str__(self) -> str:
        return self.url

    def __repr__(self) -> str:
        return f"Link(token={redact(self.token)!r}, label={self.label!r})"


@dataclass(frozen=True, slots=True)
class SessionChange:
    """The relay refused to resume: the app is on a fresh session and its links are new.

    ``links`` pairs every old link with the one minted for the same label.
    """

    old_session_id: str | None
    new_session_id: str
    links: tuple[tuple[Link, Link], ...] = ()

    @property
    def urls(self) -> dict[str, str]:
        """Old URL → new URL, to tell the people who hold the old links."""
        return {old.url: new.url for old, new in self.links}


@dataclass(frozen=True, slots=True)
class ReconnectInfo:
    """A reconnect succeeded. ``resumed`` is False when it had to start a fresh session."""

    session_id: str
    resumed: bool
    attempts: int


Callback = Callable[[Any], Awaitable[None] | None]


class ToolHost(Protocol):
    """What a session needs from its app: the registration and the tools."""

    max_threads: int

    def registration(self) -> dict[str, Any]: ...

    def find_tool(self, method: str, path: str) -> Tool | None: ...

    def _attach(self, session: Session) -> None: ...

    def _detach(self, session: Session) -> None: ...


@dataclass(frozen=True, slots=True)
class SessionOptions:
    """Timing of a session. The defaults are the contract's; tests use shorter ones.

    ``heartbeat_timeout`` must be below the relay's liveness timeout; ``heartbeat_interval`` 0
    disables pings (the relay then closes us after its timeout).
    """

    heartbeat_interval: float = HEARTBEAT_INTERVAL_MS / 1000
    heartbeat_timeout: float = HEARTBEAT_TIMEOUT_MS / 1000
    backoff: Backoff = field(default_factory=Backoff)
    handshake_timeout: float = REGISTER_TIMEOUT_MS / 1000
    request_timeout: float = 30.0
    close_timeout: float = 5.0


def split_url(url: str) -> tuple[str, str]:
    """``(ws_url, base_url)`` for a relay URL given as http(s)://… or ws(s)://….

    The base is what replaces ``__BASE__`` in minted URLs: the http(s) origin plus any path
    prefix the relay is mounted under. A trailing ``/v1/_ws`` is accepted and stripped.
    """
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https", "ws", "wss") or not parts.netloc:
        raise ValueError(f"relay URL must be http(s):// or ws(s)://host[:port], not {url!r}")
    secure = scheme in ("https", "wss")
    prefix = parts.path.rstrip("/")
    if prefix.endswith("/v1/_ws"):
        prefix = prefix[: -len("/v1/_ws")]
    base = urlunsplit(("https" if secure else "http", parts.netloc, prefix, "", ""))
    ws = urlunsplit(("wss" if secure else "ws", parts.netloc, prefix + "/v1/_ws", "", ""))
    return ws, base


def relay_urls(url: str | Sequence[str]) -> list[tuple[str, str]]:
    """``[(ws_url, base_url), …]`` for one relay URL, several (a sequence), or a comma-separated
    string of several — a cluster without a load balancer (docs/scaling.md)."""
    urls = url.split(",") if isinstance(url, str) else list(url)
    pairs = [split_url(u) for u in urls if u.strip()]
    if not pairs:
        raise ValueError("give at least one relay URL")
    return pairs


def parse_resume_state(state: str) -> tuple[str, str]:
    """Split a saved ``Session.resume_state`` (``"<sessionId>:<secret>"``)."""
    session_id, sep, secret = state.strip().partition(":")
    if not sep or not session_id or not secret:
        raise ValueError("a resume state looks like '<sessionId>:<secret>'")
    return session_id, secret


class _Refused(Exception):
    """The relay refused the resume: go fresh."""


class _Fatal(Exception):
    def __init__(self, error: SessionError) -> None:
        super().__init__(str(error))
        self.error = error


class _Retry(Exception):
    """A transient failure: back off and try again."""


class _Lost(Exception):
    """The socket a request was sent on went away before the reply."""


def _jsonable_frame(frame: dict[str, Any]) -> str:
    return json.dumps(frame, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


class Session:
    """One app session on a relay: serves the app's tools, mints links, survives drops.

    Get one with ``app.connect(url)`` (``async with`` or ``await``). All methods must be called
    on the event loop that opened the session. Tool calls run concurrently: coroutine handlers
    as tasks on the loop, plain functions in a thread pool of ``app.max_threads`` threads.
    """

    def __init__(
        self,
        host: ToolHost,
        url: str | Sequence[str],
        *,
        resume: str | None = None,
        options: SessionOptions | None = None,
        on_session_changed: Callback | None = None,
        on_reconnect: Callback | None = None,
    ) -> None:
        self._host = host
        #: Every relay this session may use; it moves to the next one when a relay cannot be
        #: reached or is restarting (1012), so a cluster needs no load balancer.
        self._relays = relay_urls(url)
        self._relay = 0
        self._options = options or SessionOptions()
        self._on_session_changed = on_session_changed
        self._on_reconnect = on_reconnect
        self._session_id: str | None = None
        self._secret: str | None = None
        if resume:
            self._session_id, self._secret = parse_resume_state(resume)
        self._state = State.CONNECTING
        self._ws: ClientConnection | None = None
        self._ready = asyncio.Event()
        self._closed = asyncio.Event()
        self._first_done: asyncio.Future[None] | None = None
        self._runner: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self._links: dict[str, Link] = {}
        self._revoke_queue: list[str] = []
        self._completions: list[dict[str, Any]] = []
        self._remint: list[Link] = []
        self._remint_pairs: list[tuple[Link, Link]] = []
        self._changed_from: str | None = None
        self._tools_dirty = False
        self._tools_lock = asyncio.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._error: BaseException | None = None
        self._resumed_last = False
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- public state -------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """The http(s) origin of the relay in use: what replaces ``__BASE__`` in links."""
        return self._relays[self._relay][1]

    @property
    def _ws_url(self) -> str:
        return self._relays[self._relay][0]

    def _next_relay(self) -> None:
        self._relay = (self._relay + 1) % len(self._relays)

    @property
    def state(self) -> State:
        return self._state

    @property
    def session_id(self) -> str | None:
        """The relay's id for this session (public: it is in every link)."""
        return self._session_id

    @property
    def resume_secret(self) -> str | None:
        """The credential that resumes this session. Keep it secret; never log it."""
        return self._secret

    @property
    def resume_state(self) -> str | None:
        """``"<sessionId>:<secret>"``: save it and pass ``resume=`` to ``connect()`` after a
        restart to keep this session and its links (within the relay's hold window; otherwise
        the SDK starts a fresh session). Close the old process with ``close(end=False)`` so the
        relay holds the session. This string is a credential.
        """
        if self._session_id is None or self._secret is None:
            return None
        return f"{self._session_id}:{self._secret}"

    @property
    def error(self) -> BaseException | None:
        """The fatal error that closed the session, if any."""
        return self._error

    def links(self) -> list[Link]:
        """The live links of this session as the SDK knows them (refreshed on every resume)."""
        return list(self._links.values())

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> Session:
        """Connect and register; return once the session is usable.

        Raises :class:`ConnectError` when the relay cannot be reached at all and
        :class:`RegistrationError` when it refuses the registration. A saved ``resume`` state
        the relay no longer knows falls back to a fresh session (reported to
        ``on_session_changed``).
        """
        if self._runner is not None:
            raise RuntimeError("session already started")
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._executor = ThreadPoolExecutor(
            max_workers=max(1, self._host.max_threads), thread_name_prefix="agent-socket-tool"
        )
        self._first_done = loop.create_future()
        self._host._attach(self)
        self._runner = asyncio.create_task(self._run(), name="agent-socket-session")
        try:
            await asyncio.shield(self._first_done)
        except BaseException:
            await self._shutdown(end=False)
            raise
        return self

    async def close(self, *, end: bool = True) -> None:
        """Stop serving and release every task, thread pool and socket of the session.

        With ``end=True`` (default) the session ends on the relay — links stop working at once:
        the socket is closed with code 1000, or, when the socket is already gone, an ``end``
        frame is sent on a ``?session=`` socket (best effort, bounded by ``close_timeout``).
        With ``end=False`` the socket is closed with 1001 and the relay holds the session for
        its hold window, so another process can resume it with :attr:`resume_state`.
        Calling it again does nothing. Handlers still running are cancelled (threads finish
        in the background; their results are dropped).
        """
        await self._shutdown(end=end)

    async def wait_closed(self) -> None:
        """Wait until the session is closed; re-raise the fatal error that closed it, if any."""
        await self._closed.wait()
        if self._error is not None:
            raise self._error

    def __await__(self) -> Generator[Any, None, Session]:
        return self.__aenter__().__await__()

    async def __aenter__(self) -> Session:
        if self._runner is None:
            await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- links --------------------------------------------------------------------------------

    async def mint_link(self, label: str = "") -> Link:
        """Mint a new agent link; waits while the session is reconnecting.

        Labels are cut to 256 characters by the relay. At 50 live links the relay answers
        ``too_many_tokens`` and this raises :class:`RequestError`. Raises
        :class:`SessionClosedError` if the session closes first.
        """
        reply = await self._request("mint_agent_token", label=label)
        if not reply.get("ok"):
            raise _request_error(reply)
        link = self._link_from(reply)
        self._links[link.token] = link
        return link

    async def revoke_link(self, link: Link | str) -> bool:
        """Revoke a link (a :class:`Link`, its token or its URL); it stops working at once.

        Returns False when the relay did not know it as a live link of this session. While
        the session is offline the revocation is queued, returns True, and rides on the next
        resume frame (``revokeTokens``); a fresh session makes it moot.
        """
        token = _token_of(link)
        self._links.pop(token, None)
        self._remint = [old for old in self._remint if old.token != token]
        if self._state is State.CLOSED:
            raise SessionClosedError("session is closed")
        if self._state is not State.REGISTERED or self._ws is None:
            self._queue_revoke(token)
            return True
        try:
            reply = await self._request_on(self._ws, "revoke_agent_token", token=token)
        except _Lost:
            self._queue_revoke(token)
            return True
        return bool(reply.get("ok"))

    async def refresh_links(self) -> list[Link]:
        """Ask the relay for this session's live links and return them."""
        reply = await self._request("list_agent_tokens")
        self._apply_token_list(reply)
        return self.links()

    # -- tools --------------------------------------------------------------------------------

    async def update_tools(self) -> None:
        """Send the app's current tools (and agents.md) to the relay and wait for the answer.

        The app calls this by itself when tools are added or removed at run time; call it to
        know the change is live. Raises :class:`RequestError` if the relay refuses the list
        (nothing changes on the relay then). While offline, waits for the reconnect — which
        registers the current tools anyway.
        """
        self._tools_dirty = False
        async with self._tools_lock:
            reg = self._host.registration()
            reply = await self._request(
                "update_tools", tools=reg["tools"], agentsMd=reg["agentsMd"]
            )
        if not reply.get("ok"):
            raise _request_error(reply)

    def tools_changed(self) -> None:
        """Note that the app's tools changed; pushes them to the relay in the background.

        Safe to call from any thread (a tool added from a worker thread is pushed on the
        session's loop).
        """
        if self._state is State.CLOSED:
            return
        loop = self._loop
        if loop is not None and _running_loop() is not loop:
            loop.call_soon_threadsafe(self.tools_changed)
            return
        self._tools_dirty = True
        if self._state is State.REGISTERED:
            self._spawn(self._push_tools(), "agent-socket-update-tools")

    async def _push_tools(self) -> None:
        if not self._tools_dirty:
            return
        try:
            await self.update_tools()
        except SessionClosedError:
            pass
        except SessionError as exc:
            log.error("the relay refused the updated tools: %s", exc)

    # -- the run loop -------------------------------------------------------------------------

    def _set_state(self, new: State) -> None:
        if new is self._state or self._state is State.CLOSED:
            return  # CLOSED is final; close() may race with the run loop
        if new not in TRANSITIONS[self._state]:
            raise AssertionError(f"bad transition {self._state} → {new}")
        self._state = new
        if new is not State.REGISTERED:
            self._ready.clear()

    def _finish_first(self, error: BaseException | None) -> None:
        if self._first_done is not None and not self._first_done.done():
            if error is None:
                self._first_done.set_result(None)
            else:
                self._first_done.set_exception(error)

    async def _run(self) -> None:
        attempt = 0
        connects = 0
        try:
            while True:
                try:
                    ws, resumed = await self._handshake()
                except _Refused:
                    log.warning("the relay refused to resume the session; starting a fresh one")
                    self._go_fresh()
                    continue
                except _Fatal as exc:
                    self._error = exc.error
                    self._finish_first(exc.error)
                    return
                except _Retry as exc:
                    unreachable = self._ws_url
                    self._next_relay()
                    if connects == 0:
                        if self._relay != 0:  # the first connect tries every relay once
                            continue
                        self._finish_first(ConnectError(f"cannot reach {unreachable}: {exc}"))
                        return
                    delay = self._options.backoff.delay(attempt)
                    attempt += 1
                    if self._state is not State.CONNECTING:
                        self._set_state(State.RECONNECTING)
                    log.info("reconnecting in %.2f s (%s)", delay, exc)
                    await asyncio.sleep(delay)
                    continue
                was_reconnect = connects > 0
                attempts = attempt
                attempt = 0
                connects += 1
                self._ws = ws
                self._resumed_last = resumed
                self._set_state(State.REGISTERED)
                code = await self._serve(ws, reconnect=was_reconnect, attempts=attempts)
                self._ws = None
                if self._state is State.CLOSED:
                    return
                self._set_state(State.RECONNECTING)
                decision = after_close(code, has_session=self._session_id is not None)
                log.info("socket closed (code %s): %s", code, decision.value)
                if code == RELAY_RESTARTING:
                    self._next_relay()  # that relay is going away: resume on another one
                if decision is Next.FAIL:
                    self._error = RegistrationError("refused", f"relay closed with {code}")
                    return
                if decision is Next.FRESH:
                    self._go_fresh()
                    continue  # a fresh session needs no wait: the old one is gone
                delay = self._options.backoff.delay(attempt)
                attempt += 1
                log.info("reconnecting in %.2f s", delay)
                await asyncio.sleep(delay)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug: do not die silently
            log.exception("agent-socket session stopped")
            self._error = exc
            self._finish_first(exc)
        finally:
            self._ready.clear()
            if self._error is not None and self._state is not State.CLOSED:
                self._spawn_detached_close()

    def _spawn_detached_close(self) -> None:
        # The run loop ended on its own (fatal error): release everything else.
        asyncio.get_running_loop().call_soon(
            lambda: asyncio.ensure_future(self._shutdown(end=False, from_runner=True))
        )

    def _go_fresh(self) -> None:
        """Forget the session; keep what a fresh one must restore (links to re-mint)."""
        if self._session_id is not None and self._changed_from is None:
            self._changed_from = self._session_id
        self._remint.extend(self._links.values())
        self._links.clear()
        self._session_id = None
        self._secret = None
        self._revoke_queue.clear()
        self._completions.clear()  # tasks die with the session

    def _registration_frame(self) -> dict[str, Any]:
        reg = self._host.registration()
        self._tools_dirty = False
        if self._session_id is None:
            return {"type": "register", **reg}
        revoke = self._revoke_queue[:MAX_REVOKE_ON_RESUME]
        return {
            "type": "resume",
            "sessionId": self._session_id,
            "secret": self._secret,
            **reg,
            "revokeTokens": revoke,
        }

    async def _open(self, url: str) -> ClientConnection:
        opts = self._options
        try:
            return await connect(
                url,
                ping_interval=None,
                max_size=None,
                compression=None,
                open_timeout=opts.handshake_timeout,
                close_timeout=opts.close_timeout,
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            if status in (400, 404) and "?session=" in url:
                raise _Refused() from exc
            if status in (429,) or status >= 500:
                raise _Retry(f"HTTP {status}") from exc
            raise _Fatal(ConnectError(f"the relay answered HTTP {status} to {url}")) from exc
        except (OSError, InvalidHandshake, TimeoutError) as exc:
            raise _Retry(str(exc) or type(exc).__name__) from exc

    async def _handshake(self) -> tuple[ClientConnection, bool]:
        frame = self._registration_frame()
        resuming = frame["type"] == "resume"
        url = f"{self._ws_url}?session={self._session_id}" if resuming else self._ws_url
        ws = await self._open(url)
        try:
            await ws.send(_jsonable_frame(frame))
            async with asyncio.timeout(self._options.handshake_timeout):
                while True:
                    raw = await ws.recv()
                    reply = _parse(raw)
                    if reply is not None and reply.get("type") == "register_reply":
                        break
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd is not None else None
            await _abort(ws)
            if code in FRESH_AFTER:
                raise _Refused() from exc
            if code in FATAL_AFTER:
                reason = exc.rcvd.reason if exc.rcvd is not None else ""
                raise _Fatal(RegistrationError(str(code), reason)) from exc
            raise _Retry(f"closed during handshake ({code})") from exc
        except TimeoutError as exc:
            await _abort(ws)
            raise _Retry("no register_reply in time") from exc
        except BaseException:
            await _abort(ws)
            raise
        if not reply.get("ok"):
            await _abort(ws)
            error = reply.get("error")
            if not isinstance(error, dict):
                error = {}
            error_code = str(error.get("code", "protocol_error"))
            if error_code == "resume_failed":
                raise _Refused()
            raise _Fatal(RegistrationError(error_code, str(error.get("message", ""))))
        if resuming:
            del self._revoke_queue[: len(frame["revokeTokens"])]
        self._session_id = str(reply.get("sessionId"))
        self._secret = str(reply.get("resumeSecret"))
        return ws, bool(reply.get("resumed"))

    async def _serve(self, ws: ClientConnection, *, reconnect: bool, attempts: int) -> int | None:
        """Serve one registered socket until it ends; return the close code received."""
        heartbeat = asyncio.create_task(self._heartbeat(ws), name="agent-socket-heartbeat")
        setup = asyncio.create_task(
            self._after_register(ws, reconnect=reconnect, attempts=attempts),
            name="agent-socket-setup",
        )
        try:
            return await self._read(ws)
        finally:
            heartbeat.cancel()
            setup.cancel()
            await asyncio.gather(heartbeat, setup, return_exceptions=True)
            self._fail_pending()
            await _abort(ws)

    async def _after_register(
        self, ws: ClientConnection, *, reconnect: bool, attempts: int
    ) -> None:
        """Bring the relay's view and ours in line, then open the session to callers."""
        assert self._session_id is not None
        try:
            if self._resumed_last:
                reply = await self._request_on(ws, "list_agent_tokens")
                self._apply_token_list(reply)
            # Tasks that finished while we were away.
            while self._completions:
                frame = self._completions[0]
                await ws.send(_jsonable_frame(frame))
                self._completions.pop(0)
            # Revocations that did not fit in the resume frame.
            for token in list(self._revoke_queue):
                await self._request_on(ws, "revoke_agent_token", token=token)
                self._revoke_queue.remove(token)
            if self._tools_dirty:
                self._spawn(self._push_tools(), "agent-socket-update-tools")
            while self._remint:
                old = self._remint[0]
                reply = await self._request_on(ws, "mint_agent_token", label=old.label)
                self._remint.pop(0)
                if reply.get("ok"):
                    new = self._link_from(reply)
                    self._links[new.token] = new
                    self._remint_pairs.append((old, new))
                else:
                    log.error("could not re-mint link %r: %s", old.label, reply.get("error"))
            self._ready.set()
            self._finish_first(None)
            if self._remint_pairs or self._changed_from is not None:
                change = SessionChange(
                    self._changed_from, self._session_id, tuple(self._remint_pairs)
                )
                self._remint_pairs = []
                self._changed_from = None
                await _call_back(self._on_session_changed, change)
            if reconnect:
                info = ReconnectInfo(self._session_id, self._resumed_last, attempts)
                await _call_back(self._on_reconnect, info)
        except (_Lost, ConnectionClosed):
            return  # the socket went away: the next registration picks up where we stopped

    async def _heartbeat(self, ws: ClientConnection) -> None:
        interval = self._options.heartbeat_interval
        if interval <= 0:
            return
        with contextlib.suppress(ConnectionClosed):
            while True:
                await asyncio.sleep(interval)
                await ws.send(HEARTBEAT_PING)

    async def _read(self, ws: ClientConnection) -> int | None:
        loop = asyncio.get_running_loop()
        timeout = self._options.heartbeat_timeout
        try:
            async with asyncio.timeout(timeout if timeout > 0 else None) as guard:
                async for raw in ws:
                    if timeout > 0:
                        guard.reschedule(loop.time() + timeout)
                    if raw == HEARTBEAT_PONG:
                        continue
                    self._dispatch(ws, raw)
        except TimeoutError:
            log.warning("no frame from the relay for %.1f s: reconnecting", timeout)
            await _abort(ws)
            return None
        except ConnectionClosed:
            pass
        rcvd = ws.protocol.close_rcvd
        return rcvd.code if rcvd is not None else None

    def _dispatch(self, ws: ClientConnection, raw: str | bytes) -> None:
        frame = _parse(raw)
        if frame is None:
            return
        kind = frame.get("type")
        if kind == "tool_call":
            self._spawn(self._handle_call(ws, frame), "agent-socket-call")
        elif isinstance(kind, str) and kind.endswith("_reply"):
            future = self._pending.pop(str(frame.get("id")), None)
            if future is not None and not future.done():
                future.set_result(frame)
        elif kind == "ping":
            reply = {"type": "pong", "id": frame.get("id")}
            self._spawn(_send_quietly(ws, _jsonable_frame(reply)), "agent-socket-pong")

    # -- tool calls ---------------------------------------------------------------------------

    async def _handle_call(self, ws: ClientConnection, frame: dict[str, Any]) -> None:
        call_id = str(frame.get("id", ""))
        headers = frame.get("headers")
        body = frame.get("body")
        call = Call(
            method=str(frame.get("method", "POST")).upper(),
            path=str(frame.get("path", "")),
            body=body if isinstance(body, str) else "",
            headers=dict(headers) if isinstance(headers, dict) else {},
            call_id=call_id,
        )
        tool = self._host.find_tool(call.method, call.path)
        if tool is None:
            result: Any = Reply.error(
                "not_found", f"no tool for {call.method} {call.path}", status=404
            )
        else:
            try:
                kwargs = tool.arguments(call)
            except BadInput as exc:
                result = exc.to_reply()
            else:
                if tool.long_running:
                    result = Deferred(tool.run(kwargs, self._executor))
                else:
                    result = await self._outcome(tool.run(kwargs, self._executor))
        if isinstance(result, Deferred):
            await self._start_task(ws, call_id, result)
            return
        await _send_quietly(ws, self._reply_frame({"type": "tool_reply", "id": call_id}, result))

    async def _outcome(self, work: Awaitable[Any]) -> Any:
        """Await a handler and turn what it raised into a reply object."""
        try:
            return await work
        except asyncio.CancelledError:
            raise
        except (ToolError, BadInput) as exc:
            return exc.to_reply()
        except Exception as exc:
            log.exception("tool handler raised")
            message = str(exc) or type(exc).__name__
            return Reply.error(HANDLER_ERROR, message, status=500)

    def _reply_frame(self, head: dict[str, Any], result: Any, *, task: bool = False) -> str:
        try:
            frame = {**head, **reply_fields(result)}
            text = _jsonable_frame(frame)
        except (TypeError, ValueError) as exc:
            log.error("tool result is not JSON: %s", exc)
            bad = Reply.error(HANDLER_ERROR, f"the result is not valid JSON: {exc}", status=500)
            return _jsonable_frame({**head, **reply_fields(bad)})
        if task:
            body_size = len(json.dumps(frame.get("body"), ensure_ascii=False).encode())
            ctype = (frame.get("headers") or {}).get("content-type", "")
            if body_size > MAX_TASK_RESULT_BYTES or len(ctype) > MAX_TASK_CONTENT_TYPE_CHARS:
                # The relay would drop it silently and the agent would poll forever.
                too_big = Reply(
                    error_envelope(
                        RESULT_TOO_LARGE,
                        f"the task result is over {MAX_TASK_RESULT_BYTES // 1024} KiB",
                    ),
                    status=500,
                )
                return _jsonable_frame({**head, **reply_fields(too_big)})
        return text

    async def _start_task(self, ws: ClientConnection, call_id: str, deferred: Deferred) -> None:
        task_id = secrets.token_urlsafe(12)
        work = deferred.awaitable
        reply = {"type": "tool_reply", "id": call_id, "status": 202, "taskId": task_id}
        try:
            await ws.send(_jsonable_frame(reply))
        except ConnectionClosed:
            if inspect.iscoroutine(work):
                work.close()  # the agent never learned the task id
            return
        result = await self._outcome(work)
        frame = self._reply_frame({"type": "task_complete", "taskId": task_id}, result, task=True)
        current = self._ws
        if current is not None and self._state is State.REGISTERED and not self._completions:
            try:
                await current.send(frame)
                return
            except ConnectionClosed:
                pass
        self._completions.append(json.loads(frame))

    # -- requests -----------------------------------------------------------------------------

    async def _wait_ready(self) -> ClientConnection:
        while True:
            if self._state is State.CLOSED:
                raise SessionClosedError("session is closed")
            if self._ready.is_set() and self._ws is not None:
                return self._ws
            ready = asyncio.create_task(self._ready.wait())
            closed = asyncio.create_task(self._closed.wait())
            try:
                await asyncio.wait({ready, closed}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                ready.cancel()
                closed.cancel()
                await asyncio.gather(ready, closed, return_exceptions=True)

    async def _request(self, frame_type: str, **fields: Any) -> dict[str, Any]:
        """Send a request once the session is ready; retry after a reconnect if it is lost."""
        while True:
            ws = await self._wait_ready()
            try:
                return await self._request_on(ws, frame_type, **fields)
            except _Lost:
                continue

    async def _request_on(
        self, ws: ClientConnection, frame_type: str, **fields: Any
    ) -> dict[str, Any]:
        frame_id = f"sdk{next(self._ids)}"
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[frame_id] = future
        try:
            await ws.send(_jsonable_frame({"type": frame_type, "id": frame_id, **fields}))
            return await asyncio.wait_for(future, self._options.request_timeout)
        except ConnectionClosed as exc:
            raise _Lost() from exc
        except TimeoutError as exc:
            raise RequestError("timeout", f"no {frame_type}_reply in time") from exc
        finally:
            self._pending.pop(frame_id, None)

    def _fail_pending(self) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(_Lost())
        self._pending.clear()

    # -- links, internals ---------------------------------------------------------------------

    def _queue_revoke(self, token: str) -> None:
        if token not in self._revoke_queue:
            self._revoke_queue.append(token)

    def _resolve_url(self, url: Any, token: str) -> str:
        if isinstance(url, str) and url:
            if url.startswith("__BASE__"):
                return self.base_url + url[len("__BASE__") :]
            return url
        return f"{self.base_url}/v1/t/{token}/agents.md"

    def _link_from(self, item: dict[str, Any]) -> Link:
        token = str(item.get("token", ""))
        minted = item.get("mintedAt")
        return Link(
            token=token,
            url=self._resolve_url(item.get("url"), token),
            label=str(item.get("label") or ""),
            minted_at=float(minted) if isinstance(minted, int | float) else time.time(),
        )

    def _apply_token_list(self, reply: dict[str, Any]) -> None:
        tokens = reply.get("tokens")
        if not isinstance(tokens, list):
            return
        fresh: dict[str, Link] = {}
        for item in tokens:
            if isinstance(item, dict) and isinstance(item.get("token"), str):
                if item["token"] in self._revoke_queue:
                    continue
                link = self._link_from(item)
                fresh[link.token] = link
        self._links = fresh

    # -- tasks and shutdown -------------------------------------------------------------------

    def _spawn(self, coro: Awaitable[Any], name: str) -> None:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _shutdown(self, *, end: bool, from_runner: bool = False) -> None:
        if self._state is State.CLOSED:
            await self._closed.wait()
            return
        was_registered = self._state is State.REGISTERED and self._ws is not None
        ws = self._ws
        self._state = State.CLOSED
        self._ready.clear()
        runner = self._runner
        # Close the live socket first so the relay sees our code, not a drop.
        ended = False
        if ws is not None and was_registered:
            with contextlib.suppress(Exception):
                code, reason = (END_CODE, "session ended") if end else (LEAVE_CODE, "going away")
                await asyncio.wait_for(ws.close(code, reason), self._options.close_timeout)
            proto = ws.protocol
            # Our 1000 only ended the session if the relay got it before closing on its own.
            ended = (
                proto.close_sent is not None
                and proto.close_sent.code == END_CODE
                and proto.close_rcvd is not None
                and proto.close_rcvd_then_sent is False
            )
        if runner is not None and not from_runner and not runner.done():
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
        if end and not ended and self._session_id and self._secret:
            await self._end_held()  # the socket was gone (or went while we closed it)
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._fail_pending()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
        self._host._detach(self)
        self._finish_first(self._error or SessionClosedError("session closed while connecting"))
        self._closed.set()

    async def _end_held(self) -> None:
        """End a session whose socket is gone: ``end`` on a ``?session=`` socket (§4)."""
        url = f"{self._ws_url}?session={self._session_id}"
        frame = {"type": "end", "sessionId": self._session_id, "secret": self._secret}
        try:
            async with asyncio.timeout(self._options.close_timeout):
                async with connect(
                    url, ping_interval=None, compression=None, close_timeout=1
                ) as ws:
                    await ws.send(_jsonable_frame(frame))
                    while True:
                        reply = _parse(await ws.recv())
                        if reply is not None and reply.get("type") == "end_reply":
                            if not reply.get("ok"):
                                log.info("the relay had already ended the session")
                            return
        except (OSError, InvalidHandshake, ConnectionClosed, TimeoutError) as exc:
            log.warning("could not end the held session: %s", exc)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _parse(raw: str | bytes) -> dict[str, Any] | None:
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        frame = json.loads(text)
    except ValueError:
        return None
    return frame if isinstance(frame, dict) else None


def _token_of(link: Link | str) -> str:
    if isinstance(link, Link):
        return link.token
    text = link.strip()
    if "/v1/t/" in text:
        text = text.split("/v1/t/", 1)[1].split("/", 1)[0]
    return text


def _request_error(reply: dict[str, Any]) -> RequestError:
    error = reply.get("error") if isinstance(reply.get("error"), dict) else {}
    assert isinstance(error, dict)
    return RequestError(str(error.get("code", "error")), str(error.get("message", "")))


async def _send_quietly(ws: ClientConnection, text: str) -> None:
    with contextlib.suppress(ConnectionClosed):
        await ws.send(text)


async def _abort(ws: ClientConnection) -> None:
    """Drop a socket without a closing handshake and wait until it is released."""
    transport = ws.transport
    if transport is not None and not transport.is_closing():
        transport.abort()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(ws.wait_closed(), 1)


async def _call_back(callback: Callback | None, arg: Any) -> None:
    if callback is None:
        return
    try:
        result = callback(arg)
        if inspect.isawaitable(result):
            await result
    except Exception:
        log.exception("agent-socket callback raised")
