"""The room on disk: one SQLite file holding the message log, the outbox and a few settings.

- ``messages`` — the durable log, pruned to the room's window. The host is its only writer.
- ``outbox`` — messages written by local commands (``channel send``). A command commits its row
  in one transaction, so a message is either wholly queued or not at all; the host moves rows
  into ``messages`` in one transaction (insert + delete), so each is published exactly once,
  whether the host was running at the time or starts later.
- ``meta`` — settings and state that survive a restart: the link, the resume state (a
  credential: the file is created ``0600`` in a ``0700`` directory), local read cursors.

WAL mode lets commands read the log while the host writes it; every connection waits up to
``busy_timeout`` for a lock instead of failing.
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path
from typing import Any

from agent_socket.channel.core import Message

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY,
    sender TEXT NOT NULL,
    text TEXT NOT NULL,
    ts REAL NOT NULL,
    awaiting INTEGER NOT NULL DEFAULT 0,
    outbox_id INTEGER UNIQUE
);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sender TEXT NOT NULL,
    text TEXT NOT NULL,
    ts REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

#: How long a connection waits for another's write lock before giving up, in seconds.
BUSY_TIMEOUT_S = 10.0


def _row_message(row: tuple[Any, ...]) -> Message:
    return Message(int(row[0]), str(row[1]), str(row[2]), float(row[3]), bool(row[4]))


class Store:
    """One room's SQLite file. Open it with :meth:`open`; close it with :meth:`close`."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path

    @classmethod
    def open(cls, path: Path) -> Store:
        """Open (creating if needed) the room file at ``path``, private to the user."""
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not path.exists():
            # Create it private before SQLite writes anything secret into it.
            fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
            os.close(fd)
        conn = sqlite3.connect(
            path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.executescript(_SCHEMA)
        return cls(conn, path)

    def close(self) -> None:
        self._conn.close()

    # -- the log ------------------------------------------------------------------------------

    def tail(self, count: int) -> list[Message]:
        """The newest ``count`` messages, oldest first."""
        rows = self._conn.execute(
            "SELECT seq, sender, text, ts, awaiting FROM messages ORDER BY seq DESC LIMIT ?",
            (count,),
        ).fetchall()
        return [_row_message(row) for row in reversed(rows)]

    def after(self, since: int, limit: int) -> list[Message]:
        """Up to ``limit`` messages with ``seq > since``, oldest first."""
        rows = self._conn.execute(
            "SELECT seq, sender, text, ts, awaiting FROM messages WHERE seq > ? "
            "ORDER BY seq LIMIT ?",
            (since, limit),
        ).fetchall()
        return [_row_message(row) for row in rows]

    def bounds(self) -> tuple[int, int]:
        """``(first_seq, latest_seq)`` of the stored log; ``(1, 0)`` when it is empty."""
        row = self._conn.execute("SELECT MIN(seq), MAX(seq) FROM messages").fetchone()
        if row is None or row[1] is None:
            return 1, 0
        return int(row[0]), int(row[1])

    def append(self, msg: Message, window: int) -> None:
        """Persist ``msg`` and drop what fell out of the window, in one transaction."""
        with self._transaction():
            self._insert(msg, None)
            self._conn.execute("DELETE FROM messages WHERE seq <= ?", (msg.seq - window,))

    def _insert(self, msg: Message, outbox_id: int | None) -> None:
        self._conn.execute(
            "INSERT INTO messages (seq, sender, text, ts, awaiting, outbox_id) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (msg.seq, msg.sender, msg.text, msg.ts, int(msg.awaiting), outbox_id),
        )

    # -- the outbox ---------------------------------------------------------------------------

    def queue(self, sender: str, text: str) -> int:
        """Queue a message for the host (committed before this returns); its outbox id."""
        with self._transaction():
            cur = self._conn.execute(
                "INSERT INTO outbox (sender, text, ts) VALUES (?, ?, ?)",
                (sender, text, time.time()),
            )
        return int(cur.lastrowid or 0)

    def drain(self, next_seq: int, window: int) -> list[tuple[int, Message]]:
        """Move every queued message into the log, in one transaction, oldest first.

        The messages are numbered from ``next_seq`` on. Returns ``(outbox_id, message)`` pairs
        for the caller to publish in that order; on an error nothing moves.
        """
        moved: list[tuple[int, Message]] = []
        if self._conn.execute("SELECT 1 FROM outbox LIMIT 1").fetchone() is None:
            return moved  # the common case: no write lock taken every poll
        with self._transaction():
            rows = self._conn.execute(
                "SELECT id, sender, text, ts FROM outbox ORDER BY id"
            ).fetchall()
            for offset, (outbox_id, sender, text, ts) in enumerate(rows):
                msg = Message(next_seq + offset, str(sender), str(text), float(ts))
                self._insert(msg, int(outbox_id))
                self._conn.execute("DELETE FROM outbox WHERE id = ?", (outbox_id,))
                moved.append((int(outbox_id), msg))
            if moved:
                self._conn.execute(
                    "DELETE FROM messages WHERE seq <= ?", (moved[-1][1].seq - window,)
                )
        return moved

    def seq_of_outbox(self, outbox_id: int) -> int | None:
        """The seq a queued message got, once the host has published it (else ``None``)."""
        row = self._conn.execute(
            "SELECT seq FROM messages WHERE outbox_id = ?", (outbox_id,)
        ).fetchone()
        return int(row[0]) if row else None

    def queued(self) -> int:
        """How many messages wait in the outbox."""
        row = self._conn.execute("SELECT COUNT(*) FROM outbox").fetchone()
        return int(row[0]) if row else 0

    # -- settings -----------------------------------------------------------------------------

    def get(self, key: str) -> str | None:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return str(row[0]) if row else None

    def set(self, key: str, value: str | None) -> None:
        """Set (or with ``None`` delete) a setting, committed before this returns."""
        with self._transaction():
            if value is None:
                self._conn.execute("DELETE FROM meta WHERE key = ?", (key,))
            else:
                self._conn.execute(
                    "INSERT INTO meta (key, value) VALUES (?, ?) "
                    "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    (key, value),
                )

    # -- internals ----------------------------------------------------------------------------

    def _transaction(self) -> _Transaction:
        return _Transaction(self._conn)


class _Transaction:
    """``BEGIN IMMEDIATE`` … ``COMMIT`` (``ROLLBACK`` on an exception).

    IMMEDIATE takes the write lock up front, so two writers queue on ``busy_timeout`` instead of
    one failing with "database is locked" when it upgrades a read lock.
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def __enter__(self) -> None:
        self._conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self._conn.execute("COMMIT")
        else:
            self._conn.execute("ROLLBACK")
