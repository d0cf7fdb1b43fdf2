"""Channel mode end to end: the room's tools through a real relay and a real host process.

Participants are plain HTTP clients, as an AI chat would be. Every test uses its own names, so
they share one host; the message counts are exact.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.conftest import RelayProcess
from tests.e2e.test_channel_support import Host, apost, channel_relay, ok, post

__all__ = ["channel_relay"]

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(scope="module")
def host(channel_relay: RelayProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Host]:
    proc = Host(channel_relay, tmp_path_factory.mktemp("chdata"), "main")
    yield proc
    assert proc.interrupt() == 0


def latest(base: str) -> int:
    return int(ok(base, "/recv", {})["latest_seq"])


def texts(answer: dict[str, Any]) -> list[tuple[str, str]]:
    return [(m["from"], m["text"]) for m in answer["messages"]]


def test_tools_json_lists_four_tools_each_with_a_schema(host: Host) -> None:
    doc = httpx2.get(host.base + "/tools.json").json()
    tools = {(t["method"], t["path"]): t for t in doc["tools"]}
    assert set(tools) == {
        ("POST", "/send"),
        ("POST", "/recv"),
        ("POST", "/peers"),
        ("GET", "/join.sh"),
    }
    for tool in tools.values():
        assert tool["input_schema"]["additionalProperties"] is False
    assert set(tools[("POST", "/recv")]["input_schema"]["properties"]) >= {
        "name",
        "since",
        "wait",
        "message",
    }
    md = httpx2.get(host.link).text
    assert md.startswith("<!-- as:contract-v1 -->") and "not authenticated" in md


def test_two_participants_talk_and_never_see_their_own_messages(host: Host) -> None:
    start = latest(host.base)
    sent = ok(host.base, "/send", {"name": "ann", "text": "hi bo"})
    assert sent["ok"] is True and sent["seq"] == start + 1
    bo = ok(host.base, "/recv", {"name": "bo"})
    assert texts(bo)[-1] == ("ann", "hi bo") and bo["latest_seq"] == start + 1
    ok(host.base, "/send", {"name": "bo", "text": "hi ann"})
    ann = ok(host.base, "/recv", {"name": "ann", "since": start, "wait": 0})
    assert texts(ann) == [("bo", "hi ann")]
    assert ann["latest_seq"] == start + 2
    again = ok(host.base, "/recv", {"name": "bo", "since": start, "wait": 0})
    assert texts(again) == [("ann", "hi bo")]


def test_three_participants_and_awaiting(host: Host) -> None:
    start = latest(host.base)
    result: dict[str, Any] = {}

    def cy_waits() -> None:
        result["cy"] = ok(host.base, "/recv", {"name": "cy", "since": start, "wait": 4})

    waiter = threading.Thread(target=cy_waits)
    waiter.start()
    time.sleep(0.5)

    # dee says and waits; the answer comes from eve.
    def dee_asks() -> None:
        result["dee"] = ok(
            host.base,
            "/recv",
            {"name": "dee", "since": start, "message": "who is here?", "wait": 4},
        )

    asker = threading.Thread(target=dee_asks)
    asker.start()
    waiter.join(10)
    assert texts(result["cy"]) == [("dee", "who is here?")]
    assert result["cy"]["messages"][0]["awaiting"] is True
    peers = {p["name"]: p for p in ok(host.base, "/peers")["peers"]}
    assert peers["dee"]["currently_waiting"] is True
    eve = ok(host.base, "/recv", {"name": "eve", "since": start, "wait": 0})
    assert eve["messages"][0]["awaiting"] is True
    ok(host.base, "/send", {"name": "eve", "text": "eve here"})
    asker.join(10)
    assert texts(result["dee"]) == [("eve", "eve here")]
    assert result["dee"]["sent"]["seq"] == start + 1


async def test_five_participants_each_see_the_four_others_in_order(host: Host) -> None:
    names = [f"p{i}" for i in range(5)]
    start = latest(host.base)
    async with httpx2.AsyncClient(timeout=20) as client:
        for round_ in range(2):
            for name in names:
                await apost(client, host.base, "/send", {"name": name, "text": f"{name}.{round_}"})
        answers = await asyncio.gather(
            *(
                apost(client, host.base, "/recv", {"name": n, "since": start, "wait": 0})
                for n in names
            )
        )
    everyone = [(n, f"{n}.{r}") for r in range(2) for n in names]
    for name, answer in zip(names, answers, strict=True):
        assert texts(answer) == [item for item in everyone if item[0] != name]
        assert answer["latest_seq"] == start + 10
    peers = {p["name"] for p in ok(host.base, "/peers")["peers"]}
    assert set(names) <= peers


def test_long_poll_wakes_up_at_once(host: Host) -> None:
    start = latest(host.base)
    done: dict[str, float] = {}
    answer: dict[str, Any] = {}

    def wait() -> None:
        answer["a"] = ok(host.base, "/recv", {"name": "sleeper", "since": start, "wait": 4})
        done["t"] = time.monotonic()

    thread = threading.Thread(target=wait)
    thread.start()
    time.sleep(1.0)
    sent_at = time.monotonic()
    sent = ok(host.base, "/send", {"name": "waker", "text": "wake"})
    thread.join(10)
    assert sent["delivered_to_active"] == 1
    assert texts(answer["a"]) == [("waker", "wake")]
    assert done["t"] - sent_at < 1.0  # a long-poll, not a timer: far below the 4 s wait


def test_a_quiet_long_poll_ends_empty_within_the_cap(host: Host) -> None:
    start = latest(host.base)
    t0 = time.monotonic()
    answer = ok(host.base, "/recv", {"name": "quiet", "since": start, "wait": 600})
    elapsed = time.monotonic() - t0
    assert answer == {"messages": [], "latest_seq": start}
    assert 3.5 < elapsed < 7.5  # capped at --wait-cap 4, below the relay's 8 s


def test_scrollback_is_the_last_50(host: Host) -> None:
    start = latest(host.base)
    for i in range(60):
        ok(host.base, "/send", {"name": "scroller", "text": f"s{i}"})
    back = ok(host.base, "/recv", {"name": "reader"})
    assert [m["text"] for m in back["messages"]] == [f"s{i}" for i in range(10, 60)]
    assert back["latest_seq"] == start + 60
    lurk = ok(host.base, "/recv", {})
    assert len(lurk["messages"]) == 50
    assert "lurker" not in {p["name"] for p in ok(host.base, "/peers")["peers"]}


def test_bad_input_and_unknown_fields(host: Host) -> None:
    cases: list[tuple[str, Any, int, str, str]] = [
        ("/send", {"name": "x", "text": "hi", "colour": "red"}, 400, "bad_input", "colour"),
        ("/recv", {"name": "x", "sinse": 3}, 400, "bad_input", "sinse"),
        ("/peers", {"verbose": True}, 400, "bad_input", "verbose"),
        ("/send", {"text": "no name"}, 400, "bad_input", "name"),
        ("/send", {"name": "x", "text": 5}, 400, "bad_input", "text"),
        ("/send", {"name": "x", "text": ""}, 400, "bad_input", "text"),
        ("/send", {"name": "bad\nname", "text": "hi"}, 400, "bad_input", "name"),
        ("/recv", {"since": -1}, 400, "bad_input", "since"),
        ("/recv", {"message": "hi"}, 400, "bad_input", "name"),
        ("/send", {"name": "x", "text": "x" * (64 * 1024 + 1)}, 400, "message_too_large", ""),
    ]
    before = latest(host.base)
    for path, body, status, code, field in cases:
        got_status, got = post(host.base, path, body)
        assert got_status == status, (path, body, got)
        assert got["error"]["code"] == code, (path, body, got)
        assert field in got["error"]["message"], (path, body, got)
    assert ok(host.base, "/send", {"name": "x", "text": "x" * (64 * 1024)})["ok"] is True
    assert latest(host.base) == before + 1  # nothing refused was appended


async def test_five_concurrent_senders_every_reader_sees_all_1000_once_in_order(
    host: Host,
) -> None:
    start = latest(host.base)
    senders = [f"s{i}" for i in range(5)]
    per_sender = 200
    total = len(senders) * per_sender
    limits = httpx2.Limits(max_connections=50)

    async def sender(client: httpx2.AsyncClient, name: str) -> None:
        for i in range(per_sender):
            await apost(client, host.base, "/send", {"name": name, "text": f"{name}:{i}"})

    async def reader(client: httpx2.AsyncClient, name: str) -> list[dict[str, Any]]:
        since, seen = start, []
        while len(seen) < total:
            answer = await apost(
                client, host.base, "/recv", {"name": name, "since": since, "wait": 4}
            )
            assert "missed_messages" not in answer
            seen.extend(answer["messages"])
            since = answer["latest_seq"]
        return seen

    async with httpx2.AsyncClient(timeout=30, limits=limits) as client:
        readers = [asyncio.create_task(reader(client, f"r{i}")) for i in range(3)]
        await asyncio.sleep(0.3)
        await asyncio.gather(*(sender(client, name) for name in senders))
        seen_by = await asyncio.wait_for(asyncio.gather(*readers), 60)

    expected_seqs = list(range(start + 1, start + total + 1))
    for seen in seen_by:
        assert [m["seq"] for m in seen] == expected_seqs  # all, once, in order
        for name in senders:
            mine = [m["text"] for m in seen if m["from"] == name]
            assert mine == [f"{name}:{i}" for i in range(per_sender)]
    # The window keeps at least 1000: a late reader still gets every one of them.
    late, since = [], start
    while len(late) < total:
        answer = ok(host.base, "/recv", {"name": "late", "since": since, "wait": 0})
        assert "missed_messages" not in answer
        late.extend(answer["messages"])
        since = answer["latest_seq"]
    assert [m["seq"] for m in late] == expected_seqs


def test_window_eviction_and_missed_messages(channel_relay: RelayProcess, tmp_path: Path) -> None:
    small = Host(channel_relay, tmp_path, "small", "--window", "30")
    try:
        for i in range(45):
            ok(small.base, "/send", {"name": "fill", "text": f"f{i}"})
        answer = ok(small.base, "/recv", {"name": "behind", "since": 5, "wait": 0})
        assert answer["missed_messages"] == 10  # seqs 6..15 fell out; 16..45 are kept
        assert [m["seq"] for m in answer["messages"]] == list(range(16, 46))
        fresh = ok(small.base, "/recv", {"name": "behind", "since": 40, "wait": 0})
        assert "missed_messages" not in fresh and len(fresh["messages"]) == 5
    finally:
        assert small.interrupt() == 0
