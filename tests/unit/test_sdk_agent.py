"""AgentClient without a relay: link parsing and the error code → exception mapping."""

from __future__ import annotations

import json

import httpx2
import pytest

from agent_socket import ERRORS, AgentClient, AgentSocketError, AppError, AppOfflineError
from agent_socket.agent import base_of
from agent_socket.protocol.errors import HTTP_STATUS, ErrorCode

TOKEN = "as_Q7R5X2KM_" + "v" * 22
LINK = f"http://relay.test/v1/t/{TOKEN}/agents.md"


def test_base_of_links() -> None:
    base = f"http://relay.test/v1/t/{TOKEN}"
    assert base_of(LINK) == base
    assert base_of(base + "/") == base
    assert base_of(base + "/tools.json?x=1") == base
    with pytest.raises(ValueError):
        AgentClient("http://relay.test/nothing")


def test_every_framework_code_has_its_own_class() -> None:
    framework = {code.value for code in HTTP_STATUS} | {"relay_full"}
    assert framework <= set(ERRORS)
    assert len({ERRORS[code] for code in ERRORS}) == len(ERRORS)


@pytest.mark.parametrize("code", sorted(ERRORS))
async def test_error_answers_raise_their_class(code: str) -> None:
    known = {c.value: c for c in ErrorCode}
    status = HTTP_STATUS.get(known[code], 500) if code in known else 400

    def answer(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(
            status,
            headers={"content-type": "application/json", "retry-after": "2"},
            content=json.dumps({"error": {"code": code, "message": "m", "details": [1]}}),
        )

    transport = httpx2.MockTransport(answer)
    async with httpx2.AsyncClient(transport=transport) as http:
        client = AgentClient(LINK, client=http)
        with pytest.raises(ERRORS[code]) as caught:
            await client.call("/x", {"a": 1}, method="POST")
    error = caught.value
    assert (error.status, error.code, error.message, error.details) == (status, code, "m", [1])
    assert error.retry_after == 2.0


async def test_unknown_codes_and_bare_statuses() -> None:
    replies = iter(
        [
            httpx2.Response(409, json={"error": {"code": "no_stock", "message": "none left"}}),
            httpx2.Response(500, text="boom"),
            httpx2.Response(200, json={"error": {"code": "app", "message": "app's own answer"}}),
        ]
    )
    transport = httpx2.MockTransport(lambda request: next(replies))
    async with httpx2.AsyncClient(transport=transport) as http:
        client = AgentClient(LINK, client=http)
        with pytest.raises(AppError) as caught:
            await client.call("/x", method="POST")
        assert caught.value.code == "no_stock"
        with pytest.raises(AgentSocketError) as bare:
            await client.call("/x", method="POST")
        assert bare.value.code == "http_500" and not isinstance(bare.value, AppOfflineError)
        # A 2xx with an error envelope is the app's answer: returned, not raised.
        assert await client.call("/x", method="POST") == {
            "error": {"code": "app", "message": "app's own answer"}
        }
