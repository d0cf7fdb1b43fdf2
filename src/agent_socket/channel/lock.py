"""One host per room: an exclusive ``flock`` on the room's lock file (POSIX only)."""

from __future__ import annotations

import fcntl
import os

from agent_socket.channel.paths import RoomPaths


class RoomLock:
    """An exclusive ``flock`` on the room's lock file, held while the host runs.

    The kernel drops it when the process dies, so a crashed host never blocks the next one.
    """

    def __init__(self, paths: RoomPaths) -> None:
        self._path = paths.lock
        self._fd: int | None = None

    def acquire(self) -> bool:
        fd = os.open(self._path, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
