"""Where a room lives on disk.

``$AGENT_SOCKET_CHANNEL_DIR`` (tests point it at a tmp dir) or the user's data directory
(platformdirs, e.g. ``~/.local/share/agent-socket/channel``) holds one directory per room::

    rooms/<room>/room.db      the log, outbox and settings (SQLite)
    rooms/<room>/host.lock    held (flock) while a host runs
    rooms/<room>/control.sock the host's local control socket

Directories are created ``0700``: the socket and the database are the user's alone.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import platformdirs

#: Room names: what fits safely in a path and a prompt.
ROOM_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
DEFAULT_ROOM = "default"
ENV_DIR = "AGENT_SOCKET_CHANNEL_DIR"
#: A Unix socket path must fit in sun_path (108 bytes on Linux, 104 on macOS).
_MAX_SOCKET_PATH = 100


def data_dir() -> Path:
    """The channel data directory (``$AGENT_SOCKET_CHANNEL_DIR`` wins)."""
    override = os.environ.get(ENV_DIR)
    if override:
        return Path(override).expanduser()
    return Path(platformdirs.user_data_dir("agent-socket", appauthor=False)) / "channel"


@dataclass(frozen=True, slots=True)
class RoomPaths:
    """The files of one room."""

    name: str
    dir: Path

    @property
    def db(self) -> Path:
        return self.dir / "room.db"

    @property
    def lock(self) -> Path:
        return self.dir / "host.lock"

    @property
    def socket(self) -> Path:
        """The control socket; a short stand-in under the temp dir when the path is too long."""
        path = self.dir / "control.sock"
        if len(os.fsencode(path)) <= _MAX_SOCKET_PATH:
            return path
        digest = hashlib.sha256(os.fsencode(path)).hexdigest()[:20]
        return Path(tempfile.gettempdir()) / f"agent-socket-{os.getuid()}" / f"{digest}.sock"

    def ensure(self) -> None:
        """Create the room directory (and the socket's directory) private to the user."""
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.socket.parent.mkdir(parents=True, exist_ok=True, mode=0o700)

    def exists(self) -> bool:
        return self.db.exists()


def room_paths(room: str = DEFAULT_ROOM) -> RoomPaths:
    """The paths of ``room``; ``ValueError`` for a name that is not ``[A-Za-z0-9_.-]{1,64}``."""
    if not ROOM_RE.match(room) or room in (".", ".."):
        raise ValueError(f"room name {room!r} must match [A-Za-z0-9_.-]{{1,64}}")
    return RoomPaths(room, data_dir() / "rooms" / room)
