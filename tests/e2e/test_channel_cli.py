"""Channel mode end to end from the command line: the real commands as subprocesses.

Local commands against a running host and a stopped one, host restarts (history and link
kept), ``watch`` across restarts, the bash client (``join.sh`` run by bash) and ``channel join``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.conftest import RelayProcess
from tests.e2e.test_channel_support import Host, Lines, channel_relay, cli, cli_env, ok, post

__all__ = ["channel_relay"]

pytestmark = pytest.mark.timeout(120)


def eventually_messages(base: str, name: str, since: int, count: int) -> list[dict[str, Any]]:
    """Long-poll as ``name`` until ``count`` messages after ``since`` arrived."""
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + 20
    while len(seen) < count and time.monotonic() < deadline:
        answer = ok(base, "/recv", {"name": name, "since": since, "wait": 4})
        seen.extend(answer["messages"])
        since = answer["latest_seq"]
    return seen


def test_local_commands_with_the_host_running(channel_relay: RelayProcess, tmp_path: Path) -> None:
    host = Host(channel_relay, tmp_path, "local", name="ana")
    try:
        ok(host.base, "/send", {"name": "bot", "text": "hello ana"})
        sent = cli(tmp_path, "send", "hello bot", "--room", "local")
        assert sent == {"ok": True, "seq": 2, "delivered_to_active": 0}
        got = cli(tmp_path, "recv", "--room", "local")
        assert [(m["from"], m["text"]) for m in got["messages"]] == [("bot", "hello ana")]
        assert got["latest_seq"] == 2 and got["host_running"] is True
        # The read position is kept: nothing new now, then exactly the next one.
        assert cli(tmp_path, "recv", "--room", "local")["messages"] == []
        ok(host.base, "/send", {"name": "bot", "text": "one"})
        ok(host.base, "/send", {"name": "bot", "text": "two"})
        first = cli(tmp_path, "recv", "--room", "local", "--once")
        assert [m["text"] for m in first["messages"]] == ["one"]
        second = cli(tmp_path, "recv", "--room", "local")
        assert [m["text"] for m in second["messages"]] == ["two"]
        # recv --wait is a long-poll: bot answers while it waits.
        waiting = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "agent_socket",
                "channel",
                "recv",
                "--room",
                "local",
                "--wait",
                "4",
                "--json",
            ],
            env=cli_env(tmp_path),
            stdout=subprocess.PIPE,
            text=True,
        )
        time.sleep(1.5)
        assert ok(host.base, "/send", {"name": "bot", "text": "late"})["delivered_to_active"] == 1
        out, _ = waiting.communicate(timeout=15)
        assert [m["text"] for m in json.loads(out)["messages"]] == ["late"]
        peers = {p["name"] for p in cli(tmp_path, "peers", "--room", "local")["peers"]}
        assert peers == {"ana", "bot"}
        status = cli(tmp_path, "status", "--room", "local")
        assert status["running"] is True and status["link"] == host.link
        # A second host for the same room is refused.
        second_host = subprocess.run(
            [
                sys.executable,
                "-m",
                "agent_socket",
                "channel",
                "host",
                "--relay",
                channel_relay.http,
                "--room",
                "local",
                "--json",
            ],
            env=cli_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert second_host.returncode == 2
        assert "already_running" in second_host.stdout
        assert cli(tmp_path, "stop", "--room", "local") == {"ok": True, "ended": False}
        assert host.proc.wait(timeout=15) == 0
    finally:
        host.interrupt()


def test_host_restart_keeps_history_link_and_publishes_the_queue(
    channel_relay: RelayProcess, tmp_path: Path
) -> None:
    host = Host(channel_relay, tmp_path, "keep", name="ana")
    link = host.link
    ok(host.base, "/send", {"name": "bot", "text": "before the restart"})
    assert host.interrupt() == 0
    # Host down: the link is held by the relay (503), local commands still work.
    status, body = post(host.base, "/send", {"name": "bot", "text": "x"})
    assert status == 503 and body["error"]["code"] == "app_offline"
    queued = cli(tmp_path, "send", "written while the host was down", "--room", "keep")
    assert queued["queued"] is True
    history = cli(tmp_path, "recv", "--room", "keep")
    assert history["host_running"] is False
    assert [m["text"] for m in history["messages"]] == ["before the restart"]
    assert cli(tmp_path, "status", "--room", "keep")["queued"] == 1
    again = Host(channel_relay, tmp_path, "keep", name="ana")
    try:
        assert again.link == link and again.event["resumed"] is True
        seen = ok(again.base, "/recv", {"name": "bot"})
        assert [(m["seq"], m["text"]) for m in seen["messages"]] == [
            (2, "written while the host was down")
        ]
        everything = ok(again.base, "/recv", {})
        assert [m["text"] for m in everything["messages"]] == [
            "before the restart",
            "written while the host was down",
        ]
    finally:
        assert again.interrupt() == 0


def test_watch_survives_two_host_restarts_without_duplicates(
    channel_relay: RelayProcess, tmp_path: Path
) -> None:
    host = Host(channel_relay, tmp_path, "w")
    ok(host.base, "/send", {"name": "al", "text": "m1"})
    watch = Lines(
        subprocess.Popen(
            [sys.executable, "-m", "agent_socket", "channel", "watch", "--room", "w", "--json"],
            env=cli_env(tmp_path),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
    )
    try:
        expected = ["m1"]
        assert json.loads(watch.next_line())["text"] == "m1"
        for restart in range(2):
            ok(host.base, "/send", {"name": "al", "text": f"live {restart}"})
            expected.append(f"live {restart}")
            assert json.loads(watch.next_line())["text"] == f"live {restart}"
            assert host.interrupt() == 0
            cli(tmp_path, "send", f"queued {restart}", "--room", "w")
            expected.append(f"queued {restart}")
            time.sleep(1.0)  # watch now follows the log
            host = Host(channel_relay, tmp_path, "w")
            assert json.loads(watch.next_line())["text"] == f"queued {restart}"
        ok(host.base, "/send", {"name": "al", "text": "last"})
        expected.append("last")
        assert json.loads(watch.next_line())["text"] == "last"
        time.sleep(1.0)
        lines = [json.loads(line) for line in watch.drain()]
        assert [m["text"] for m in lines] == expected
        assert [m["seq"] for m in lines] == list(range(1, len(expected) + 1))
    finally:
        watch.interrupt()
        host.interrupt()


def test_join_sh_run_by_bash(channel_relay: RelayProcess, tmp_path: Path) -> None:
    host = Host(channel_relay, tmp_path, "bash")
    try:
        ok(host.base, "/send", {"name": "ann", "text": "welcome"})
        script = httpx2.get(host.base + "/join.sh").text
        assert script.startswith("#!/usr/bin/env bash") and "jq" not in script
        (tmp_path / "join.sh").write_text(script)
        bash = Lines(
            subprocess.Popen(
                ["bash", str(tmp_path / "join.sh"), "dana"],
                cwd=tmp_path,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
        )
        try:
            assert bash.next_line().endswith("ann: welcome")  # the scrollback
            tricky = 'say "hi" \\ back\tslash $(not run) `nor this`'
            assert bash.proc.stdin is not None
            bash.proc.stdin.write(tricky + "\n")
            bash.proc.stdin.flush()
            seen = eventually_messages(host.base, "ann", 1, 1)
            assert [(m["from"], m["text"]) for m in seen] == [("dana", tricky)]
            time.sleep(0.5)
            ok(host.base, "/send", {"name": "ann", "text": "line one\nline two"})
            assert bash.next_line().endswith("ann: line one")
            assert bash.next_line() == "    line two"
            bash.proc.stdin.write("/quit\n")
            bash.proc.stdin.close()
            assert bash.proc.wait(timeout=15) == 0
        finally:
            if bash.proc.poll() is None:
                bash.proc.kill()
    finally:
        host.interrupt()


def test_channel_join_and_two_rooms(channel_relay: RelayProcess, tmp_path: Path) -> None:
    one = Host(channel_relay, tmp_path, "one")
    two = Host(channel_relay, tmp_path, "two")
    try:
        assert one.link != two.link
        ok(one.base, "/send", {"name": "ann", "text": "in room one"})
        ok(two.base, "/send", {"name": "ann", "text": "in room two"})
        join = Lines(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "agent_socket",
                    "channel",
                    "join",
                    one.link,
                    "--name",
                    "jo",
                    "--json",
                ],
                env=cli_env(tmp_path),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
        )
        try:
            assert json.loads(join.next_line())["text"] == "in room one"
            assert join.proc.stdin is not None
            join.proc.stdin.write("hello from jo\n")
            join.proc.stdin.flush()
            seen = eventually_messages(one.base, "ann", 1, 1)
            assert [(m["from"], m["text"]) for m in seen] == [("jo", "hello from jo")]
            ok(one.base, "/send", {"name": "ann", "text": "hi jo"})
            assert json.loads(join.next_line())["text"] == "hi jo"
            join.proc.stdin.close()
            assert join.proc.wait(timeout=15) == 0
        finally:
            if join.proc.poll() is None:
                join.proc.kill()
        # Each room keeps its own log.
        assert [
            m["text"] for m in cli(tmp_path, "recv", "--room", "two", "--name", "zed")["messages"]
        ] == ["in room two"]
    finally:
        one.interrupt()
        two.interrupt()
