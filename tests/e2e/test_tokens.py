"""Agent tokens — PROTOCOL.md §1 (token format) and §3.2 (mint, revoke, list, limits)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest

from tests.conftest import TEST_RELAY_ARGS, RelayProcess, running_relay
from tests.e2e.checks import assert_error
from tests.e2e.wire import registered_app

TOKEN_RE = re.compile(r"^as_([0-9A-HJKMNP-TV-Z]{8})_([A-Za-z0-9_-]{22})$")
EMOJI = "\U0001f600"
PUBLIC_URL = "https://relay.example.test"


@pytest.fixture(scope="module")
def public_relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayProcess]:
    tmp = tmp_path_factory.mktemp("public-url")
    with running_relay(*TEST_RELAY_ARGS, "--public-url", PUBLIC_URL, tmp=tmp) as proc:
        yield proc


async def test_mint_reply_fields(relay: RelayProcess, http: httpx2.AsyncClient) -> None:
    async with registered_app(relay) as app:
        reply = await app.request("mint_agent_token", label="user-42")
        assert reply["type"] == "mint_agent_token_reply"
        assert reply["id"] == "r1"
        assert reply["ok"] is True
        token = reply["token"]
        match = TOKEN_RE.match(token)
        assert match, token
        assert match.group(1) == app.session_id
        assert reply["url"] == f"__BASE__/v1/t/{token}/agents.md"
        assert reply["label"] == "user-42"
        assert "expiresAt" in reply and reply["expiresAt"] is None
        # the client replaces __BASE__ with the base URL it connected to
        resp = await http.get(reply["url"].replace("__BASE__", relay.http))
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/markdown")


async def test_minted_tokens_are_distinct(relay: RelayProcess) -> None:
    async with registered_app(relay) as app:
        tokens = set()
        for _ in range(10):
            reply = await app.request("mint_agent_token", label="x")
            tokens.add(reply["token"])
        assert len(tokens) == 10
        verifiers = {TOKEN_RE.match(t).group(2) for t in tokens}  # type: ignore[union-attr]
        assert len(verifiers) == 10


async def test_public_url_gives_full_url(
    public_relay: RelayProcess, http: httpx2.AsyncClient
) -> None:
    async with registered_app(public_relay) as app:
        reply = await app.request("mint_agent_token", label="p")
        assert reply["ok"] is True
        token = reply["token"]
        assert TOKEN_RE.match(token)
        assert reply["url"] == f"{PUBLIC_URL}/v1/t/{token}/agents.md"
        listed = await app.request("list_agent_tokens")
        assert listed["tokens"][0]["url"] == reply["url"]
        # the token itself works on the relay's own address
        resp = await http.get(f"{public_relay.http}/v1/t/{token}/agents.md")
        assert resp.status_code == 200


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("l" * 300, "l" * 256),
        ("l" * 256, "l" * 256),
        # 200 emoji = 400 UTF-16 units: cut to 256 units = 128 emoji
        (EMOJI * 200, EMOJI * 128),
        (123, ""),
        (None, ""),
        (["a"], ""),
    ],
    ids=["ascii-300", "ascii-256", "emoji-400-units", "number", "null", "list"],
)
async def test_label_is_cut_to_256_units_and_non_strings_become_empty(
    relay: RelayProcess, sent: Any, kept: str
) -> None:
    async with registered_app(relay) as app:
        reply = await app.request("mint_agent_token", label=sent)
        assert reply["ok"] is True
        assert reply["label"] == kept
        listed = await app.request("list_agent_tokens")
        assert listed["tokens"][0]["label"] == kept


async def test_missing_label_becomes_empty(relay: RelayProcess) -> None:
    async with registered_app(relay) as app:
        reply = await app.request("mint_agent_token")
        assert reply["ok"] is True
        assert reply["label"] == ""


async def test_fifty_live_tokens_then_too_many_tokens(
    relay: RelayProcess, http: httpx2.AsyncClient
) -> None:
    async with registered_app(relay) as app:
        tokens = []
        for i in range(50):
            reply = await app.request("mint_agent_token", label=f"t{i}")
            assert reply["ok"] is True, (i, reply)
            tokens.append(reply["token"])
        reply = await app.request("mint_agent_token", label="one-too-many")
        assert reply["type"] == "mint_agent_token_reply"
        assert reply["ok"] is False
        assert reply["error"]["code"] == "too_many_tokens"
        assert "token" not in reply
        listed = await app.request("list_agent_tokens")
        assert len(listed["tokens"]) == 50
        # the cap counts live tokens: revoking one frees a slot
        assert (await app.request("revoke_agent_token", token=tokens[0]))["ok"] is True
        reply = await app.request("mint_agent_token", label="again")
        assert reply["ok"] is True
        reply = await app.request("mint_agent_token", label="over")
        assert reply["ok"] is False and reply["error"]["code"] == "too_many_tokens"
        # every live token still works
        resp = await http.get(f"{relay.http}/v1/t/{tokens[-1]}/agents.md")
        assert resp.status_code == 200


async def test_revoke(relay: RelayProcess, http: httpx2.AsyncClient) -> None:
    async with registered_app(relay) as app:
        token = (await app.request("mint_agent_token", label="a"))["token"]
        keep = (await app.request("mint_agent_token", label="b"))["token"]
        reply = await app.request("revoke_agent_token", token=token)
        assert reply["type"] == "revoke_agent_token_reply"
        assert reply["ok"] is True
        # a revoked token stops working at once
        resp = await http.get(f"{relay.http}/v1/t/{token}/agents.md")
        assert_error(resp, 401, "token_invalid")
        resp = await http.get(f"{relay.http}/v1/t/{token}/tools.json")
        assert_error(resp, 401, "token_invalid")
        resp = await http.post(f"{relay.http}/v1/t/{token}/increment", json={"by": 1})
        assert_error(resp, 401, "token_invalid")
        # revoking again: not live any more
        reply = await app.request("revoke_agent_token", token=token)
        assert reply["ok"] is False
        # the other token is untouched
        resp = await http.post(f"{relay.http}/v1/t/{keep}/increment", json={"by": 1})
        assert resp.status_code == 200
        listed = await app.request("list_agent_tokens")
        assert [t["token"] for t in listed["tokens"]] == [keep]


async def test_revoked_token_never_reaches_the_app(
    relay: RelayProcess, http: httpx2.AsyncClient
) -> None:
    async with registered_app(relay) as app:
        token = (await app.request("mint_agent_token", label="a"))["token"]
        base = f"{relay.http}/v1/t/{token}"
        assert (await http.post(f"{base}/increment", json={"by": 1})).status_code == 200
        assert len(app.calls) == 1
        assert (await app.request("revoke_agent_token", token=token))["ok"] is True
        results = await asyncio.gather(
            *(http.post(f"{base}/increment", json={"by": 1}) for _ in range(10))
        )
        assert [r.status_code for r in results] == [401] * 10
        await asyncio.sleep(0.2)
        assert len(app.calls) == 1


@pytest.mark.parametrize(
    "token",
    [
        "as_00000000_AAAAAAAAAAAAAAAAAAAAAA",
        "not a token",
        "",
        123,
        None,
    ],
    ids=["unknown-session", "garbage", "empty", "number", "null"],
)
async def test_revoke_unknown_token_is_false(relay: RelayProcess, token: Any) -> None:
    async with registered_app(relay) as app:
        live = (await app.request("mint_agent_token", label="a"))["token"]
        reply = await app.request("revoke_agent_token", token=token)
        assert reply["type"] == "revoke_agent_token_reply"
        assert reply["ok"] is False
        listed = await app.request("list_agent_tokens")
        assert [t["token"] for t in listed["tokens"]] == [live]


async def test_revoke_with_wrong_verifier_is_false(
    relay: RelayProcess, http: httpx2.AsyncClient
) -> None:
    async with registered_app(relay) as app:
        live = (await app.request("mint_agent_token", label="a"))["token"]
        verifier = live[12:]
        other = "B" if verifier[0] != "B" else "C"
        forged = live[:12] + other + verifier[1:]
        assert TOKEN_RE.match(forged)
        reply = await app.request("revoke_agent_token", token=forged)
        assert reply["ok"] is False
        assert (await http.get(f"{relay.http}/v1/t/{live}/agents.md")).status_code == 200


async def test_revoke_foreign_token_is_false(relay: RelayProcess, http: httpx2.AsyncClient) -> None:
    async with registered_app(relay) as owner, registered_app(relay) as other:
        foreign = (await owner.request("mint_agent_token", label="mine"))["token"]
        reply = await other.request("revoke_agent_token", token=foreign)
        assert reply["ok"] is False
        resp = await http.post(f"{relay.http}/v1/t/{foreign}/increment", json={"by": 1})
        assert resp.status_code == 200
        assert len(owner.calls) == 1 and other.calls == []


async def test_list_tokens(relay: RelayProcess) -> None:
    async with registered_app(relay) as app:
        empty = await app.request("list_agent_tokens")
        assert empty["type"] == "list_agent_tokens_reply"
        assert empty["id"] == "r1"
        assert empty["tokens"] == []
        minted = [await app.request("mint_agent_token", label=f"L{i}") for i in range(3)]
        listed = await app.request("list_agent_tokens")
        entries = listed["tokens"]
        assert len(entries) == 3
        by_token = {e["token"]: e for e in entries}
        assert set(by_token) == {m["token"] for m in minted}
        for m in minted:
            entry = by_token[m["token"]]
            assert {"token", "url", "label", "mintedAt"} <= set(entry)
            assert entry["url"] == m["url"]
            assert entry["label"] == m["label"]
            assert entry["mintedAt"] is not None


async def test_token_of_ended_session_is_offline(
    relay: RelayProcess, http: httpx2.AsyncClient
) -> None:
    async with registered_app(relay) as app:
        base = await app.mint()
        await app.close()  # close code 1000 ends the session
    for _ in range(50):
        resp = await http.get(f"{base}/agents.md")
        if resp.status_code == 503:
            break
        await asyncio.sleep(0.1)
    assert_error(resp, 503, "app_offline")
