"""The room's operations — send, recv, peers — over the live room and its durable log.

Used alike by the relay tools (:mod:`.host`) and the local control socket (:mod:`.control`).
Each message is written to SQLite *before* it is published to the live room, and both happen
in the same synchronous step on the host's event loop, so:

- a reader never sees a message the log would lose on a crash, and
- seqs are published in order with no gap (see :mod:`.core` for why no cursor skips one).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agent_socket.channel.core import (
    DEFAULT_WINDOW,
    ChannelError,
    Message,
    Room,
    check_name,
    check_text,
)
from agent_socket.channel.store import Store

#: Default long-poll cap in seconds: below the relay's 30 s sync timeout, with room to spare.
DEFAULT_WAIT_CAP = 25.0

Listener = Callable[[Message], None]
log = logging.getLogger("agent_socket.channel")


def _quietly(listener: Callable[[Any], None], arg: Any) -> None:
    """Call a display listener; its failure (e.g. a closed stdout) must not fail the send."""
    try:
        listener(arg)
    except Exception:
        log.debug("channel listener failed", exc_info=True)


@dataclass(frozen=True, slots=True)
class Sent:
    """What a send did: the message and how many other long-polls it woke."""

    message: Message
    delivered_to_active: int

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": True,
            "seq": self.message.seq,
            "delivered_to_active": self.delivered_to_active,
        }


class Channel:
    """One room: its live window (:class:`Room`) kept in step with its log (:class:`Store`).

    ``wait_cap`` bounds every long-poll (keep it below the relay's sync timeout, or agents get
    ``504``). ``listeners`` are told of every published message (the host's activity display).
    """

    def __init__(
        self, store: Store, *, window: int = DEFAULT_WINDOW, wait_cap: float = DEFAULT_WAIT_CAP
    ) -> None:
        self.store = store
        self.window = window
        self.wait_cap = wait_cap
        self.room = Room(window=window, history=store.tail(window))
        self.listeners: list[Listener] = []
        self.peer_listeners: list[Callable[[str], None]] = []

    def _publish(self, msg: Message) -> None:
        self.room.publish(msg)
        for listener in self.listeners:
            _quietly(listener, msg)

    def _seen(self, name: str | None) -> None:
        if name is not None and self.room.is_new_peer(name):
            for listener in self.peer_listeners:
                _quietly(listener, name)
        self.room.touch(name)

    def send(self, name: str, text: str, *, awaiting: bool = False) -> Sent:
        """Append a message and wake the waiters.

        Raises :class:`ChannelError` ``bad_input`` for a bad name or empty text and
        ``message_too_large`` above 64 KiB of UTF-8.
        """
        check_name(name)
        check_text(text)
        self._seen(name)
        delivered = self.room.waiting_except(name)
        msg = self.room.make(name, text, awaiting=awaiting)
        self.store.append(msg, self.window)
        self._publish(msg)
        return Sent(msg, delivered)

    def drain_outbox(self) -> dict[int, int]:
        """Publish what local commands queued; ``{outbox_id: seq}`` of the moved messages."""
        moved = self.store.drain(self.room.latest_seq + 1, self.window)
        for _, msg in moved:
            self._seen(msg.sender)
            self._publish(msg)
        return {outbox_id: msg.seq for outbox_id, msg in moved}

    async def recv(
        self,
        name: str | None = None,
        since: int | None = None,
        wait: float | None = None,
        message: str | None = None,
    ) -> dict[str, Any]:
        """The ``/recv`` tool: read (or say, then wait for) messages.

        - no ``since``: the last 50 messages at once (``wait`` is ignored);
        - ``since``: newer messages at once, or wait for them up to ``wait`` seconds (default
          and maximum: the wait cap);
        - ``message`` (needs ``name``): publish it marked ``awaiting`` first, then wait as
          above; without ``since`` the wait starts right after the message.

        A caller never gets its own messages; ``latest_seq`` is the cursor to pass next.
        """
        if name is not None:
            check_name(name)
        self._seen(name)
        sent: Sent | None = None
        if message is not None:
            if name is None:
                raise ChannelError("bad_input", "invalid input: name: required with message")
            sent = self.send(name, message, awaiting=True)
            if since is None:
                since = sent.message.seq
        if since is None:
            result = self.room.scrollback(name).as_json()
        else:
            if since < 0:
                raise ChannelError("bad_input", "invalid input: since: must be 0 or more")
            limit = self.wait_cap if wait is None else max(0.0, min(wait, self.wait_cap))
            batch = await self.room.wait(name, since, limit)
            result = batch.as_json()
        if sent is not None:
            result["sent"] = sent.as_json()
        return result

    def peers(self) -> dict[str, Any]:
        """The ``/peers`` tool: everyone active in the last 5 minutes."""
        return {"peers": self.room.peers()}
