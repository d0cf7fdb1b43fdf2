"""``channel join LINK --name N``: a terminal client for a room hosted anywhere.

Prints the scrollback, then follows the room with long-polls while sending every line typed on
stdin. It holds the cursor (``latest_seq``) itself, so a host that is away for a while
(``503 app_offline``) or a long-poll the relay cut (``504``) is simply retried from the same
cursor — nothing is skipped or shown twice. EOF on stdin (Ctrl-D) or ``/quit`` leaves.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Callable
from typing import Any

from agent_socket.agent import (
    AgentClient,
    AgentSocketError,
    AppOfflineError,
    ToolTimeoutError,
)

#: Pause before retrying when the room is unreachable.
RETRY_S = 2.0

Printer = Callable[[dict[str, Any]], None]
Notice = Callable[[str], None]


def _stdin_lines(loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[str | None]) -> None:
    """Feed stdin lines into ``queue`` from a daemon thread (``None`` at EOF).

    A daemon thread, because a blocking read cannot be cancelled and must not keep the
    process alive after the user left.
    """

    def pump() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(queue.put_nowait, line.rstrip("\n"))
        loop.call_soon_threadsafe(queue.put_nowait, None)

    threading.Thread(target=pump, name="channel-join-stdin", daemon=True).start()


async def _receive(
    client: AgentClient, name: str, wait: float, show: Printer, notice: Notice
) -> None:
    since: int | None = None
    while True:
        body: dict[str, Any] = {"name": name}
        if since is not None:
            body.update(since=since, wait=wait)
        try:
            answer = await client.call("/recv", body)
        except (AppOfflineError, ToolTimeoutError) as exc:
            if isinstance(exc, AppOfflineError):
                notice("the room's host is offline; retrying…")
            await asyncio.sleep(RETRY_S if isinstance(exc, AppOfflineError) else 0)
            continue
        except AgentSocketError:
            raise
        except Exception as exc:  # network trouble: keep the cursor and try again
            notice(f"cannot reach the relay ({exc or type(exc).__name__}); retrying…")
            await asyncio.sleep(RETRY_S)
            continue
        if not isinstance(answer, dict):
            continue
        missed = int(answer.get("missed_messages") or 0)
        if missed:
            notice(f"{missed} older messages fell out of the room's window")
        for msg in answer.get("messages", []):
            show(msg)
        since = int(answer.get("latest_seq", since or 0))


async def _send_lines(client: AgentClient, name: str, notice: Notice) -> None:
    queue: asyncio.Queue[str | None] = asyncio.Queue()
    _stdin_lines(asyncio.get_running_loop(), queue)
    while True:
        line = await queue.get()
        if line is None or line.strip() == "/quit":
            return
        if not line.strip():
            continue
        try:
            await client.call("/send", {"name": name, "text": line})
        except AgentSocketError as exc:
            notice(f"not sent: {exc}")
        except Exception as exc:
            notice(f"not sent: {exc or type(exc).__name__}")


async def run_join(link: str, name: str, wait: float, show: Printer, notice: Notice) -> None:
    """Follow the room at ``link`` as ``name`` until stdin ends; raises on a bad link."""
    async with AgentClient(link, timeout=wait + 20) as client:
        receiver = asyncio.create_task(_receive(client, name, wait, show, notice))
        sender = asyncio.create_task(_send_lines(client, name, notice))
        done, _ = await asyncio.wait({receiver, sender}, return_when=asyncio.FIRST_COMPLETED)
        for task in (receiver, sender):
            task.cancel()
        await asyncio.gather(receiver, sender, return_exceptions=True)
        for task in done:
            error = None if task.cancelled() else task.exception()
            if error is not None:
                raise error
