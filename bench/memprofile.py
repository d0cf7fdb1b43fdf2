"""Where an idle session's memory goes: the relay in-process under tracemalloc.

Starts the relay in this process (uvicorn with the settings of ``relay/serve.py``), opens N
sessions from a separate ``bench/idle_sessions.py`` process (5 tools, 2 KB agents.md, one
token each), and prints the source lines that allocated the most memory per session. A
diagnostic for the "≤ 20 KiB per idle session" goal; not part of ``make bench``.

    .venv/bin/python bench/memprofile.py --sessions 1000
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import socket
import subprocess
import sys
import tracemalloc
from pathlib import Path

import orjson
import uvicorn
import uvloop

from agent_socket.protocol.limits import UTF8_BYTES_PER_UNIT
from agent_socket.relay.app import create_app
from agent_socket.relay.config import RelayConfig

BENCH = Path(__file__).resolve().parent


async def read_event(stream: asyncio.StreamReader, want: str) -> dict[str, object]:
    while True:
        line = await stream.readline()
        if not line:
            raise RuntimeError(f"idle_sessions exited before {want!r}")
        event = orjson.loads(line)
        if event.get("event") == want:
            return dict(event)


async def main(sessions: int, top: int, depth: int) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    config = RelayConfig(port=port, log_level="warning", ws_rate_limit=1_000_000)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(config),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            access_log=False,
            ws="websockets-sansio",
            ws_max_size=config.max_frame_units * UTF8_BYTES_PER_UNIT + 1024,
            ws_ping_interval=None,
            ws_ping_timeout=None,
            ws_per_message_deflate=False,
            lifespan="on",
        )
    )
    serving = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.05)
    client = await asyncio.create_subprocess_exec(
        sys.executable,
        str(BENCH / "idle_sessions.py"),
        "--url",
        f"ws://127.0.0.1:{port}/v1/_ws",
        "--sessions",
        str(sessions),
        "--duration",
        "1",
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert client.stdout is not None and client.stdin is not None
    await read_event(client.stdout, "warm")
    await asyncio.sleep(0.5)
    gc.collect()
    tracemalloc.start(depth)
    before = tracemalloc.take_snapshot()
    client.stdin.write(b"go\n")
    await client.stdin.drain()
    opened = await read_event(client.stdout, "opened")
    await asyncio.sleep(1.0)
    gc.collect()
    after = tracemalloc.take_snapshot()
    count = int(str(opened["sessions"]))
    stats = after.compare_to(before, "traceback" if depth > 1 else "lineno")
    traced = sum(stat.size_diff for stat in stats)
    # RSS here includes tracemalloc's own bookkeeping and the snapshots; read it from
    # bench/run.py instead. The traced sizes are what the relay's objects hold.
    print(f"{count} sessions: traced Python allocations +{traced / count / 1024:.1f} KiB/session")
    by_file: dict[str, int] = {}
    for stat in stats:
        name = stat.traceback[-1].filename
        name = name.split("site-packages/")[-1].split("/src/")[-1].split("/lib/python3")[-1]
        by_file[name] = by_file.get(name, 0) + stat.size_diff
    print("by file:")
    for name, size in sorted(by_file.items(), key=lambda item: -item[1])[:12]:
        print(f"{size / count:8.0f} B  {name}")
    print("by line:")
    for stat in stats[:top]:
        frames = stat.traceback.format()[-2 * depth :]
        where = " <- ".join(line.strip() for line in frames[::2][::-1])
        print(f"{stat.size_diff / count:8.0f} B  {stat.count_diff / count:5.1f} blocks  {where}")
    client.stdin.close()
    await client.wait()
    server.should_exit = True
    await serving


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--depth", type=int, default=1, help="traceback frames per entry")
    args = parser.parse_args()
    uvloop.run(main(args.sessions, args.top, args.depth))
