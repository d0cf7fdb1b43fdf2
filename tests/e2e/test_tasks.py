"""Async tool calls: tasks started by a 202 reply and polled at ``$BASE/_as_tasks/<taskId>``.

PROTOCOL.md §2.4 (all of it), with §3.3 (task_complete) and §4 (tasks across a resume and the end
of a session).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx2
import pytest
from websockets.asyncio.client import connect

from tests.e2e.checks import JSON_CT, PLAIN_CT, assert_error, assert_sandboxed, media
from tests.e2e.wire import App, recv_type, register_frame, registered_app, send

KIB64 = 64 * 1024


def script_handler(call: dict[str, Any]) -> dict[str, Any] | None:
    """POST /script answers with the reply the agent put in its body."""
    return json.loads(call["body"])["reply"]


TOOLS = [{"method": "POST", "path": "/script", "description": "reply as told"}]


def scripted(reply: dict[str, Any]) -> bytes:
    return json.dumps({"reply": reply}).encode()


async def start_task(client: httpx2.AsyncClient, base: str, task_id: Any) -> httpx2.Response:
    reply = {"status": 202, "taskId": task_id, "body": {"ignored": True}}
    return await client.post(f"{base}/script", content=scripted(reply))


_sync_ids = iter(range(1_000_000))


async def complete(app: App, task_id: str, **fields: Any) -> None:
    """Send task_complete, then a ping. The pong means the relay has read the frame, and it being
    the very next frame means task_complete got no answer of any kind (it has no reply, §3.3)."""
    assert app.frames.empty()
    ping_id = f"sync-{next(_sync_ids)}"
    await send(app.ws, {"type": "task_complete", "taskId": task_id, **fields})
    await send(app.ws, {"type": "ping", "id": ping_id})
    frame = await asyncio.wait_for(app.frames.get(), 10)
    assert frame == {"type": "pong", "id": ping_id}


async def poll_until_done(
    client: httpx2.AsyncClient, base: str, task_id: str, timeout: float = 15
) -> httpx2.Response:
    """Poll until the task is no longer pending (the relay may apply frames asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        resp = await client.get(f"{base}/_as_tasks/{task_id}")
        if resp.status_code != 202 or resp.json() != {"taskId": task_id, "completed": False}:
            return resp
        assert time.monotonic() < deadline, f"task {task_id} still pending"
        await asyncio.sleep(0.02)


async def assert_still_pending(client: httpx2.AsyncClient, base: str, task_id: str) -> None:
    """After a dropped task_complete the task is still pending (and stays so a moment later)."""
    await asyncio.sleep(0.2)
    resp = await client.get(f"{base}/_as_tasks/{task_id}")
    assert resp.status_code == 202, resp.text
    assert resp.json() == {"taskId": task_id, "completed": False}


async def debug_state(client: httpx2.AsyncClient, relay: Any, sid: str) -> dict[str, Any]:
    resp = await client.get(f"{relay.http}/_debug/state/{sid}")
    assert resp.status_code == 200, resp.text
    return resp.json()


# --- start, poll, complete, deliver once ---------------------------------------------------


async def test_task_lifecycle(relay: Any) -> None:
    async with registered_app(relay, script_handler, tools=TOOLS) as app:
        base = await app.mint()
        async with httpx2.AsyncClient(timeout=15) as client:
            start = await start_task(client, base, "job-1")
            pending = await client.get(f"{base}/_as_tasks/job-1")
            pending_again = await client.get(f"{base}/_as_tasks/job-1")
            await complete(app, "job-1", status=200, body={"done": True, "n": [1, 2]})
            done = await poll_until_done(client, base, "job-1")
            gone = await client.get(f"{base}/_as_tasks/job-1")
    assert start.status_code == 202
    assert start.json() == {"taskId": "job-1"}
    assert media(start.headers["content-type"]) == media(JSON_CT)
    assert_sandboxed(start)
    for resp in (pending, pending_again):
        assert resp.status_code == 202
        assert resp.json() == {"taskId": "job-1", "completed": False}
    assert done.status_code == 200
    assert done.json() == {"done": True, "n": [1, 2]}
    assert media(done.headers["content-type"]) == media(JSON_CT)
    assert_sandboxed(done)
    assert_error(gone, 404, "not_found")


@pytest.mark.parametrize("status", [200, 201, 400, 404, 500, 599])
async def test_task_result_status_is_delivered(relay: Any, status: int) -> None:
    async with registered_app(relay, script_handler, tools=TOOLS) as app:
        base = await app.mint()
        async with httpx2.AsyncClient(timeout=15) as client:
            assert (await start_task(client, base, "s")).status_code == 202
            await complete(app, "s", status=status, body={"status": status})
            done = await poll_until_done(client, base, "s")
            gone = await client.get(f"{base}/_as_tasks/s")
    assert done.status_code == status
    assert done.json() == {"status": status}
    assert_sandboxed(done)
    assert_error(gone, 404, "not_found")


async def test_task_result_is_built_like_a_tool_reply(relay: Any) -> None:
    async with registered_app(relay, script_handler, tools=TOOLS) as app:
        base = await app.mint()
        async with httpx2.AsyncClient(timeout=15) as client:
            for tid in ("csv", "html", "svg", "nobody", "string"):
                assert (await start_task(client, base, tid)).status_code == 202
            await complete(
                app, "csv", status=200, headers={"Content-Type": "text/csv"}, body="a,b\n1,2"
            )
            await complete(
                app, "html", status=200, headers={"content-type": "text/html"}, body="<script>"
            )
            await complete(
                app,
                "svg",
                status=200,
                headers={"CONTENT-TYPE": " Image/SVG+xml ; charset=utf-8"},
                body="<svg/>",
            )
            await complete(app, "nobody", status=201)
            await complete(app, "string", status=200, body="just a string")
            csv = await poll_until_done(client, base, "csv")
            html = await poll_until_done(client, base, "html")
            svg = await poll_until_done(client, base, "svg")
            nobody = await poll_until_done(client, base, "nobody")
            string = await poll_until_done(client, base, "string")
    assert csv.status_code == 200
    assert csv.headers["content-type"] == "text/csv"
    assert csv.text == "a,b\n1,2"
    for resp, body in ((html, "<script>"), (svg, "<svg/>")):
        assert resp.status_code == 200
        assert resp.headers["content-type"] == PLAIN_CT
        assert resp.text == body
    assert nobody.status_code == 201
    assert nobody.content == b""
    assert string.json() == "just a string"
    assert media(string.headers["content-type"]) == media(JSON_CT)
    for resp in (csv, html, svg, nobody, string):
        assert_sandboxed(resp)


async def test_task_poll_ignores_query_and_csrf(relay: Any) -> None:
    """_as_tasks is a meta path: exempt from CSRF, query string ignored (§2, §2.5)."""
    async with registered_app(relay, script_handler, tools=TOOLS) as app:
        base = await app.mint()
        async with httpx2.AsyncClient(timeout=15) as client:
            assert (await start_task(client, base, "q")).status_code == 202
            pending = await client.get(
                f"{base}/_as_tasks/q?x=1", headers={"Sec-Fetch-Site": "cross-site"}
            )
            await complete(app, "q", status=200, body={"ok": 1})
            deadline = time.monotonic() + 15
            while True:
                done = await client.post(
                    f"{base}/_as_tasks/q?y=2", headers={"Sec-Fetch-Site": "cross-site"}
                )
                if done.status_code != 202 or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.02)
    assert pending.status_code == 202
    assert pending.json() == {"taskId": "q", "completed": False}
    assert done.status_code == 200
    assert done.json() == {"ok": 1}


