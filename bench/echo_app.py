"""The bench app: one WebSocket to the relay, answering tool calls as fast as it can.

It speaks the protocol directly with the ``websockets`` asyncio client and orjson (no SDK in the
way): ``register`` two tools, ``mint_agent_token``, print ``{"token": …}`` as one JSON line on
stdout, then answer every ``tool_call`` until it is terminated:

* ``POST /echo``  — ``tool_reply`` 200 with the call's body sent back as-is (JSON content-type);
* ``POST /async`` — ``tool_reply`` 202 with a fresh ``taskId``, then ``task_complete``
  ``--task-delay-ms`` later (default 0: right behind the 202, which the relay must not lose).

It sends the SDK's exact heartbeat every 25 s so the relay never times it out.

    python bench/echo_app.py --url ws://127.0.0.1:8787/v1/_ws
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import sys
from typing import Any

import orjson
import uvloop
from websockets.asyncio.client import ClientConnection, connect

HEARTBEAT_PING = '{"type":"ping","id":"as_hb"}'
HEARTBEAT_PONG = b'{"type":"pong","id":"as_hb"}'
HEARTBEAT_S = 25.0

TOOLS = [
    {"method": "POST", "path": "/echo", "description": "Send the request body back."},
    {"method": "POST", "path": "/async", "description": "202 + task_complete at once."},
]
_JSON_HEADERS = {"content-type": "application/json"}
_DONE = {"done": True}


async def _expect(ws: ClientConnection, reply_type: str) -> dict[str, Any]:
    while True:
        frame = orjson.loads(await ws.recv(decode=False))
        if isinstance(frame, dict) and frame.get("type") == reply_type:
            if not frame.get("ok"):
                raise SystemExit(f"echo app: {reply_type} failed: {frame}")
            return frame


async def _heartbeat(ws: ClientConnection) -> None:
    while True:
        await asyncio.sleep(HEARTBEAT_S)
        await ws.send(HEARTBEAT_PING)


async def serve(url: str, task_delay_s: float) -> None:
    loop = asyncio.get_running_loop()
    completing: set[asyncio.Task[None]] = set()

    async def complete(task_id: str) -> None:
        await asyncio.sleep(task_delay_s)
        done = {"type": "task_complete", "taskId": task_id, "status": 200, "body": _DONE}
        await ws.send(orjson.dumps(done), text=True)

    async with connect(
        url, max_size=None, compression=None, ping_interval=None, close_timeout=1
    ) as ws:
        register = {
            "type": "register",
            "appId": "bench-echo",
            "agentsMd": "# Bench echo\nPOST /echo sends the body back.\n",
            "tools": TOOLS,
        }
        await ws.send(orjson.dumps(register).decode())
        await _expect(ws, "register_reply")
        await ws.send('{"type":"mint_agent_token","id":"m1","label":"bench"}')
        minted = await _expect(ws, "mint_agent_token_reply")
        sys.stdout.write(orjson.dumps({"token": minted["token"]}).decode() + "\n")
        sys.stdout.flush()
        heartbeat = asyncio.create_task(_heartbeat(ws))
        task_ids = itertools.count(1)
        dumps, loads, send = orjson.dumps, orjson.loads, ws.send
        try:
            while True:
                raw = await ws.recv(decode=False)
                if raw == HEARTBEAT_PONG:
                    continue
                frame = loads(raw)
                if frame.get("type") != "tool_call":
                    continue
                if frame["path"] == "/async":
                    task_id = f"t{next(task_ids)}"
                    reply = {"type": "tool_reply", "id": frame["id"], "status": 202}
                    reply["taskId"] = task_id
                    await send(dumps(reply), text=True)
                    pending = loop.create_task(complete(task_id))
                    completing.add(pending)
                    pending.add_done_callback(completing.discard)
                    continue
                reply = {
                    "type": "tool_reply",
                    "id": frame["id"],
                    "status": 200,
                    "headers": _JSON_HEADERS,
                    "body": frame["body"],
                }
                await send(dumps(reply), text=True)
        finally:
            heartbeat.cancel()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--url", required=True, help="the relay's ws://…/v1/_ws")
    parser.add_argument("--task-delay-ms", type=float, default=0.0)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(serve(args.url, args.task_delay_ms / 1000))


if __name__ == "__main__":
    main()
