"""examples/counter.py and App.run: connect, print the link, serve, stop cleanly on Ctrl-C."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from agent_socket import AgentClient, AppOfflineError
from tests.conftest import TEST_RELAY_ARGS, start_relay
from tests.e2e.test_sdk_support import FAST, call_ok, counter_app, eventually

pytestmark = pytest.mark.timeout(60)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "counter.py"


async def test_counter_example_prints_a_working_link_and_stops_on_ctrl_c(relay: Any) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLE),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "AGENT_SOCKET_URL": relay.http},
    )
    assert proc.stdout is not None
    try:
        link = ""
        while not link:
            line = (await asyncio.wait_for(proc.stdout.readline(), 15)).decode()
            assert line, "the example exited before printing a link"
            if "/agents.md" in line:
                link = line.split()[-1]
        assert link.startswith(f"{relay.http}/v1/t/as_")
        async with AgentClient(link) as agent:
            assert await agent.call("/increment", {"by": 2}) == {"count": 2}
            assert await agent.call("/count") == {"count": 2}
            assert "counter" in (await agent.tools_json())["app"]["id"]
        proc.send_signal(signal.SIGINT)
        rest, _ = await asyncio.wait_for(proc.communicate(), 15)
        assert proc.returncode == 0
        assert b"Traceback" not in rest
        with pytest.raises(AppOfflineError):  # Ctrl-C ended the session
            await call_ok(link, "/count")
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_relay_restart_gives_a_fresh_session_with_new_links(tmp_path: Path) -> None:
    """A relay that lost its memory refuses the resume: the SDK re-mints and reports it."""
    first = start_relay(*TEST_RELAY_ARGS, tmp=tmp_path)
    port = first.port
    changes: list[Any] = []
    try:
        async with counter_app().connect(
            first.http, on_session_changed=changes.append, **FAST
        ) as session:
            old = await session.mint_link("survivor")
            first.stop()
            second = start_relay(*TEST_RELAY_ARGS, tmp=tmp_path, port=port)
            try:
                await eventually(lambda: len(changes) == 1, timeout=15, what="fresh session")
                new_url = changes[0].urls[old.url]
                assert new_url != old.url and new_url.startswith(second.http)
                assert await call_ok(new_url, "/increment") == {"count": 1}
            finally:
                await session.close()
                second.stop()
    finally:
        first.stop()
