"""``agent-socket channel …``: host a chat room and take part in it from the terminal.

``agent_socket.cli`` calls :func:`register` to add the ``channel`` sub-command. Every command
takes ``--room`` (several rooms per user) and ``--json`` (one JSON object per answer or per
message, for programs and AIs).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from agent_socket.channel import control, local
from agent_socket.channel.control import ControlError, HostDown
from agent_socket.channel.core import DEFAULT_WINDOW, ChannelError, check_name
from agent_socket.channel.paths import DEFAULT_ROOM, RoomPaths, room_paths
from agent_socket.channel.report import JsonReporter, Reporter, RichReporter
from agent_socket.channel.service import DEFAULT_WAIT_CAP
from agent_socket.channel.store import Store
from agent_socket.channel.text import message_line

HELP = (
    "A chat room for several AIs and humans behind one link. `channel host` runs the room on "
    "this machine; everyone with its link talks in it."
)

Room = Annotated[
    str, typer.Option("--room", "-r", help="The room (several rooms per user).", show_default=True)
]
Json = Annotated[bool, typer.Option("--json", help="JSON output for programs and AIs.")]
Name = Annotated[
    str | None, typer.Option("--name", "-n", help="Your name (default: the host's --name).")
]

err = Console(stderr=True, highlight=False)
out = Console(highlight=False)


def _fail(message: str, as_json: bool, code: str = "error", status: int = 1) -> NoReturn:
    if as_json:
        print(json.dumps({"error": {"code": code, "message": message}}, ensure_ascii=False))
    else:
        err.print(f"[bold red]error:[/] {escape(message)}")
    raise typer.Exit(status)


def _paths(room: str, as_json: bool) -> RoomPaths:
    try:
        return room_paths(room)
    except ValueError as exc:
        _fail(str(exc), as_json, "bad_room", 2)


def _store(paths: RoomPaths) -> Store:
    paths.ensure()
    return Store.open(paths.db)


def _name(given: str | None, store: Store, as_json: bool) -> str:
    name = given or local.default_name(store)
    try:
        return check_name(name)
    except ChannelError as exc:
        _fail(exc.message, as_json, exc.code, 2)


def _print_message(msg: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(msg, ensure_ascii=False), flush=True)
    else:
        out.print(f"[dim]#{msg.get('seq')}[/] {escape(message_line(msg))}")


def _host(
    room: str,
    name: str | None,
    relay: str | None,
    public_url: str | None,
    wait_cap: float,
    window: int,
    as_json: bool,
) -> None:
    paths = _paths(room, as_json)
    target = relay or os.environ.get("AGENT_SOCKET_URL") or "http://127.0.0.1:8787"
    if name is None:
        name = local.default_name(None)
    try:
        check_name(name)
    except ChannelError as exc:
        _fail(exc.message, as_json, exc.code, 2)
    if wait_cap <= 0:
        _fail(
            "--wait-cap must be above 0 (and below the relay's sync timeout)",
            as_json,
            "bad_input",
            2,
        )
    from agent_socket.channel.host import Host, HostOptions  # the SDK: only when hosting

    reporter: Reporter = JsonReporter() if as_json else RichReporter(room)
    options = HostOptions(target, name, public_url, wait_cap, window)
    status = asyncio.run(Host(paths, options, reporter).run())
    if status == 2:
        _fail(
            f"a host for room {room!r} is already running (stop it with "
            f"`agent-socket channel stop --room {room}`)",
            as_json,
            "already_running",
            2,
        )
    raise typer.Exit(status)


def register(app: typer.Typer) -> None:
    """Add ``channel`` (host, send, recv, watch, peers, status, stop, join) to ``app``."""
    channel = typer.Typer(help=HELP, no_args_is_help=True, add_completion=False)
    app.add_typer(channel, name="channel")

    @channel.command("host")
    def host(
        name: Annotated[
            str | None, typer.Option("--name", "-n", help="Your name in the room (default: login).")
        ] = None,
        relay: Annotated[
            str | None,
            typer.Option(
                "--relay", help="Relay URL [env AGENT_SOCKET_URL; default http://127.0.0.1:8787]."
            ),
        ] = None,
        room: Room = DEFAULT_ROOM,
        public_url: Annotated[
            str | None,
            typer.Option("--public-url", help="Print links with this origin (e.g. a tunnel)."),
        ] = None,
        wait_cap: Annotated[
            float,
            typer.Option(
                "--wait-cap",
                help="Longest long-poll in seconds; keep it below the "
                "relay's sync timeout (30 s by default).",
            ),
        ] = DEFAULT_WAIT_CAP,
        window: Annotated[
            int, typer.Option("--window", hidden=True, min=1, help="Messages kept (tests).")
        ] = DEFAULT_WINDOW,
        as_json: Json = False,
    ) -> None:
        """Host the room: connect to the relay, print the link and the room's activity.

        Runs in the foreground until Ctrl-C. A restart within the relay's hold window keeps
        the same link; the history is kept on disk either way.
        """
        _host(room, name, relay, public_url, wait_cap, window, as_json)

    @channel.command("send")
    def send(
        text: Annotated[str, typer.Argument(help="The message; '-' reads it from stdin.")],
        room: Room = DEFAULT_ROOM,
        name: Name = None,
        as_json: Json = False,
    ) -> None:
        """Say something in the room (queued if the host is down, sent when it starts)."""
        paths = _paths(room, as_json)
        if text == "-":
            text = sys.stdin.read().rstrip("\n")
        store = _store(paths)
        try:
            result = local.send(paths, store, _name(name, store, as_json), text)
        except ChannelError as exc:
            _fail(exc.message, as_json, exc.code)
        finally:
            store.close()
        if as_json:
            print(json.dumps(result.as_json()))
        elif result.queued:
            err.print("queued: the host is not running; the message is sent when it starts")
        else:
            err.print(f"sent #{result.seq} ({result.delivered_to_active} waiting to read it)")

    @channel.command("recv")
    def recv(
        room: Room = DEFAULT_ROOM,
        name: Name = None,
        wait: Annotated[
            float, typer.Option("--wait", "-w", help="Wait up to S seconds when nothing is new.")
        ] = 0.0,
        once: Annotated[
            bool, typer.Option("--once", help="Print at most one message (the oldest unread).")
        ] = False,
        as_json: Json = False,
    ) -> None:
        """Print the messages you have not read yet (first time: the last 50), then exit.

        Your read position is kept per name and room; your own messages are not shown.
        """
        paths = _paths(room, as_json)
        store = _store(paths)
        try:
            who = _name(name, store, as_json)
            key = f"cursor:{who}"
            saved = store.get(key)
            since = int(saved) if saved is not None else None
            answer, running = local.recv(paths, store, who, since, max(0.0, wait))
            messages = list(answer.get("messages", []))
            cursor = int(answer.get("latest_seq", since or 0))
            if once and messages:
                messages = messages[:1]
                cursor = int(messages[0]["seq"])
            store.set(key, str(cursor))
        finally:
            store.close()
        if as_json:
            shown = {**answer, "messages": messages, "latest_seq": cursor}
            print(json.dumps({**shown, "host_running": running}, ensure_ascii=False))
            return
        if not running:
            err.print("[dim](the host is not running: reading the saved history)[/]")
        missed = int(answer.get("missed_messages") or 0)
        if missed:
            err.print(f"[dim]({missed} older messages fell out of the room's window)[/]")
        for msg in messages:
            _print_message(msg, False)

    @channel.command("watch")
    def watch(room: Room = DEFAULT_ROOM, as_json: Json = False) -> None:
        """Follow the room (last 50, then live); keeps following across host restarts."""
        paths = _paths(room, as_json)
        store = _store(paths)

        def on_host(running: bool) -> None:
            if as_json:
                return
            state = "the host is running" if running else "the host is not running; waiting"
            err.print(f"[dim]({state})[/]")

        try:
            for msg in local.follow(paths, store, on_host=on_host):
                _print_message(msg, as_json)
        except KeyboardInterrupt:
            pass
        finally:
            store.close()

    @channel.command("peers")
    def peers(room: Room = DEFAULT_ROOM, as_json: Json = False) -> None:
        """Who was active in the room in the last 5 minutes."""
        paths = _paths(room, as_json)
        try:
            answer = control.request(paths.socket, {"op": "peers"}, timeout=10)
        except (HostDown, TimeoutError):
            _fail(f"the host of room {room!r} is not running", as_json, "host_down")
        if as_json:
            print(json.dumps(answer, ensure_ascii=False))
            return
        table = Table(title=f"room {room}")
        table.add_column("Name", style="bold")
        table.add_column("Last active")
        table.add_column("Waiting now")
        for peer in answer.get("peers", []):
            table.add_row(
                escape(str(peer["name"])),
                f"{peer['last_active_s_ago']} s ago",
                "yes" if peer["currently_waiting"] else "",
            )
        out.print(table)

    @channel.command("status")
    def status(room: Room = DEFAULT_ROOM, as_json: Json = False) -> None:
        """Whether the host runs, the link, and how many messages are queued."""
        paths = _paths(room, as_json)
        try:
            answer = control.request(paths.socket, {"op": "status"}, timeout=10)
        except (HostDown, TimeoutError):
            store = _store(paths)
            try:
                answer = {
                    "running": False,
                    "room": room,
                    "link": store.get("link"),
                    "latest_seq": store.bounds()[1],
                    "queued": store.queued(),
                }
            finally:
                store.close()
        if as_json:
            print(json.dumps(answer, ensure_ascii=False))
            return
        for key, value in answer.items():
            out.print(f"{key}: {escape(str(value))}")

    @channel.command("stop")
    def stop(
        room: Room = DEFAULT_ROOM,
        end: Annotated[
            bool, typer.Option("--end", help="End the session too: the link stops working.")
        ] = False,
        as_json: Json = False,
    ) -> None:
        """Stop the room's host (the link is kept for a restart unless --end)."""
        paths = _paths(room, as_json)
        try:
            control.request(paths.socket, {"op": "stop", "end": end}, timeout=10)
        except (HostDown, TimeoutError):
            _fail(f"the host of room {room!r} is not running", as_json, "host_down")
        except ControlError as exc:
            _fail(exc.message, as_json, exc.code)
        # Return once the host has let go of the room, so a new host can start right away.
        from agent_socket.channel.lock import RoomLock

        lock = RoomLock(paths)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if lock.acquire():
                lock.release()
                break
            time.sleep(0.1)
        if as_json:
            print(json.dumps({"ok": True, "ended": end}))
        else:
            err.print("stopped" + (" and ended the link" if end else ""))

    @channel.command("join")
    def join(
        link: Annotated[str, typer.Argument(help="The room's link (…/agents.md).")],
        name: Annotated[str, typer.Option("--name", "-n", help="Your name in the room.")],
        wait: Annotated[
            float, typer.Option("--wait", help="Long-poll seconds (the host caps it).")
        ] = DEFAULT_WAIT_CAP,
        as_json: Json = False,
    ) -> None:
        """Join a room hosted anywhere: print its messages, send the lines you type."""
        from agent_socket.agent import AgentSocketError
        from agent_socket.channel.join import run_join

        try:
            check_name(name)
        except ChannelError as exc:
            _fail(exc.message, as_json, exc.code, 2)

        def notice(text: str) -> None:
            if not as_json:
                err.print(f"[dim]({escape(text)})[/]")

        if not as_json:
            err.print(f"Joined as {escape(name)}. Type a message and press Enter; Ctrl-D leaves.")
        try:
            asyncio.run(run_join(link, name, wait, lambda m: _print_message(m, as_json), notice))
        except KeyboardInterrupt:
            pass
        except AgentSocketError as exc:
            _fail(str(exc), as_json, exc.code)
        except ValueError as exc:
            _fail(str(exc), as_json, "bad_link", 2)
