"""The room without I/O: a window of numbered messages, cursors, waiters and peers.

Every message gets the next sequence number (``seq``, 1, 2, 3 …) when it is published, and a
reader's cursor is the last ``seq`` it has seen. The no-skip guarantee rests on one invariant:

- **the retained messages are exactly the seqs ``first_seq … latest_seq`` with no gap**, and a
  seq becomes visible together with every smaller one. Publishing happens in one synchronous
  step on the host's event loop (no ``await`` between taking a seq and making it visible), so
  however many senders race, a reader that asks for ``seq > since`` gets a gap-free run, and
  the ``latest_seq`` it is given back is the last seq it was *shown or skipped on purpose* (its
  own messages). Passing that cursor next time can therefore never jump over a message.

Messages older than the window (``window`` messages, at least 1000 by default) are evicted; a
reader whose cursor fell behind the window is told how many it missed (``missed``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

#: Largest message text, in bytes of UTF-8 (``400 message_too_large`` above it).
MAX_TEXT_BYTES = 64 * 1024
#: Messages kept in the room (and in its durable log); older ones are evicted.
DEFAULT_WINDOW = 1000
#: Messages a ``recv`` without a cursor returns.
SCROLLBACK = 50
#: A peer is listed for this long after its last call.
PEER_TTL_S = 300.0
#: One ``recv`` answer holds at most this many messages / bytes of text; the cursor it returns
#: points at the last one included, so the rest come with the next call (nothing is skipped).
MAX_BATCH = 500
MAX_BATCH_BYTES = 1024 * 1024
#: A participant's name: short, printable, starting with a letter or digit.
NAME_RE = re.compile(r"^\w[\w .@+-]{0,39}$")


class ChannelError(Exception):
    """A refused operation; ``code``/``status`` become the tool's error answer."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def check_name(name: str) -> str:
    """``name`` if it is a valid participant name (1–40 word characters, spaces, ``.@+-``)."""
    if not NAME_RE.match(name) or name != name.strip():
        raise ChannelError(
            "bad_input",
            "invalid input: name: use 1-40 letters, digits, spaces or _.@+- "
            "(starting with a letter or digit)",
        )
    return name


def check_text(text: str) -> str:
    """``text`` if it is non-empty and at most :data:`MAX_TEXT_BYTES` of UTF-8."""
    if not text:
        raise ChannelError("bad_input", "invalid input: text: must not be empty")
    size = len(text.encode("utf-8", errors="surrogatepass"))
    if size > MAX_TEXT_BYTES:
        raise ChannelError(
            "message_too_large",
            f"the message is {size} bytes; the limit is {MAX_TEXT_BYTES} bytes of UTF-8",
        )
    return text


@dataclass(frozen=True, slots=True)
class Message:
    """One message. ``awaiting`` is true when the sender said it and then waited for replies."""

    seq: int
    sender: str
    text: str
    ts: float
    awaiting: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "from": self.sender,
            "text": self.text,
            "ts": round(self.ts, 3),
            "awaiting": self.awaiting,
        }


@dataclass(frozen=True, slots=True)
class Batch:
    """The answer to a read: the messages, the cursor to pass next, and how many were lost."""

    messages: tuple[Message, ...]
    latest_seq: int
    missed: int = 0

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "messages": [msg.as_json() for msg in self.messages],
            "latest_seq": self.latest_seq,
        }
        if self.missed:
            out["missed_messages"] = self.missed
        return out


@dataclass(slots=True)
class _Peer:
    last_active: float
    waiting: int = 0


