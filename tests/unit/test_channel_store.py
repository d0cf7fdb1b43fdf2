"""The durable log and the outbox: persistence, pruning, exactly-once hand-over."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

import pytest

from agent_socket.channel.core import ChannelError
from agent_socket.channel.local import offline_read
from agent_socket.channel.service import Channel
from agent_socket.channel.store import Store


def test_the_log_survives_a_reopen_and_seqs_continue(tmp_path: Path) -> None:
    db = tmp_path / "room" / "room.db"
    store = Store.open(db)
    channel = Channel(store, window=1000)
    channel.send("alice", "one")
    channel.send("bob", "two")
    store.close()
    assert stat.S_IMODE(os.stat(db).st_mode) == 0o600
    again = Channel(Store.open(db), window=1000)
    assert again.room.latest_seq == 2
    assert again.send("alice", "three").message.seq == 3
    assert [m.text for m in again.store.tail(10)] == ["one", "two", "three"]


def test_the_log_is_pruned_to_the_window(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "room.db")
    channel = Channel(store, window=5)
    for i in range(12):
        channel.send("a", str(i))
    assert store.bounds() == (8, 12)
    reopened = Channel(store, window=5)
    assert reopened.room.read(None, 0).missed == 7


def test_the_outbox_is_published_exactly_once_in_order(tmp_path: Path) -> None:
    db = tmp_path / "room.db"
    host_store = Store.open(db)
    channel = Channel(host_store)
    channel.send("alice", "before")
    command = Store.open(db)  # a separate connection, like a CLI process
    ids = [command.queue("me", f"queued {i}") for i in range(3)]
    assert command.queued() == 3
    moved = channel.drain_outbox()
    assert moved == {ids[0]: 2, ids[1]: 3, ids[2]: 4}
    assert channel.drain_outbox() == {}
    assert command.queued() == 0
    assert command.seq_of_outbox(ids[1]) == 3
    assert [m.text for m in channel.room.read(None, 0).messages] == [
        "before",
        "queued 0",
        "queued 1",
        "queued 2",
    ]


def test_offline_read_gives_what_recv_would(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "room.db")
    channel = Channel(store)
    for i in range(3):
        channel.send("alice", f"a{i}")
        channel.send("me", f"m{i}")
    answer = offline_read(store, "me", 2)
    assert [m["text"] for m in answer["messages"]] == ["a1", "a2"]
    assert answer["latest_seq"] == 6
    assert len(offline_read(store, None, None)["messages"]) == 6


async def test_recv_rules(tmp_path: Path) -> None:
    channel = Channel(Store.open(tmp_path / "room.db"), wait_cap=0.3)
    with pytest.raises(ChannelError):
        await channel.recv(None, None, None, "hello")  # message needs a name
    with pytest.raises(ChannelError):
        await channel.recv("a", -1, None)
    loop = asyncio.get_running_loop()
    start = loop.time()
    answer = await channel.recv("a", 0, 60)  # capped to 0.3 s
    assert loop.time() - start < 2 and answer == {"messages": [], "latest_seq": 0}
    said = await channel.recv("a", None, 0, "anyone?")
    assert said["sent"]["seq"] == 1 and said["messages"] == []
    seen = await channel.recv("b", 0, 0)
    assert seen["messages"][0]["awaiting"] is True
