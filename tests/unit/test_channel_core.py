"""Channel core without I/O: seqs, cursors, scrollback, eviction, waiters, peers."""

from __future__ import annotations

import asyncio

import pytest

from agent_socket.channel.core import (
    MAX_BATCH,
    MAX_TEXT_BYTES,
    SCROLLBACK,
    ChannelError,
    Message,
    Room,
    check_name,
    check_text,
)


def fill(room: Room, count: int, sender: str = "a") -> list[Message]:
    out = []
    for i in range(count):
        msg = room.make(sender, f"m{i}")
        room.publish(msg)
        out.append(msg)
    return out


def test_seqs_are_consecutive_and_publish_refuses_old_seqs() -> None:
    room = Room()
    msgs = fill(room, 3)
    assert [m.seq for m in msgs] == [1, 2, 3]
    assert room.latest_seq == 3 and room.first_seq == 1
    with pytest.raises(ValueError):
        room.publish(Message(3, "x", "dup", 0.0))


def test_read_skips_own_messages_but_moves_the_cursor_past_them() -> None:
    room = Room()
    room.publish(room.make("alice", "hi"))
    room.publish(room.make("bob", "hello"))
    room.publish(room.make("alice", "how are you"))
    batch = room.read("alice", 0)
    assert [m.text for m in batch.messages] == ["hello"]
    assert batch.latest_seq == 3
    lurker = room.read(None, 0)
    assert [m.seq for m in lurker.messages] == [1, 2, 3]


def test_scrollback_is_the_last_50_not_from_the_caller() -> None:
    room = Room()
    fill(room, 70, "a")
    room.publish(room.make("me", "mine"))
    batch = room.scrollback("me")
    assert len(batch.messages) == SCROLLBACK
    assert [m.seq for m in batch.messages] == list(range(21, 71))
    assert batch.latest_seq == 71


def test_eviction_reports_missed_messages_and_keeps_the_cursor_gap_free() -> None:
    room = Room(window=10)
    fill(room, 25)
    assert room.first_seq == 16
    batch = room.read(None, 3)
    assert batch.missed == 12  # seqs 4..15 fell out
    assert [m.seq for m in batch.messages] == list(range(16, 26))
    assert batch.as_json()["missed_messages"] == 12
    assert "missed_messages" not in room.read(None, 20).as_json()


def test_a_large_backlog_comes_in_batches_without_skipping() -> None:
    room = Room(window=2000)
    fill(room, MAX_BATCH + 120)
    first = room.read(None, 0)
    assert len(first.messages) == MAX_BATCH and first.latest_seq == MAX_BATCH
    second = room.read(None, first.latest_seq)
    assert [m.seq for m in second.messages] == list(range(MAX_BATCH + 1, MAX_BATCH + 121))


def test_a_cursor_ahead_of_the_room_is_clamped() -> None:
    room = Room()
    fill(room, 2)
    batch = room.read(None, 99)
    assert batch.messages == () and batch.latest_seq == 2


def test_history_seeds_the_room_and_a_gap_restarts_the_window() -> None:
    history = [Message(s, "a", str(s), 0.0) for s in (5, 6, 7)]
    room = Room(window=10, history=history)
    assert (room.first_seq, room.latest_seq) == (5, 7)
    assert room.make("b", "x").seq == 8
    assert room.read(None, 0).missed == 4


async def test_wait_returns_as_soon_as_someone_else_writes() -> None:
    room = Room()
    loop = asyncio.get_running_loop()
    waiter = asyncio.create_task(room.wait("bob", 0, 5))
    await asyncio.sleep(0.05)
    assert room.waiting_except("alice") == 1
    assert room.waiting_except("bob") == 0
    assert room.peers()[0]["currently_waiting"] is True
    room.publish(room.make("bob", "own message does not wake me"))
    await asyncio.sleep(0.05)
    assert not waiter.done()
    start = loop.time()
    room.publish(room.make("alice", "wake up", awaiting=True))
    batch = await asyncio.wait_for(waiter, 1)
    assert loop.time() - start < 0.5
    assert [(m.sender, m.awaiting) for m in batch.messages] == [("alice", True)]
    assert batch.latest_seq == 2
    assert room.waiting_except("alice") == 0


async def test_wait_times_out_with_an_empty_batch() -> None:
    room = Room()
    fill(room, 1, "me")
    batch = await room.wait("me", 0, 0.1)
    assert batch.messages == () and batch.latest_seq == 1


async def test_a_cancelled_waiter_is_no_longer_counted() -> None:
    room = Room()
    waiter = asyncio.create_task(room.wait(None, 0, 5))
    await asyncio.sleep(0.02)
    assert room.waiting_except("x") == 1
    waiter.cancel()
    await asyncio.gather(waiter, return_exceptions=True)
    assert room.waiting_except("x") == 0


def test_peers_expire_after_five_minutes_and_lurkers_are_not_listed() -> None:
    now = [1000.0]
    room = Room(clock=lambda: now[0])
    room.touch("alice")
    room.touch(None)
    now[0] += 100
    room.touch("bob")
    assert [p["name"] for p in room.peers()] == ["bob", "alice"]
    assert room.peers()[1]["last_active_s_ago"] == 100.0
    now[0] += 250
    assert [p["name"] for p in room.peers()] == ["bob"]
    assert room.is_new_peer("alice")


def test_names_and_text_limits() -> None:
    assert check_name("claude-tab-2") == "claude-tab-2"
    assert check_name("José") == "José"
    for bad in ("", " x", "x" * 41, "a\nb", "-lead"):
        with pytest.raises(ChannelError) as info:
            check_name(bad)
        assert info.value.code == "bad_input"
    assert check_text("x" * MAX_TEXT_BYTES)
    with pytest.raises(ChannelError) as too_big:
        check_text("é" * (MAX_TEXT_BYTES // 2 + 1))
    assert too_big.value.code == "message_too_large"
    with pytest.raises(ChannelError):
        check_text("")
