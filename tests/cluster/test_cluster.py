"""Cluster mode against a real nats-server and three real relay processes (issue 7).

The app side speaks the raw wire protocol here (tests/e2e/wire.py), so these tests check the
relays, not an SDK's recovery logic.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections import Counter
from typing import Any

import httpx2
import pytest
from websockets.asyncio.client import connect

from tests.cluster.conftest import Cluster, NatsServer, wait_for_nats
from tests.e2e.wire import closed_with, recv_type, register_frame, registered_app, send


def base_on(relay: Any, link_base: str) -> str:
    """The same link ($BASE) through another relay."""
    return relay.http + link_base[link_base.index("/v1/t/") :]


async def resume(relay: Any, app: Any, **extra: Any) -> Any:
    ws = await connect(f"{relay.ws}?session={app.session_id}")
    frame = register_frame(type="resume", sessionId=app.session_id, secret=app.secret, **extra)
    await send(ws, frame)
    return ws, await recv_type(ws, "register_reply")


async def test_any_relay_answers_any_link(cluster: Cluster) -> None:
    a, b, c = cluster.relays
    async with registered_app(a) as app, httpx2.AsyncClient(timeout=10) as http:
        link = await app.mint()
        for relay in (a, b, c):
            base = base_on(relay, link)
            doc = await http.get(f"{base}/agents.md")
            assert doc.status_code == 200 and "# Test app" in doc.text
            tools = await http.get(f"{base}/tools.json")
            assert [t["path"] for t in tools.json()["tools"]] == ["/increment", "/count"]
            call = await http.post(f"{base}/increment", json={"by": relay.port})
            assert call.status_code == 200, call.text
            assert json.loads(call.json()["echo"]["body"]) == {"by": relay.port}
            assert call.headers["content-security-policy"] == "sandbox; default-src 'none'"
        assert len(app.calls) == 3


async def test_task_created_through_a_is_polled_through_c_once(cluster: Cluster) -> None:
    a, b, c = cluster.relays

    def start_task(call: dict[str, Any]) -> dict[str, Any]:
        return {"status": 202, "taskId": "job-1"}

    async with registered_app(a, start_task) as app, httpx2.AsyncClient(timeout=10) as http:
        link = await app.mint()
        started = await http.post(f"{base_on(a, link)}/increment")
        assert started.status_code == 202 and started.json() == {"taskId": "job-1"}
        pending = await http.get(f"{base_on(c, link)}/_as_tasks/job-1")
        assert pending.status_code == 202 and pending.json()["completed"] is False
        await send(
            app.ws,
            {"type": "task_complete", "taskId": "job-1", "status": 200, "body": {"done": True}},
        )
        deadline = time.monotonic() + 5
        while (result := await http.get(f"{base_on(c, link)}/_as_tasks/job-1")).status_code == 202:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        assert result.status_code == 200 and result.json() == {"done": True}
        again = await http.get(f"{base_on(b, link)}/_as_tasks/job-1")
        assert again.status_code == 404 and again.json()["error"]["code"] == "not_found"


async def test_revocation_on_a_is_refused_on_every_node_at_once(cluster: Cluster) -> None:
    a, b, c = cluster.relays
    async with registered_app(a) as app, httpx2.AsyncClient(timeout=10) as http:
        link = await app.mint()
        token = link.rsplit("/", 1)[1]
        assert (await http.post(f"{base_on(b, link)}/increment")).status_code == 200
        reply = await app.request("revoke_agent_token", token=token)
        assert reply["ok"] is True
        calls_before = len(app.calls)
        for relay in (b, c, a):
            for path in ("/increment", "/agents.md", "/tools.json"):
                refused = await http.post(f"{base_on(relay, link)}{path}")
                assert refused.status_code == 401, (relay.port, path, refused.text)
                assert refused.json()["error"]["code"] == "token_invalid"
        await asyncio.sleep(0.2)
        assert len(app.calls) == calls_before


@pytest.mark.relay_args("--max-sync-tool-ms", "60000", "--heartbeat-timeout-ms", "60000")
async def test_calls_in_flight_are_capped_across_nodes(cluster: Cluster) -> None:
    a, b, c = cluster.relays
    release = asyncio.Event()

    async def slow(call: dict[str, Any]) -> dict[str, Any]:
        await release.wait()
        return {"status": 200, "body": {}}

    pool = httpx2.Limits(max_connections=200)  # the 101st call must not wait for a connection
    async with (
        registered_app(a, slow) as app,
        httpx2.AsyncClient(timeout=30, limits=pool) as http,
    ):
        link = await app.mint()
        held = [
            asyncio.create_task(http.post(f"{base_on(relay, link)}/increment"))
            for relay in [b] * 50 + [c] * 50
        ]
        deadline = time.monotonic() + 10
        while len(app.calls) < 100:
            assert time.monotonic() < deadline, len(app.calls)
            await asyncio.sleep(0.05)
        over = await http.post(f"{base_on(a, link)}/increment")
        assert over.status_code == 429, over.text
        assert over.json()["error"]["code"] == "too_many_inflight"
        over_b = await http.post(f"{base_on(b, link)}/increment")
        assert over_b.status_code == 429
        release.set()
        assert {r.status_code for r in await asyncio.gather(*held)} == {200}


async def test_a_second_attach_on_another_node_replaces_the_first(cluster: Cluster) -> None:
    a, b, c = cluster.relays
    async with registered_app(a) as app, httpx2.AsyncClient(timeout=10) as http:
        link = await app.mint()
        ws, reply = await resume(b, app)
        try:
            assert reply["ok"] is True and reply["resumed"] is True
            code, reason = await closed_with(app.ws)
            assert (code, reason) == (4410, "replaced by a resumed connection")
            listed = await send(ws, {"type": "list_agent_tokens", "id": "l"})
            assert listed is None
            tokens = await recv_type(ws, "list_agent_tokens_reply")
            assert [t["token"] for t in tokens["tokens"]] == [link.rsplit("/", 1)[1]]

            async def answer() -> None:
                async for raw in ws:
                    frame = json.loads(raw)
                    if frame["type"] == "tool_call":
                        await send(
                            ws,
                            {
                                "type": "tool_reply",
                                "id": frame["id"],
                                "status": 200,
                                "body": {"node": "b"},
                            },
                        )

            answering = asyncio.create_task(answer())
            for relay in (a, b, c):
                call = await http.post(f"{base_on(relay, link)}/increment")
                assert call.status_code == 200 and call.json() == {"node": "b"}
            answering.cancel()
        finally:
            await ws.close()


async def test_owner_killed_then_resume_on_another_node_keeps_links_and_tasks(
    cluster: Cluster,
) -> None:
    a, b, c = cluster.relays

    def start_task(call: dict[str, Any]) -> dict[str, Any]:
        return {"status": 202, "taskId": "survivor"}

    async with registered_app(a, start_task) as app, httpx2.AsyncClient(timeout=10) as http:
        link = await app.mint("keep-me")
        assert (await http.post(f"{base_on(a, link)}/increment")).status_code == 202
        a.stop(signal.SIGKILL)
        started = time.monotonic()
        away = await http.post(f"{base_on(b, link)}/increment")
        assert time.monotonic() - started < 2
        assert away.status_code == 503 and away.headers["retry-after"] == "2"
        assert away.json()["error"]["code"] == "app_offline"
        doc = await http.get(f"{base_on(c, link)}/agents.md")
        assert doc.status_code == 200

        ws, reply = await resume(b, app)
        try:
            assert reply["ok"] is True and reply["sessionId"] == app.session_id
            await send(ws, {"type": "list_agent_tokens", "id": "l"})
            listed = await recv_type(ws, "list_agent_tokens_reply")
            assert [(t["token"], t["label"]) for t in listed["tokens"]] == [
                (link.rsplit("/", 1)[1], "keep-me")
            ]
            await send(
                ws, {"type": "task_complete", "taskId": "survivor", "status": 200, "body": "done"}
            )
            deadline = time.monotonic() + 5
            while (
                poll := await http.get(f"{base_on(c, link)}/_as_tasks/survivor")
            ).status_code == 202:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            assert poll.status_code == 200 and poll.json() == "done"
        finally:
            await ws.close()


async def test_hold_expires_through_the_storage_ttl(cluster: Cluster) -> None:
    a, b, c = cluster.relays
    async with registered_app(a) as app, httpx2.AsyncClient(timeout=10) as http:
        link = await app.mint()
        a.stop(signal.SIGKILL)  # no relay is left to run a hold timer: only the TTL can end it
        held = await http.post(f"{base_on(b, link)}/increment")
        assert held.status_code == 503 and "retry-after" in held.headers
        deadline = time.monotonic() + 15
        while (gone := await http.post(f"{base_on(b, link)}/increment")).headers.get("retry-after"):
            assert time.monotonic() < deadline, "the session outlived its hold window"
            await asyncio.sleep(0.25)
        assert gone.status_code == 503 and gone.json()["error"]["code"] == "app_offline"
        doc = await http.get(f"{base_on(c, link)}/agents.md")
        assert doc.status_code == 503
        ws, reply = await resume(c, app)
        assert reply["ok"] is False and reply["error"]["code"] == "resume_failed"
        assert (await closed_with(ws))[0] == 4401


async def test_end_on_another_node_closes_the_app_with_1000(cluster: Cluster) -> None:
    a, b, _ = cluster.relays
    async with registered_app(a) as app, httpx2.AsyncClient(timeout=10) as http:
        link = await app.mint()
        async with connect(f"{b.ws}?session={app.session_id}") as ws:
            await send(ws, {"type": "end", "sessionId": app.session_id, "secret": app.secret})
            assert (await recv_type(ws, "end_reply"))["ok"] is True
        assert (await closed_with(app.ws))[0] == 1000
        gone = await http.get(f"{base_on(b, link)}/agents.md")
        assert gone.status_code == 503


async def test_nats_outage_degrades_to_fast_503_and_recovers(
    cluster: Cluster, nats_server: NatsServer
) -> None:
    a, b, _ = cluster.relays
    slowest = 0.0
    answers: Counter[tuple[str, int]] = Counter()
    stop = asyncio.Event()

    async def load(http: httpx2.AsyncClient, link: str, relay: Any, name: str) -> None:
        """An agent calling continuously through one relay."""
        nonlocal slowest
        while not stop.is_set():
            started = time.monotonic()
            answer = await http.post(f"{base_on(relay, link)}/increment")
            slowest = max(slowest, time.monotonic() - started)
            answers[(name, answer.status_code)] += 1
            if answer.status_code != 200:
                assert answer.status_code == 503, answer.text
                assert answer.json()["error"]["code"] == "app_offline"
            await asyncio.sleep(0.01)

    async with registered_app(a) as app, httpx2.AsyncClient(timeout=10) as http:
        link = await app.mint()
        assert (await http.post(f"{base_on(b, link)}/increment")).status_code == 200
        agents = [
            asyncio.create_task(load(http, link, relay, name))
            for relay, name in ((a, "a"), (b, "b"), (b, "b"))
        ]
        await asyncio.sleep(0.3)
        nats_server.stop()
        await asyncio.sleep(1.5)
        health = (await http.get(f"{b.http}/healthz")).json()
        assert health["status"] == "ok" and health["nats"] != "connected"
        during = dict(answers)
        await asyncio.sleep(1.0)
        # Through B (no app there, no NATS) every call now answers 503 at once; through A,
        # which holds the app, calls keep succeeding.
        assert answers[("b", 503)] > during.get(("b", 503), 0)
        assert answers[("a", 200)] > during.get(("a", 200), 0)
        nats_server.start()
        for relay in (a, b):
            await asyncio.to_thread(wait_for_nats, relay, "connected", 20)
        recovered = answers[("b", 200)]
        deadline = time.monotonic() + 10
        while answers[("b", 200)] <= recovered:
            assert time.monotonic() < deadline, dict(answers)
            await asyncio.sleep(0.1)
        stop.set()
        await asyncio.gather(*agents)
    assert slowest < 1.5, f"a call took {slowest:.2f} s during the outage (should fail fast)"
