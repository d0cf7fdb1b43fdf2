"""Shared harness: start real relay processes on free ports.

Every end-to-end, browser and cluster test talks to a relay started here as its own process
(`python -m agent_socket relay …`), over real sockets on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx2
import pytest

#: The settings end-to-end tests run with (issue 3): fast timeouts, debug endpoints on, and a
#: rate limit high enough that the whole suite's sockets from 127.0.0.1 never trip it.
TEST_RELAY_ARGS = (
    "--debug",
    "--max-sync-tool-ms",
    "3000",
    "--heartbeat-timeout-ms",
    "15000",
    "--resume-grace-ms",
    "3000",
    "--ws-rate-limit",
    "1000000",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RelayProcess:
    """A relay running as a child process."""

    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path
    args: tuple[str, ...] = field(default=())

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/_ws"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int | None = None) -> int:
        if self.proc.poll() is None:
            if sig is None:
                self.proc.terminate()
            else:
                self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def start_relay(
    *args: str, tmp: Path, env: dict[str, str] | None = None, port: int | None = None
) -> RelayProcess:
    """Start `agent-socket relay` on a free port and wait until /healthz answers."""
    port = port or free_port()
    log_path = tmp / f"relay-{port}-{time.monotonic_ns()}.log"
    full_env = {**os.environ, **(env or {})}
    cmd = [
        sys.executable,
        "-m",
        "agent_socket",
        "relay",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *args,
    ]
    log_file = log_path.open("wb")
    proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, env=full_env)
    relay = RelayProcess(port, proc, log_path, tuple(args))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"relay exited with {proc.returncode}:\n{relay.log()}")
        with contextlib.suppress(httpx2.HTTPError):
            if httpx2.get(f"{relay.http}/healthz", timeout=1).status_code == 200:
                return relay
        time.sleep(0.05)
    relay.stop()
    raise RuntimeError(f"relay did not start:\n{relay.log()}")


@contextlib.contextmanager
def running_relay(
    *args: str, tmp: Path, env: dict[str, str] | None = None
) -> Iterator[RelayProcess]:
    relay = start_relay(*args, tmp=tmp, env=env)
    try:
        yield relay
    finally:
        relay.stop()


@pytest.fixture(scope="session")
def relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayProcess]:
    """One shared relay with the end-to-end settings (TEST_RELAY_ARGS)."""
    with running_relay(*TEST_RELAY_ARGS, tmp=tmp_path_factory.mktemp("relay")) as proc:
        yield proc


@pytest.fixture
def fresh_relay(tmp_path: Path) -> Iterator[RelayProcess]:
    """A relay of its own for a test that changes relay-wide state (rate limit, caps, shutdown)."""
    with running_relay(*TEST_RELAY_ARGS, tmp=tmp_path) as proc:
        yield proc
