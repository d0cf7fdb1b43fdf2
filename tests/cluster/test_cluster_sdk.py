"""The Python SDK on a cluster: several relay URLs, a relay killed, all relays restarted in turn
while an agent keeps calling (issue 7)."""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter

import httpx2
import pytest

from agent_socket.client.backoff import Backoff
from tests.cluster.conftest import Cluster
from tests.e2e.test_sdk_support import counter_app

FAST = Backoff(0.2, 1.0, 0.25)


def through(relay_http: str, link: str) -> str:
    """The link's $BASE on another relay."""
    return relay_http + link[link.index("/v1/t/") :].removesuffix("/agents.md")


async def wait_ok(http: httpx2.AsyncClient, url: str, timeout: float = 20) -> httpx2.Response:
    deadline = time.monotonic() + timeout
    while True:
        try:
            answer = await http.post(url, json={"by": 1})
            if answer.status_code == 200:
                return answer
        except httpx2.TransportError:
            pass
        assert time.monotonic() < deadline, "the link did not come back"
        await asyncio.sleep(0.1)


async def test_sdk_resumes_on_another_relay_when_its_relay_is_killed(cluster: Cluster) -> None:
    a, b, c = cluster.relays
    app = counter_app("cluster-counter")
    urls = [a.http, b.http, c.http]
    async with (
        app.connect(urls, backoff=FAST) as session,
        httpx2.AsyncClient(timeout=10) as http,
    ):
        minted = await session.mint_link("kept")
        link = minted.url
        session_id = session.session_id
        assert (await http.post(f"{through(b.http, link)}/increment")).status_code == 200
        a.stop(signal.SIGKILL)
        for relay in (b, c):
            await wait_ok(http, f"{through(relay.http, link)}/increment")
        assert session.session_id == session_id  # resumed, not a fresh session
        # Same token; its URL now names the relay the session moved to.
        assert [x.token for x in session.links()] == [minted.token]


# A longer sync timeout than the suite's 3 s: on a loaded machine a call must not time out
# merely because the app is busy resuming.
@pytest.mark.relay_args("--max-sync-tool-ms", "10000")
async def test_rolling_restart_under_continuous_calls(cluster: Cluster) -> None:
    app = counter_app("cluster-counter")
    urls = [relay.http for relay in cluster.relays]
    statuses: Counter[int] = Counter()
    unexpected: list[str] = []
    unreachable = 0
    stop = asyncio.Event()

    async def agent(link: str, http: httpx2.AsyncClient) -> None:
        nonlocal unreachable
        turn = 0
        while not stop.is_set():
            relay = cluster.relays[turn % len(cluster.relays)]
            turn += 1
            try:
                answer = await http.post(f"{through(relay.http, link)}/increment", json={"by": 1})
            except httpx2.TransportError:
                unreachable += 1  # that relay is restarting: a load balancer would skip it
                await asyncio.sleep(0.02)
                continue
            statuses[answer.status_code] += 1
            retryable = answer.status_code == 503 and (
                answer.json()["error"]["code"] == "app_offline"
            )
            if answer.status_code != 200 and not retryable:
                unexpected.append(f"{answer.status_code} {answer.text}")
            await asyncio.sleep(0.01)

    async with (
        app.connect(urls, backoff=FAST) as session,
        httpx2.AsyncClient(timeout=10) as http,
    ):
        link = (await session.mint_link("rolling")).url
        session_id = session.session_id
        calling = asyncio.create_task(agent(link, http))
        for position in range(3):
            relay = cluster.relays[position]
            await asyncio.to_thread(cluster.restart, relay)
            await wait_ok(http, f"{through(cluster.relays[-1].http, link)}/increment")
            ok_before = statuses[200]
            deadline = time.monotonic() + 10
            while statuses[200] <= ok_before:
                assert time.monotonic() < deadline, f"no call succeeded after restart {position}"
                await asyncio.sleep(0.05)
        stop.set()
        await calling
        assert unexpected == [], (unexpected, statuses, unreachable)
        assert statuses[200] > 0
        assert session.session_id == session_id
        for relay in cluster.relays:
            await wait_ok(http, f"{through(relay.http, link)}/increment")
