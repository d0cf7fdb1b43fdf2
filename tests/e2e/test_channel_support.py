"""Shared pieces of the channel end-to-end tests (no tests here).

A channel relay of our own: an 8 s sync timeout (the shared relay's 3 s is shorter than a useful
long-poll) and a 10 s hold window, so a restarted host can resume. Hosts run as real
``python -m agent_socket channel host --json`` processes with their data in a tmp dir.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.conftest import RelayProcess, running_relay

CHANNEL_RELAY_ARGS = (
    "--debug",
    "--max-sync-tool-ms",
    "8000",
    "--resume-grace-ms",
    "10000",
    "--ws-rate-limit",
    "100000",
)
#: The hosts' long-poll cap: well below the relay's 8 s sync timeout.
WAIT_CAP = "4"


@pytest.fixture(scope="module")
def channel_relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayProcess]:
    with running_relay(*CHANNEL_RELAY_ARGS, tmp=tmp_path_factory.mktemp("chrelay")) as proc:
        yield proc


def cli_env(data: Path) -> dict[str, str]:
    return {**os.environ, "AGENT_SOCKET_CHANNEL_DIR": str(data), "PYTHONUNBUFFERED": "1"}


def cli(data: Path, *args: str, timeout: float = 30, stdin: str | None = None) -> Any:
    """Run ``agent-socket channel ARGS --json`` and return its parsed stdout."""
    proc = subprocess.run(
        [sys.executable, "-m", "agent_socket", "channel", *args, "--json"],
        env=cli_env(data),
        capture_output=True,
        text=True,
        timeout=timeout,
        input=stdin,
    )
    assert proc.returncode == 0, f"{args}: {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return json.loads(proc.stdout)


class Lines:
    """A child process whose stdout lines are collected by a thread."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def next_line(self, timeout: float = 20) -> str:
        line = self.lines.get(timeout=timeout)
        self.seen.append(line)
        return line

    def drain(self) -> list[str]:
        while True:
            try:
                self.seen.append(self.lines.get_nowait())
            except queue.Empty:
                return self.seen

    def interrupt(self, timeout: float = 20) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


class Host(Lines):
    """``channel host --json`` as a child process; ``link`` once it is connected."""

    def __init__(
        self,
        relay: RelayProcess,
        data: Path,
        room: str = "default",
        *extra: str,
        name: str = "hoster",
    ) -> None:
        cmd = [
            sys.executable,
            "-m",
            "agent_socket",
            "channel",
            "host",
            "--json",
            "--relay",
            relay.http,
            "--room",
            room,
            "--name",
            name,
            "--wait-cap",
            WAIT_CAP,
            *extra,
        ]
        super().__init__(
            subprocess.Popen(
                cmd,
                env=cli_env(data),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
        self.event = self.wait_event("link")
        self.link: str = self.event["url"]
        self.base = self.link.removesuffix("/agents.md")

    def wait_event(self, kind: str, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {kind} event; saw {self.seen}")
            try:
                line = self.next_line(remaining)
            except queue.Empty:
                raise AssertionError(f"no {kind} event; saw {self.seen}") from None
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("event") == kind:
                return dict(event)


def post(base: str, path: str, body: Any = None, timeout: float = 20) -> tuple[int, Any]:
    """``POST $BASE<path>`` with a JSON body: ``(status, parsed body)``."""
    response = httpx2.post(
        base + path,
        content=b"" if body is None else json.dumps(body).encode(),
        headers={"content-type": "application/json"},
        timeout=timeout,
    )
    try:
        parsed = response.json()
    except ValueError:
        parsed = response.text
    return response.status_code, parsed


def ok(base: str, path: str, body: Any = None, timeout: float = 20) -> Any:
    status, parsed = post(base, path, body, timeout)
    assert status == 200, (status, parsed)
    return parsed


async def apost(client: httpx2.AsyncClient, base: str, path: str, body: Any) -> Any:
    response = await client.post(base + path, json=body)
    assert response.status_code == 200, (response.status_code, response.text)
    return response.json()