async def test_unknown_task_is_404(relay: Any) -> None:
    async with registered_app(relay, script_handler, tools=TOOLS) as app:
        base = await app.mint()
        async with httpx2.AsyncClient(timeout=15) as client:
            for tid in ("never", "x" * 64, "bad.id", "Ünï"):
                assert_error(await client.get(f"{base}/_as_tasks/{tid}"), 404, "not_found")


# --- task ids ----------------------------------------------------------------------------------


@pytest.mark.parametrize("task_id", ["a", "A-z_09", "x" * 64, "-", "_"])
async def test_valid_task_ids_start_tasks(relay: Any, task_id: str) -> None:
    async with registered_app(relay, script_handler, tools=TOOLS) as app:
        base = await app.mint()
        async with httpx2.AsyncClient(timeout=15) as client:
            start = await start_task(client, base, task_id)
            pending = await client.get(f"{base}/_as_tasks/{task_id}")
    assert start.status_code == 202
    assert start.json() == {"taskId": task_id}
    assert pending.status_code == 202
    assert pending.json() == {"taskId": task_id, "completed": False}


BAD_TASK_IDS: list[Any] = [
    123,
    1.5,
    True,
    False,
    {},
    [],
    ["t1"],
    {"id": "t1"},
    "x" * 65,
    "has space",
    "dot.ted",
    "slash/ed",
    "ünï",
    "tab\t",
    "new\nline",
]


