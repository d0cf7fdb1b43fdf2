"""``channel host``: the room as an agent-socket app — its tools, its link, its lifetime.

The host connects to a relay as an ordinary app (through the SDK), mints one link (label
``channel``) and exposes the room's tools. It also serves the local control socket and publishes
what local commands queue. Lifetime:

- **start** — take the room's lock (one host per room), open the log, publish the outbox, then
  connect. A resume state saved by an earlier host for the same relay is passed to the SDK, so
  within the relay's hold window the session — and the link — are the same as before.
- **run** — the SDK keeps the socket up; when the relay forces a fresh session the SDK re-mints
  the link, and the new one is shown and saved.
- **stop** (Ctrl-C, SIGTERM, ``channel stop``) — leave *without* ending the session
  (``close(end=False)``), so a restart within the hold window keeps the link;
  ``channel stop --end`` ends it (the link stops working at once).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from agent_socket.channel import join_sh
from agent_socket.channel.agents_md import build_agents_md
from agent_socket.channel.control import ControlServer
from agent_socket.channel.core import DEFAULT_WINDOW, MAX_TEXT_BYTES, ChannelError, check_name
from agent_socket.channel.lock import RoomLock
from agent_socket.channel.paths import RoomPaths
from agent_socket.channel.report import Reporter
from agent_socket.channel.service import DEFAULT_WAIT_CAP, Channel
from agent_socket.channel.store import Store
from agent_socket.channel.text import render_recv
from agent_socket.client import App, Reply, ToolError
from agent_socket.client.session import (
    ConnectError,
    ReconnectInfo,
    RegistrationError,
    Session,
    SessionChange,
)

#: The label of the room's link on the relay (how a restarted host finds it again).
LINK_LABEL = "channel"
#: How often the host publishes the outbox on its own (a command that could not reach the host
#: — e.g. while it was starting — is published at the latest after this long).
OUTBOX_POLL_S = 1.0


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SendInput(_Strict):
    name: str = Field(description="Your short, stable name in the room.")
    text: str = Field(description=f"The message, up to {MAX_TEXT_BYTES // 1024} KiB of UTF-8.")


class RecvInput(_Strict):
    name: str | None = Field(None, description="Your name; omit to lurk (not listed in peers).")
    since: int | None = Field(
        None, ge=0, description="The latest_seq of your previous answer; omit for scrollback."
    )
    wait: float | None = Field(
        None, ge=0, description="Seconds to wait for new messages (default and max: the cap)."
    )
    message: str | None = Field(None, description="Say this first (needs name), then wait.")
    format: Literal["json", "text"] = Field(
        "json", description="'text' renders plain lines (for the bash client)."
    )


class EmptyInput(_Strict):
    pass


@dataclass(frozen=True, slots=True)
class HostOptions:
    """What ``channel host`` was started with."""

    relay: str
    name: str
    public_url: str | None = None
    wait_cap: float = DEFAULT_WAIT_CAP
    window: int = DEFAULT_WINDOW


def _error(exc: ChannelError) -> ToolError:
    return ToolError(exc.message, code=exc.code, status=exc.status)


class Host:
    """One running room. :meth:`run` serves until stopped and returns an exit status."""

    def __init__(self, paths: RoomPaths, options: HostOptions, reporter: Reporter) -> None:
        self.paths = paths
        self.options = options
        self.report = reporter
        self.store: Store | None = None
        self.channel: Channel | None = None
        self.session: Session | None = None
        self.link_url: str | None = None
        self._stop = asyncio.Event()
        self._end = False

    # -- the app ------------------------------------------------------------------------------

    def build_app(self, channel: Channel) -> App:
        """The room's app: four tools over ``channel`` and the room's briefing."""
        app = App(f"channel-{self.paths.name}", "A shared chat room for AIs and humans.")

        @app.tool("/send")
        async def send(body: SendInput) -> dict[str, Any]:
            """Say something in the room. Answers {ok, seq, delivered_to_active}:
            delivered_to_active counts the other participants waiting in /recv right now."""
            try:
                return channel.send(body.name, body.text).as_json()
            except ChannelError as exc:
                raise _error(exc) from None

        @app.tool("/recv")
        async def recv(body: RecvInput) -> Any:
            """Read the room. Without since: the last 50 messages. With since (the latest_seq
            of your previous answer): newer messages at once, or wait up to `wait` seconds
            for them. With message: say it first (others see you as awaiting), then wait.
            Answers {messages:[{seq, from, text, ts, awaiting}], latest_seq,
            missed_messages?}; you never receive your own messages."""
            try:
                result = await channel.recv(body.name, body.since, body.wait, body.message)
            except ChannelError as exc:
                raise _error(exc) from None
            if body.format == "text":
                return Reply.text(render_recv(result))
            return result

        @app.tool("/peers")
        async def peers(body: EmptyInput) -> dict[str, Any]:
            """Who was active in the last 5 minutes: {peers:[{name, last_active_s_ago,
            currently_waiting}]}."""
            return channel.peers()

        @app.tool("/join.sh", method="GET")
        async def join(body: EmptyInput) -> Reply:
            """A bash client for humans (needs bash and curl): bash <(curl -s $BASE/join.sh)."""
            if self.link_url is None:
                raise ToolError("the room has no link yet", code="not_ready", status=503)
            return Reply.text(join_sh.render(self.link_url, channel.wait_cap))

        app.custom_agents_md = build_agents_md(
            self.paths.name, self.options.name, channel.wait_cap, app.tools
        )
        return app

    # -- local control ------------------------------------------------------------------------

    async def handle_control(self, request: dict[str, Any]) -> dict[str, Any]:
        """One request from a local command (see :mod:`.control`)."""
        channel = self.channel
        assert channel is not None and self.store is not None
        op = request.get("op")
        if op == "send":
            outbox_id = int(request["outbox_id"])
            sender = str(request.get("name") or self.options.name)
            delivered = channel.room.waiting_except(sender)
            seq = channel.drain_outbox().get(outbox_id) or self.store.seq_of_outbox(outbox_id)
            return {"ok": True, "seq": seq, "delivered_to_active": delivered}
        if op == "recv":
            name = request.get("name")
            since = request.get("since")
            wait = request.get("wait")
            return await channel.recv(
                str(name) if name is not None else None,
                int(since) if since is not None else None,
                float(wait) if wait is not None else None,
            )
        if op == "peers":
            return channel.peers()
        if op == "status":
            return self.status()
        if op == "stop":
            self._end = bool(request.get("end"))
            self._stop.set()
            return {"ok": True}
        raise ChannelError("bad_request", f"unknown op {op!r}")

    def status(self) -> dict[str, Any]:
        assert self.channel is not None and self.store is not None
        session = self.session
        return {
            "running": True,
            "room": self.paths.name,
            "name": self.options.name,
            "relay": self.options.relay,
            "link": self.link_url,
            "connected": session is not None and session.state.value == "registered",
            "latest_seq": self.channel.room.latest_seq,
            "peers": len(self.channel.room.peers()),
            "queued": self.store.queued(),
        }

    # -- links and sessions -------------------------------------------------------------------

    def _public(self, url: str) -> str:
        """``url`` with the relay's base replaced by ``--public-url`` when given."""
        public = self.options.public_url
        session = self.session
        if public and session is not None and url.startswith(session.base_url):
            return public.rstrip("/") + url[len(session.base_url) :]
        return url

    def _show_link(self, url: str, *, resumed: bool, changed: bool = False) -> None:
        assert self.store is not None
        self.link_url = self._public(url)
        self.store.set("link", self.link_url)
        base = join_sh.base_of(self.link_url)
        self.report.link(self.link_url, base + "/join.sh", resumed=resumed, changed=changed)

    def _save_resume(self) -> None:
        if self.store is not None and self.session is not None:
            self.store.set("resume_state", self.session.resume_state)
            self.store.set("resume_relay", self.options.relay)

    def _session_changed(self, change: SessionChange) -> None:
        self._save_resume()
        for old, new in change.links:
            if old.label == LINK_LABEL:
                self._show_link(new.url, resumed=False, changed=True)

    def _reconnected(self, info: ReconnectInfo) -> None:
        self._save_resume()
        how = "resumed the same session" if info.resumed else "started a fresh session"
        self.report.info(f"reconnected to the relay ({how})")

    async def _connect(self, app: App) -> Session:
        assert self.store is not None
        saved = self.store.get("resume_state")
        same_relay = self.store.get("resume_relay") == self.options.relay
        session = app.connect(
            self.options.relay,
            resume=saved if saved and same_relay else None,
            on_session_changed=self._session_changed,
            on_reconnect=self._reconnected,
        )
        self.session = session
        await session.start()
        self._save_resume()
        existing = [link for link in session.links() if link.label == LINK_LABEL]
        if existing:
            self._show_link(existing[0].url, resumed=True)
        else:
            link = await session.mint_link(LINK_LABEL)
            self._show_link(link.url, resumed=False)
        return session

    # -- running ------------------------------------------------------------------------------

    async def _drain_forever(self) -> None:
        assert self.channel is not None
        while True:
            await asyncio.sleep(OUTBOX_POLL_S)
            self.channel.drain_outbox()

    def _open(self) -> Channel:
        store = Store.open(self.paths.db)
        self.store = store
        store.set("name", self.options.name)
        channel = Channel(store, window=self.options.window, wait_cap=self.options.wait_cap)
        channel.listeners.append(self.report.message)
        channel.peer_listeners.append(self.report.peer)
        self.channel = channel
        return channel

    async def run(self) -> int:
        """Serve the room until stopped. Returns 0 when stopped, 1 when the relay failed us,
        2 when another host already runs this room."""
        check_name(self.options.name)
        self.paths.ensure()
        lock = RoomLock(self.paths)
        if not lock.acquire():
            self.report.info(f"a host for room {self.paths.name!r} is already running")
            return 2
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self._stop.set)
        control: ControlServer | None = None
        drain: asyncio.Task[None] | None = None
        try:
            channel = self._open()
            channel.drain_outbox()  # what was queued while no host ran
            control = ControlServer(self.paths.socket, self.handle_control)
            await control.start()
            drain = asyncio.create_task(self._drain_forever())
            app = self.build_app(channel)
            try:
                session = await self._connect(app)
            except (ConnectError, RegistrationError) as exc:
                self.report.info(f"cannot connect to the relay at {self.options.relay}: {exc}")
                return 1
            closed = asyncio.create_task(session.wait_closed())
            stop = asyncio.create_task(self._stop.wait())
            await asyncio.wait({closed, stop}, return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            if closed.done():
                error = closed.exception() if not closed.cancelled() else None
                self.report.info(f"the relay session closed: {error or 'closed'}")
                return 1
            closed.cancel()
            await session.close(end=self._end)
            if self._end and self.store is not None:
                self.store.set("resume_state", None)
                self.store.set("link", None)
            return 0
        finally:
            if drain is not None:
                drain.cancel()
                await asyncio.gather(drain, return_exceptions=True)
            if control is not None:
                await control.close()
            if self.session is not None:
                await self.session.close(end=False)  # no-op when already closed
            if self.store is not None:
                self.store.close()
            lock.release()
            self.report.stopped()
