"""The local commands' side of a room: talk to the host when it runs, use the log when not.

- :func:`send` queues the message in the room's outbox (one SQLite transaction), then asks the
  host to publish it. Host down: the message stays queued and the next host publishes it.
- :func:`recv` asks the host (which can wait for new messages); host down: reads the log.
- :func:`follow` is ``channel watch``: it keeps a cursor across host restarts and prints each
  seq at most once.
"""

from __future__ import annotations

import getpass
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from agent_socket.channel import control
from agent_socket.channel.control import HostDown
from agent_socket.channel.core import NAME_RE, Room, check_text
from agent_socket.channel.paths import RoomPaths
from agent_socket.channel.service import DEFAULT_WAIT_CAP
from agent_socket.channel.store import Store

#: Extra seconds a command waits for the host beyond the long-poll itself.
ANSWER_SLACK_S = 15.0
#: How often ``watch`` looks at the log while the host is down.
OFFLINE_POLL_S = 0.5


def default_name(store: Store | None) -> str:
    """The local participant's name: the host's ``--name``, else the login name."""
    saved = store.get("name") if store is not None else None
    if saved:
        return saved
    try:
        user = getpass.getuser()
    except Exception:  # no login name (containers): a neutral default
        user = "me"
    user = re.sub(r"[^\w.@+-]", "-", user)[:40] or "me"
    return user if NAME_RE.match(user) else "me"


def offline_read(store: Store, name: str | None, since: int | None) -> dict[str, Any]:
    """What ``/recv`` would answer, from the log alone (no waiting)."""
    rows = store.tail(1_000_000)
    room = Room(window=max(1, len(rows)), history=rows)
    batch = room.scrollback(name) if since is None else room.read(name, since)
    return batch.as_json()


@dataclass(frozen=True, slots=True)
class SendResult:
    queued: bool
    outbox_id: int
    seq: int | None = None
    delivered_to_active: int = 0

    def as_json(self) -> dict[str, Any]:
        if self.queued:
            return {"ok": True, "queued": True, "outbox_id": self.outbox_id}
        return {"ok": True, "seq": self.seq, "delivered_to_active": self.delivered_to_active}


def send(paths: RoomPaths, store: Store, name: str, text: str) -> SendResult:
    """Queue ``text`` from ``name`` and have the host publish it if it runs.

    Raises :class:`~.core.ChannelError` for empty or oversized text (nothing is queued then).
    """
    check_text(text)
    outbox_id = store.queue(name, text)
    try:
        answer = control.request(
            paths.socket,
            {"op": "send", "outbox_id": outbox_id, "name": name},
            timeout=ANSWER_SLACK_S,
        )
    except (HostDown, TimeoutError):
        seq = store.seq_of_outbox(outbox_id)  # the host may have published it after all
        return SendResult(seq is None, outbox_id, seq)
    seq = answer.get("seq")
    return SendResult(
        False,
        outbox_id,
        int(seq) if seq is not None else None,
        int(answer.get("delivered_to_active") or 0),
    )


def recv(
    paths: RoomPaths, store: Store, name: str | None, since: int | None, wait: float
) -> tuple[dict[str, Any], bool]:
    """``(answer, host_running)`` — from the host, or from the log when it is down."""
    payload = {"op": "recv", "name": name, "since": since, "wait": wait}
    try:
        return control.request(paths.socket, payload, timeout=wait + ANSWER_SLACK_S), True
    except (HostDown, TimeoutError):
        return offline_read(store, name, since), False


def follow(
    paths: RoomPaths,
    store: Store,
    *,
    on_host: Callable[[bool], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[dict[str, Any]]:
    """Every message of the room, once each and in order, starting with the last 50.

    Follows the host's long-poll while it runs and the log while it does not (messages queued
    meanwhile appear when a host publishes them); the cursor survives host restarts, and a seq
    at or below the last one yielded is never yielded again. ``on_host(running)`` is called
    when the host comes or goes.
    """
    since: int | None = None
    last = 0
    running: bool | None = None
    while True:
        answer, up = recv(paths, store, None, since, DEFAULT_WAIT_CAP)
        if up != running:
            running = up
            if on_host is not None:
                on_host(up)
        for msg in answer.get("messages", []):
            if int(msg["seq"]) > last:
                last = int(msg["seq"])
                yield msg
        since = int(answer.get("latest_seq", since or 0))
        if not up and not answer.get("messages"):
            sleep(OFFLINE_POLL_S)