@pytest.mark.parametrize("task_id", BAD_TASK_IDS, ids=repr)
async def test_invalid_task_id_is_a_protocol_error(relay: Any, task_id: Any) -> None:
    async with registered_app(relay, script_handler, tools=TOOLS) as app:
        base = await app.mint()
        async with httpx2.AsyncClient(timeout=15) as client:
            resp = await start_task(client, base, task_id)
            state = await debug_state(client, relay, app.session_id)
    assert_error(resp, 502, "protocol_error")
    assert state["tasks"] == 0


@pytest.mark.parametrize("variant", ["absent", "null", "empty"])
async def test_202_without_task_id_is_an_ordinary_reply(relay: Any, variant: str) -> None:
    reply: dict[str, Any] = {"status": 202, "body": {"queued": True}}
    if variant == "null":
        reply["taskId"] = None
    elif variant == "empty":
        reply["taskId"] = ""
    async with registered_app(relay, script_handler, tools=TOOLS) as app:
        base = await app.mint()
        async with httpx2.AsyncClient(timeout=15) as client:
            resp = await client.post(f"{base}/script", content=scripted(reply))
            text = await client.post(
                f"{base}/script",
                content=scripted(
                    {**reply, "headers": {"content-type": "text/plain"}, "body": "accepted"}
                ),
            )
            state = await debug_state(client, relay, app.session_id)
    assert resp.status_code == 202
    assert resp.json() == {"queued": True}
    assert media(resp.headers["content-type"]) == media(JSON_CT)
    assert_sandboxed(resp)
    assert text.status_code == 202
    assert text.text == "accepted"
    assert text.headers["content-type"] == "text/plain"
    assert state["tasks"] == 0


# --- dropped task_complete frames ----------------------------------------------------------------


async def test_task_complete_for_unknown_task_is_dropped(relay: Any) -> None:
    async with registered_app(relay, script_handler, tools=TOOLS) as app:
        base = await app.mint()
        async with httpx2.AsyncClient(timeout=15) as client:
            await complete(app, "ghost", status=200, body={"x": 1})
            await asyncio.sleep(0.2)
            ghost = await client.get(f"{base}/_as_tasks/ghost")
            state = await debug_state(client, relay, app.session_id)
            # The socket is still fine.
            assert (await start_task(client, base, "real")).status_code == 202
    assert_error(ghost, 404, "not_found")
    assert state["tasks"] == 0


@pytest.mark.parametrize("status", [199, 600, 0, -1, 1000])
async def test_task_complete_with_status_out_of_range_is_dropped(relay: Any, status: int) -> None:
    async with registered_app(relay, script_handler, tools=TOOLS) as app:
        base = await app.mint()
        async with httpx2.AsyncClient(timeout=15) as client:
            assert (await start_task(client, base, "t")).status_code == 202
            await complete(app, "t", status=status, body={"bad": True})
            await assert_still_pending(client, base, "t")
            await complete(app, "t", status=200, body={"good": True})
            done = await poll_until_done(client, base, "t")
    assert done.status_code == 200
    assert done.json() == {"good": True}