@dataclass(slots=True)
class Room:
    """The live room: the message window, the peers and the long-polls waiting on it.

    Not thread-safe: the host drives it from one event loop. ``history`` (oldest first, gap-free)
    seeds the window after a restart so seqs continue where they stopped.
    """

    window: int = DEFAULT_WINDOW
    history: Iterable[Message] = ()
    clock: Callable[[], float] = time.monotonic
    _log: deque[Message] = field(init=False)
    _latest: int = field(init=False, default=0)
    _peers: dict[str, _Peer] = field(init=False, default_factory=dict)
    _waiting_anonymous: int = field(init=False, default=0)
    _changed: asyncio.Event = field(init=False, default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        if self.window < 1:
            raise ValueError("window must be at least 1")
        self._log = deque(maxlen=self.window)
        for msg in self.history:
            self.publish(msg)

    # -- the log ------------------------------------------------------------------------------

    @property
    def latest_seq(self) -> int:
        """The seq of the newest message (0 for an empty room)."""
        return self._latest

    @property
    def first_seq(self) -> int:
        """The seq of the oldest retained message (``latest_seq + 1`` when none is retained)."""
        return self._log[0].seq if self._log else self._latest + 1

    def make(
        self, sender: str, text: str, *, awaiting: bool = False, ts: float | None = None
    ) -> Message:
        """The next message, not yet published (the host persists it first, then publishes)."""
        return Message(self._latest + 1, sender, text, time.time() if ts is None else ts, awaiting)

    def publish(self, msg: Message) -> None:
        """Make ``msg`` visible and wake every waiter. Its seq must be the next one, or — for
        history after a restart — anything above the current latest (the window restarts there).
        """
        if msg.seq <= self._latest:
            raise ValueError(f"seq {msg.seq} is not after {self._latest}")
        if msg.seq != self._latest + 1:
            self._log.clear()  # a gap (older history evicted): the window restarts gap-free
        self._log.append(msg)
        self._latest = msg.seq
        self._changed.set()
        self._changed = asyncio.Event()

    def read(self, name: str | None, since: int) -> Batch:
        """Messages after ``since`` that ``name`` did not send, at most one batch.

        A cursor ahead of the room (a room rebuilt from scratch) is treated as ``latest_seq``. A
        cursor behind the window reads from the oldest retained message and reports how many
        fell out as ``missed``. The returned ``latest_seq`` covers the caller's own messages too.
        """
        since = min(max(since, 0), self._latest)
        first = self.first_seq
        missed = max(0, first - 1 - since)
        start = max(since + 1, first) - first  # index into the window
        picked: list[Message] = []
        size = 0
        cursor = since if missed == 0 else first - 1
        for msg in itertools.islice(self._log, start, None):
            if msg.sender != name or name is None:
                size += len(msg.text)
                if picked and (len(picked) >= MAX_BATCH or size > MAX_BATCH_BYTES):
                    break
                picked.append(msg)
            cursor = msg.seq
        return Batch(tuple(picked), cursor, missed)

    def scrollback(self, name: str | None, count: int = SCROLLBACK) -> Batch:
        """The last ``count`` messages ``name`` did not send; the cursor is ``latest_seq``."""
        picked: list[Message] = []
        for msg in reversed(self._log):
            if len(picked) >= count:
                break
            if name is None or msg.sender != name:
                picked.append(msg)
        picked.reverse()
        return Batch(tuple(picked), self._latest)

    async def wait(self, name: str | None, since: int, timeout: float) -> Batch:
        """Like :meth:`read`, but when nothing is new waits up to ``timeout`` seconds for it.

        Returns at once when there are messages; on timeout returns an empty batch whose
        cursor still moves past the caller's own messages. While it waits, ``name`` is listed
        as ``currently_waiting`` and counts in other senders' ``delivered_to_active``.
        Cancellation is safe: nothing is consumed by a waiter.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, timeout)
        with self._waiting(name):
            while True:
                batch = self.read(name, since)
                remaining = deadline - loop.time()
                if batch.messages or batch.missed or remaining <= 0:
                    return batch
                since = batch.latest_seq
                changed = self._changed
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(remaining):
                        await changed.wait()

    # -- peers --------------------------------------------------------------------------------

    def touch(self, name: str | None) -> None:
        """Note that ``name`` was active now (anonymous lurkers are not tracked)."""
        if name is None:
            return
        peer = self._peers.get(name)
        if peer is None:
            self._peers[name] = _Peer(self.clock())
        else:
            peer.last_active = self.clock()

    @contextlib.contextmanager
    def _waiting(self, name: str | None) -> Iterator[None]:
        self.touch(name)
        if name is None:
            self._waiting_anonymous += 1
        else:
            self._peers[name].waiting += 1
        try:
            yield
        finally:
            if name is None:
                self._waiting_anonymous -= 1
            else:
                self._peers[name].waiting -= 1
                self.touch(name)

    def waiting_except(self, name: str | None) -> int:
        """Open long-polls of everyone but ``name`` (lurkers included)."""
        named = sum(peer.waiting for key, peer in self._peers.items() if key != name)
        return named + self._waiting_anonymous

    def peers(self) -> list[dict[str, Any]]:
        """Peers active in the last :data:`PEER_TTL_S` seconds or waiting now, most recent first.

        Older peers are forgotten here, so the table stays as small as the active room.
        """
        now = self.clock()
        out: list[dict[str, Any]] = []
        for key, peer in list(self._peers.items()):
            idle = now - peer.last_active
            if peer.waiting <= 0 and idle > PEER_TTL_S:
                del self._peers[key]
                continue
            out.append(
                {
                    "name": key,
                    "last_active_s_ago": round(max(0.0, idle), 1),
                    "currently_waiting": peer.waiting > 0,
                }
            )
        out.sort(key=lambda item: item["last_active_s_ago"])
        return out

    def is_new_peer(self, name: str) -> bool:
        """True when ``name`` is not among the recently active peers (used to announce joins)."""
        peer = self._peers.get(name)
        return peer is None or (peer.waiting <= 0 and self.clock() - peer.last_active > PEER_TTL_S)
