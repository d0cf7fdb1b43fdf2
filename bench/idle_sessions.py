"""Open N registered app sessions from one process and keep them alive with heartbeats.

Each session is its own WebSocket: ``register`` with ``--tools`` tools and an agents.md of
``--agents-md-bytes``, then one ``mint_agent_token``. Once all are open it prints
``{"event": "opened", …}`` on stdout and starts the SDK heartbeat: every session sends the exact
``{"type":"ping","id":"as_hb"}`` every ``--ping-interval`` seconds, the sessions' phases spread
evenly over the interval (so the relay sees N / interval pings per second, as with N real apps).
After ``--duration`` seconds of heartbeats it prints ``{"event": "done", …}`` and keeps the
sockets open until its stdin closes (the runner measures the relay meanwhile).

Before the N measured sessions it opens ``--warm`` sessions, prints ``{"event": "warm"}`` and
waits for a line on stdin, so the runner can read the relay's memory in between.

    python bench/idle_sessions.py --url ws://127.0.0.1:8787/v1/_ws --sessions 5000
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import time
from typing import Any

import orjson
import uvloop
from websockets.asyncio.client import ClientConnection, connect

HEARTBEAT_PING = '{"type":"ping","id":"as_hb"}'
HEARTBEAT_PONG = '{"type":"pong","id":"as_hb"}'


def raise_fd_limit(wanted: int) -> int:
    """Raise the soft open-files limit towards ``wanted`` (up to the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        return target
    return soft


def registration(index: int, tools: int, agents_md_bytes: int) -> str:
    doc_head = f"# Idle app {index}\n\nOperating notes for the bench. "
    filler = "Lorem ipsum dolor sit amet, consectetur adipiscing elit. "
    doc = (doc_head + filler * (agents_md_bytes // len(filler) + 1))[:agents_md_bytes]
    frame = {
        "type": "register",
        "appId": f"idle-{index}",
        "appDescription": "An idle app of the agent-socket bench.",
        "agentsMd": doc,
        "tools": [
            {
                "method": "POST",
                "path": f"/tool{t}",
                "description": f"Tool number {t} of the idle bench app.",
                "input_schema": {"type": "object", "properties": {"n": {"type": "integer"}}},
            }
            for t in range(tools)
        ],
    }
    return orjson.dumps(frame).decode()


class Sessions:
    def __init__(self, url: str, tools: int, agents_md_bytes: int) -> None:
        self.url = url
        self.tools = tools
        self.agents_md_bytes = agents_md_bytes
        self.sockets: list[ClientConnection] = []
        self.readers: list[asyncio.Task[None]] = []
        self.failed = 0
        self.pongs = 0
        self.pings = 0
        self.closed = 0

    async def _reply(self, ws: ClientConnection, reply_type: str) -> dict[str, Any]:
        while True:
            frame = orjson.loads(await ws.recv())
            if frame.get("type") == reply_type:
                return dict(frame)

    async def open_one(self, index: int, gate: asyncio.Semaphore) -> None:
        async with gate:
            try:
                ws = await connect(
                    self.url,
                    compression=None,
                    ping_interval=None,
                    open_timeout=60,
                    close_timeout=1,
                    max_queue=4,
                )
                await ws.send(registration(index, self.tools, self.agents_md_bytes))
                if not (await self._reply(ws, "register_reply")).get("ok"):
                    raise RuntimeError("register refused")
                await ws.send('{"type":"mint_agent_token","id":"m","label":"idle"}')
                if not (await self._reply(ws, "mint_agent_token_reply")).get("ok"):
                    raise RuntimeError("mint refused")
            except Exception as exc:  # counted and reported, not fatal
                self.failed += 1
                if self.failed <= 3:
                    print(f"idle_sessions: session {index}: {exc!r}", file=sys.stderr)
                return
        self.sockets.append(ws)
        self.readers.append(asyncio.create_task(self._read(ws)))

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for message in ws:
                if message == HEARTBEAT_PONG:
                    self.pongs += 1
        except Exception:  # a dropped socket is counted below
            pass
        self.closed += 1

    async def heartbeats(self, interval: float, duration: float) -> None:
        """Ping every socket once per ``interval``, phases spread evenly, for ``duration``."""
        count = len(self.sockets)
        if count == 0:
            await asyncio.sleep(duration)
            return
        loop = asyncio.get_running_loop()
        start = loop.time()
        step = interval / count
        k = 0
        while True:
            now = loop.time()
            if now - start >= duration:
                return
            while start + k * step <= now:
                ws = self.sockets[k % count]
                k += 1
                try:
                    await ws.send(HEARTBEAT_PING)
                    self.pings += 1
                except Exception:  # a closed socket counts in `closed`
                    pass
            await asyncio.sleep(max(0.0, start + k * step - loop.time()))


def emit(**fields: Any) -> None:
    sys.stdout.write(orjson.dumps(fields).decode() + "\n")
    sys.stdout.flush()


async def run(args: argparse.Namespace) -> None:
    raise_fd_limit(args.sessions + args.warm + 1024)
    loop = asyncio.get_running_loop()
    sessions = Sessions(args.url, args.tools, args.agents_md_bytes)
    gate = asyncio.Semaphore(args.concurrency)
    # A few sessions first, so the relay's one-time costs (lazy imports, buffers, caches) are
    # paid before the runner's "before" memory reading; then, on its "go", the measured ones.
    await asyncio.gather(*(sessions.open_one(i, gate) for i in range(args.warm)))
    emit(event="warm", sessions=len(sessions.sockets), failed=sessions.failed)
    await loop.run_in_executor(None, sys.stdin.readline)
    warm = len(sessions.sockets)
    started = time.perf_counter()
    indices = range(args.warm, args.warm + args.sessions)
    await asyncio.gather(*(sessions.open_one(i, gate) for i in indices))
    opened_s = time.perf_counter() - started
    emit(
        event="opened",
        sessions=len(sessions.sockets) - warm,
        failed=sessions.failed,
        seconds=opened_s,
    )
    await sessions.heartbeats(args.ping_interval, args.duration)
    emit(event="done", pings=sessions.pings, pongs=sessions.pongs, closed=sessions.closed)
    # Keep the sessions open until the runner is done measuring (it closes our stdin).
    await loop.run_in_executor(None, sys.stdin.read)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--url", required=True, help="the relay's ws://…/v1/_ws")
    parser.add_argument("--sessions", type=int, default=5000)
    parser.add_argument("--tools", type=int, default=5)
    parser.add_argument("--agents-md-bytes", type=int, default=2048)
    parser.add_argument("--ping-interval", type=float, default=25.0)
    parser.add_argument("--duration", type=float, default=35.0, help="seconds of heartbeats")
    parser.add_argument("--concurrency", type=int, default=64, help="handshakes at once")
    parser.add_argument("--warm", type=int, default=50, help="sessions opened before 'go'")
    args = parser.parse_args()
    uvloop.run(run(args))


if __name__ == "__main__":
    main()