def string_of_utf8_bytes(n: int) -> str:
    """A string without JSON escapes whose UTF-8 encoding is exactly ``n`` bytes, mixing 1-, 2-,
    3- and 4-byte characters (so counting characters or UTF-16 units would give other sizes)."""
    unit = "😀€éa"  # 4 + 3 + 2 + 1 = 10 bytes
    s = unit * ((n - 16) // 10)
    rest = n - len(s.encode())
    s += "😀" * (rest // 4)
    s += "a" * (rest % 4)
    assert len(s.encode("utf-8")) == n
    return s


def json_utf8_size(body: Any) -> int:
    return len(json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


async def test_task_result_exactly_64_kib_is_kept(relay: Any) -> None:
    body = string_of_utf8_bytes(KIB64 - 2)  # the two quotes make it exactly 64 KiB as JSON
    assert json_utf8_size(body) == KIB64
    async with registered_app(relay, script_handler, tools=TOOLS) as app:
        base = await app.mint()
        async with httpx2.AsyncClient(timeout=15) as client:
            assert (await start_task(client, base, "big")).status_code == 202
            await complete(app, "big", status=200, body=body)
            done = await poll_until_done(client, base, "big")
    assert done.status_code == 200
    assert done.json() == body


async def test_task_result_one_byte_over_64_kib_is_dropped(relay: Any) -> None:
    body = string_of_utf8_bytes(KIB64 - 1)
    assert json_utf8_size(body) == KIB64 + 1
    async with registered_app(relay, script_handler, tools=TOOLS) as app:
        base = await app.mint()
        async with httpx2.AsyncClient(timeout=15) as client:
            assert (await start_task(client, base, "big")).status_code == 202
            await complete(app, "big", status=200, body=body)
            await assert_still_pending(client, base, "big")
            await complete(app, "big", status=200, body={"small": True})
            done = await poll_until_done(client, base, "big")
    assert done.json() == {"small": True}


async def test_task_result_object_size_counts_utf8_json(relay: Any) -> None:
    """An object body: exactly 64 KiB of compact UTF-8 JSON is kept, one byte more is dropped."""
    overhead = json_utf8_size({"k": ""})
    exact = {"k": string_of_utf8_bytes(KIB64 - overhead)}
    over = {"k": string_of_utf8_bytes(KIB64 - overhead + 1)}
    assert json_utf8_size(exact) == KIB64
    assert json_utf8_size(over) == KIB64 + 1
    async with registered_app(relay, script_handler, tools=TOOLS) as app:
        base = await app.mint()
        async with httpx2.AsyncClient(timeout=15) as client:
            assert (await start_task(client, base, "over")).status_code == 202
            await complete(app, "over", status=200, body=over)
            await assert_still_pending(client, base, "over")
            assert (await start_task(client, base, "exact")).status_code == 202
            await complete(app, "exact", status=200, body=exact)
            done = await poll_until_done(client, base, "exact")
    assert done.json() == exact


async def test_task_content_type_length_limit(relay: Any) -> None:
    prefix = "text/plain; x="
    ct_256 = prefix + "a" * (256 - len(prefix))
    ct_257 = ct_256 + "a"
    assert (len(ct_256), len(ct_257)) == (256, 257)
    async with registered_app(relay, script_handler, tools=TOOLS) as app:
        base = await app.mint()
        async with httpx2.AsyncClient(timeout=15) as client:
            assert (await start_task(client, base, "long")).status_code == 202
            await complete(app, "long", status=200, headers={"content-type": ct_257}, body="x")
            await assert_still_pending(client, base, "long")
            assert (await start_task(client, base, "fits")).status_code == 202
            await complete(app, "fits", status=200, headers={"content-type": ct_256}, body="y")
            done = await poll_until_done(client, base, "fits")
    assert done.status_code == 200
    assert done.headers["content-type"] == ct_256
    assert done.text == "y"


# --- cap, overwrite ----------------------------------------------------------------------------


async def test_at_most_100_tasks_per_session(relay: Any) -> None:
    limits = httpx2.Limits(max_connections=20)
    async with registered_app(relay, script_handler, tools=TOOLS) as app:
        base = await app.mint()
        async with httpx2.AsyncClient(timeout=30, limits=limits) as client:
            starts = await asyncio.gather(*(start_task(client, base, f"t{i}") for i in range(100)))
            assert [r.status_code for r in starts] == [202] * 100
            over = await start_task(client, base, "t100")
            over_poll = await client.get(f"{base}/_as_tasks/t100")
            # A completed but unpolled task still counts.
            await complete(app, "t0", status=200, body={"i": 0})
            still_over = await start_task(client, base, "t101")
            # Polling the result deletes the task and frees a slot.
            done = await poll_until_done(client, base, "t0")
            fits = await start_task(client, base, "t102")
            full_again = await start_task(client, base, "t103")
            state = await debug_state(client, relay, app.session_id)
    assert_error(over, 503, "too_many_tasks")
    assert_error(over_poll, 404, "not_found")
    assert_error(still_over, 503, "too_many_tasks")
    assert done.json() == {"i": 0}
    assert fits.status_code == 202
    assert fits.json() == {"taskId": "t102"}
    assert_error(full_again, 503, "too_many_tasks")
    assert state["tasks"] == 100


async def test_reused_task_id_overwrites_the_old_entry(relay: Any) -> None:
    async with registered_app(relay, script_handler, tools=TOOLS) as app:
        base = await app.mint()
        async with httpx2.AsyncClient(timeout=15) as client:
            assert (await start_task(client, base, "dup")).status_code == 202
            await complete(app, "dup", status=200, body={"v": 1})
            # Wait until the first result is really stored (without polling it away).
            deadline = time.monotonic() + 15
            while (await debug_state(client, relay, app.session_id))["tasks"] != 1:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.02)
            again = await start_task(client, base, "dup")
            pending = await client.get(f"{base}/_as_tasks/dup")
            await complete(app, "dup", status=201, body={"v": 2})
            done = await poll_until_done(client, base, "dup")
            gone = await client.get(f"{base}/_as_tasks/dup")
            state = await debug_state(client, relay, app.session_id)
    assert again.status_code == 202
    assert again.json() == {"taskId": "dup"}
    assert pending.status_code == 202
    assert pending.json() == {"taskId": "dup", "completed": False}
    assert done.status_code == 201
    assert done.json() == {"v": 2}
    assert_error(gone, 404, "not_found")
    assert state["tasks"] == 0


# --- tasks across a resume and the end of a session -------------------------------------------


async def test_tasks_survive_a_resume(relay: Any) -> None:
    async with registered_app(relay, script_handler, tools=TOOLS) as app:
        base = await app.mint()
        sid, secret = app.session_id, app.secret
        async with httpx2.AsyncClient(timeout=15) as client:
            assert (await start_task(client, base, "pending")).status_code == 202
            assert (await start_task(client, base, "finished")).status_code == 202
            await complete(app, "finished", status=200, body={"before": "drop"})
            kill = await client.post(f"{relay.http}/_debug/kill-ws/{sid}?hold=60000")
            assert kill.status_code == 200
            # While held, polls still answer (meta paths come before the app-away check).
            held_poll = await client.get(f"{base}/_as_tasks/pending")
            resume = register_frame(tools=TOOLS)
            resume.update(type="resume", sessionId=sid, secret=secret)
            async with connect(f"{relay.ws}?session={sid}", max_size=None) as ws:
                await send(ws, resume)
                reply = await recv_type(ws, "register_reply")
                assert reply["ok"] is True, reply
                assert reply.get("resumed") is True
                finished = await poll_until_done(client, base, "finished")
                await send(
                    ws,
                    {
                        "type": "task_complete",
                        "taskId": "pending",
                        "status": 200,
                        "body": {"after": "resume"},
                    },
                )
                pending = await poll_until_done(client, base, "pending")
                await ws.close()
    assert held_poll.status_code == 202
    assert held_poll.json() == {"taskId": "pending", "completed": False}
    assert finished.status_code == 200
    assert finished.json() == {"before": "drop"}
    assert pending.status_code == 200
    assert pending.json() == {"after": "resume"}


async def test_tasks_die_with_the_session(relay: Any) -> None:
    async with registered_app(relay, script_handler, tools=TOOLS) as app:
        base = await app.mint()
        async with httpx2.AsyncClient(timeout=15) as client:
            assert (await start_task(client, base, "p")).status_code == 202
            assert (await start_task(client, base, "c")).status_code == 202
            await complete(app, "c", status=200, body={"unpolled": True})
            end = await client.post(f"{relay.http}/_debug/kill-ws/{app.session_id}?end=1")
            assert end.status_code == 200
            deadline = time.monotonic() + 15
            while True:
                state = await debug_state(client, relay, app.session_id)
                if not state["session"] or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.02)
            polls = [await client.get(f"{base}/_as_tasks/{tid}") for tid in ("p", "c")]
    assert state["session"] is False
    for resp in polls:
        assert_error(resp, 503, "app_offline")
