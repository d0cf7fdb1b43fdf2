"""Upgrade requests the WebSocket layer refuses still get the contract's JSON answers
(PROTOCOL.md §2.6 checks 1–2, §3): a broken handshake is not a way around the error rules."""

from __future__ import annotations

import httpx2
import pytest

from tests.conftest import RelayProcess
from tests.e2e.checks import assert_error

BROKEN_UPGRADE = {"Upgrade": "websocket", "Connection": "Upgrade"}  # no Sec-WebSocket-Key
WELL_FORMED = "as_AAAAAAAA_" + "a" * 22


@pytest.mark.parametrize("method", ["GET", "POST", "PUT"])
async def test_any_upgrade_on_an_agent_url_is_400(
    relay: RelayProcess, http: httpx2.AsyncClient, method: str
) -> None:
    answer = await http.request(
        method, f"{relay.http}/v1/t/{WELL_FORMED}/tool", headers=BROKEN_UPGRADE
    )
    assert_error(answer, 400, "protocol_error")
    assert answer.headers["referrer-policy"] == "no-referrer"
    assert answer.headers["cache-control"] == "no-store"


async def test_a_malformed_token_is_404_before_the_upgrade_check(
    relay: RelayProcess, http: httpx2.AsyncClient
) -> None:
    answer = await http.get(f"{relay.http}/v1/t/as_bad/tool", headers=BROKEN_UPGRADE)
    assert_error(answer, 404, "not_found")


async def test_a_broken_upgrade_on_the_app_socket_is_400(
    relay: RelayProcess, http: httpx2.AsyncClient
) -> None:
    assert_error(await http.get(relay.ws.replace("ws://", "http://"), headers=BROKEN_UPGRADE),
                 400, "protocol_error")  # fmt: skip


async def test_a_broken_upgrade_elsewhere_is_404(
    relay: RelayProcess, http: httpx2.AsyncClient
) -> None:
    assert_error(await http.get(f"{relay.http}/nowhere", headers=BROKEN_UPGRADE), 404, "not_found")
