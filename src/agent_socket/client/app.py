"""The app: a name, a description and tools — and the way to put them on a relay.

::

    app = App("counter", description="A counter the AI can change.")

    @app.tool("/increment")
    async def increment(by: int = 1) -> dict:
        "Add `by` to the counter and return the new count."
        ...

    app.run("http://127.0.0.1:8787")          # blocking: connect, print a link, serve

    async with app.connect(url) as session:   # or the async form
        link = await session.mint_link("me")
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
import weakref
from collections.abc import Callable, Sequence
from typing import Any, TextIO, TypeVar

from agent_socket.client.agents_md import default_agents_md
from agent_socket.client.backoff import Backoff
from agent_socket.client.session import (
    Callback,
    ConnectError,
    RegistrationError,
    Session,
    SessionChange,
    SessionOptions,
)
from agent_socket.client.tools import Tool
from agent_socket.protocol.ids import APP_ID_RE
from agent_socket.protocol.limits import (
    HEARTBEAT_INTERVAL_MS,
    HEARTBEAT_TIMEOUT_MS,
    MAX_APP_DESCRIPTION_CHARS,
    cut_utf16,
)

F = TypeVar("F", bound=Callable[..., Any])

#: Where ``App.run`` connects when given no URL and ``AGENT_SOCKET_URL`` is not set.
DEFAULT_URL = "http://127.0.0.1:8787"


def _app_id(name: str) -> str:
    if APP_ID_RE.match(name):
        return name
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-")[:64]
    return slug or "app"


class App:
    """An app that exposes tools to AI agents through a relay.

    ``name`` becomes the app id (characters outside ``[A-Za-z0-9_.-]`` are replaced by ``-``
    and it is cut to 64); ``description`` is shown in ``tools.json`` (the relay cuts it to 1,024
    characters). ``agents_md`` replaces the generated briefing (:func:`default_agents_md` built
    from name, description, tools and ``capabilities``/``limitations``/``conventions``); the
    relay refuses a briefing over 65,536 characters. ``max_threads`` bounds how many plain
    (non-async) handlers run at once per session; more calls wait for a free thread.
    """

    def __init__(
        self,
        name: str,
        description: str = "",
        *,
        app_id: str | None = None,
        agents_md: str | None = None,
        capabilities: Sequence[str] | str | None = None,
        limitations: Sequence[str] | str | None = None,
        conventions: Sequence[str] | str | None = None,
        max_threads: int = 100,
    ) -> None:
        self.name = name
        self.description = description
        self.app_id = app_id if app_id is not None else _app_id(name)
        if not APP_ID_RE.match(self.app_id):
            raise ValueError(f"app_id {self.app_id!r} must match ^[A-Za-z0-9_.-]{{1,64}}$")
        self.custom_agents_md = agents_md
        self.capabilities = capabilities
        self.limitations = limitations
        self.conventions = conventions
        self.max_threads = max_threads
        self._tools: dict[tuple[str, str], Tool] = {}
        self._sessions: weakref.WeakSet[Session] = weakref.WeakSet()

    # -- tools --------------------------------------------------------------------------------

    def tool(
        self,
        path: str,
        *,
        method: str = "POST",
        description: str | None = None,
        input_schema: dict[str, Any] | None = None,
        long_running: bool = False,
    ) -> Callable[[F], F]:
        """Decorator: expose the function as a tool at ``method path``.

        The description defaults to the docstring and the input schema is derived from the
        signature (see :mod:`agent_socket.client.tools`). ``long_running=True`` answers every
        call ``202`` with a task id at once and delivers the result as ``task_complete``. The
        function is returned unchanged. Raises ``ValueError`` for a path the relay would refuse
        or a duplicate method + path.
        """

        def decorate(func: F) -> F:
            self.add_tool(
                Tool.from_function(
                    func,
                    path,
                    method=method,
                    description=description,
                    input_schema=input_schema,
                    long_running=long_running,
                )
            )
            return func

        return decorate

    def add_tool(self, tool: Tool) -> Tool:
        """Add a tool; live sessions send ``update_tools`` in the background."""
        if tool.key in self._tools:
            raise ValueError(f"a tool for {tool.method} {tool.path} already exists")
        self._tools[tool.key] = tool
        self._tools_changed()
        return tool

    def remove_tool(self, path: str, method: str = "POST") -> Tool:
        """Remove a tool (``KeyError`` if there is none); live sessions update the relay."""
        tool = self._tools.pop((method.upper(), path))
        self._tools_changed()
        return tool

    @property
    def tools(self) -> list[Tool]:
        return list(self._tools.values())

    def find_tool(self, method: str, path: str) -> Tool | None:
        return self._tools.get((method.upper(), path))

    def _tools_changed(self) -> None:
        for session in list(self._sessions):
            session.tools_changed()

    # -- registration -------------------------------------------------------------------------

    def agents_md(self) -> str:
        """The briefing agents read at ``/agents.md``."""
        if self.custom_agents_md is not None:
            return self.custom_agents_md
        return default_agents_md(
            self.name,
            self.description,
            self.tools,
            capabilities=self.capabilities,
            limitations=self.limitations,
            conventions=self.conventions,
        )

    def registration(self) -> dict[str, Any]:
        """The fields of ``register``/``resume`` for the current tools (PROTOCOL.md §3.1)."""
        return {
            "appId": self.app_id,
            "agentsMd": self.agents_md(),
            "appDescription": cut_utf16(self.description, MAX_APP_DESCRIPTION_CHARS),
            "tools": [tool.as_json() for tool in self._tools.values()],
        }

    def _attach(self, session: Session) -> None:
        self._sessions.add(session)

    def _detach(self, session: Session) -> None:
        self._sessions.discard(session)

    # -- connecting ---------------------------------------------------------------------------

    def connect(
        self,
        url: str | Sequence[str],
        *,
        resume: str | None = None,
        on_session_changed: Callback | None = None,
        on_reconnect: Callback | None = None,
        heartbeat_interval: float = HEARTBEAT_INTERVAL_MS / 1000,
        heartbeat_timeout: float = HEARTBEAT_TIMEOUT_MS / 1000,
        backoff: Backoff | None = None,
        handshake_timeout: float = 10.0,
        request_timeout: float = 30.0,
        close_timeout: float = 5.0,
    ) -> Session:
        """A session on the relay at ``url`` (``http(s)://host[:port]`` or ``ws(s)://…``).

        ``url`` may also list several relays of one cluster (a sequence, or comma-separated):
        the session moves to the next one when a relay cannot be reached or restarts.

        Use ``async with app.connect(url) as session:`` (closes and ends the session on exit)
        or ``session = await app.connect(url)``. Connecting raises :class:`ConnectError` when
        the relay is unreachable and :class:`RegistrationError` when it refuses the app.
        ``resume`` is a saved :attr:`Session.resume_state`: the session and its links are
        kept if the relay still holds them, otherwise a fresh session starts (links re-minted,
        ``on_session_changed`` told). ``on_session_changed(SessionChange)`` and
        ``on_reconnect(ReconnectInfo)`` may be plain functions or coroutines; what they raise is
        logged and ignored. Timings are in seconds; ``backoff`` sets the reconnect schedule.
        """
        options = SessionOptions(
            heartbeat_interval=heartbeat_interval,
            heartbeat_timeout=heartbeat_timeout,
            backoff=backoff or Backoff(),
            handshake_timeout=handshake_timeout,
            request_timeout=request_timeout,
            close_timeout=close_timeout,
        )
        return Session(
            self,
            url,
            resume=resume,
            options=options,
            on_session_changed=on_session_changed,
            on_reconnect=on_reconnect,
        )

    def run(
        self,
        url: str | Sequence[str] | None = None,
        *,
        label: str = "default",
        out: TextIO | None = None,
        **options: Any,
    ) -> None:
        """Connect, mint a link, print it, and serve until Ctrl-C (or SIGTERM).

        ``url`` defaults to ``$AGENT_SOCKET_URL`` or ``http://127.0.0.1:8787``. The link is
        printed as the last word of a line; when the relay forces a fresh session, the new
        link is printed the same way. On Ctrl-C the session is ended (links stop working) and
        the call returns. If the relay cannot be reached or refuses the app, the error is
        printed and ``SystemExit(1)`` is raised. ``options`` go to :meth:`connect`.
        """
        stream = out or sys.stdout
        target = url or os.environ.get("AGENT_SOCKET_URL") or DEFAULT_URL
        try:
            asyncio.run(self._serve(target, label, stream, options))
        except (KeyboardInterrupt, asyncio.CancelledError):  # Ctrl-C / SIGTERM
            print("Stopped.", file=stream, flush=True)
        except (ConnectError, RegistrationError) as exc:
            print(f"agent-socket: {exc}", file=sys.stderr, flush=True)
            if isinstance(exc, ConnectError):
                print(
                    f"Is the relay running? Start one with `agent-socket relay` or set "
                    f"AGENT_SOCKET_URL (tried {target}).",
                    file=sys.stderr,
                    flush=True,
                )
            raise SystemExit(1) from None

    async def _serve(
        self, url: str | Sequence[str], label: str, stream: TextIO, options: dict[str, Any]
    ) -> None:
        def changed(change: SessionChange) -> None:
            for new in (new for _, new in change.links):
                print(
                    f"The app reconnected on a new session. New link: {new.url}",
                    file=stream,
                    flush=True,
                )

        main = asyncio.current_task()
        loop = asyncio.get_running_loop()
        if main is not None:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signal.SIGTERM, main.cancel)
        options.setdefault("on_session_changed", changed)
        async with self.connect(url, **options) as session:
            link = await session.mint_link(label)
            print(
                f"{self.name} is connected. Give this link to your AI: {link.url}",
                file=stream,
                flush=True,
            )
            print("Serving tool calls; press Ctrl-C to stop.", file=stream, flush=True)
            try:
                await session.wait_closed()
            except asyncio.CancelledError:
                print("Stopping…", file=stream, flush=True)
                raise
