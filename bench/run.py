"""The agent-socket benchmark: ``make bench`` (about 5 minutes) or ``bench/run.py --quick``.

What it measures (issue 8), on this machine, in one run:

1. tool-call throughput and latency: wrk posts small JSON bodies to a link whose app (one
   process, one WebSocket, bench/echo_app.py) echoes them, at 1, 64 and 256 connections;
2. the baseline: the same load against a raw ASGI echo on the same uvicorn stack
   (bench/baseline.py), and relay / baseline per row;
3. idle sessions: N registered sessions (5 tools, 2 KB agents.md each) opened from a separate
   process (bench/idle_sessions.py): the relay's resident memory per session and its CPU while
   every app sends the SDK heartbeat every 25 s;
4. the async cycle (202 + poll) and bodies of 64 KiB and 1 MiB;

and, with py-spy installed, a profile of the relay under the 64-connection load.

Servers (relay, baseline) are pinned to the first core, wrk and the apps to the second, when the
machine has two. It prints a table and writes it to bench/RESULTS.md (``--quick``: to
bench/out/) with the machine, the exact commands and which goals hold.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import importlib.metadata
import os
import platform
import re
import resource
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import orjson
from rich.console import Console
from rich.table import Table

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
OUT = BENCH / "out"
sys.path.insert(0, str(BENCH))

from wrkparse import WrkResult, parse  # noqa: E402

PYTHON = sys.executable
CLK_TCK = os.sysconf("SC_CLK_TCK")
SMALL_BODY = 64
KIB = 1024
MIB = 1024 * 1024

#: Relay flags for every run: production settings (no --debug), no per-request log lines.
RELAY_FLAGS = ("--log-level", "warning")
#: Throughput relay: one session carries every wrk connection, so its in-flight cap (100, a
#: per-session fairness limit) must exceed the 256-connection row.
THROUGHPUT_FLAGS = ("--max-inflight-per-session", "1000")
#: Idle-sessions relay: every socket comes from 127.0.0.1, past the default upgrade rate limit.
IDLE_FLAGS = ("--ws-rate-limit", "1000000")

#: A run during which other processes used more than this share of a core is flagged.
DISTURBED = 0.15

#: The echo app completes an async task this long after its 202 (see bench/echo_app.py): at once,
#: the hardest case for the relay (the task_complete arrives right behind its 202).
ASYNC_TASK_DELAY_MS = 0.0

GOAL_RPS_64 = 10_000
GOAL_RATIO = 0.4
GOAL_ADDED_P50_S = 0.5e-3
GOAL_KIB_PER_SESSION = 20.0

ANALYSIS_START = "<!-- analysis:start (kept across runs; edit by hand) -->"
ANALYSIS_END = "<!-- analysis:end -->"


# ---- settings ------------------------------------------------------------------------------


@dataclasses.dataclass
class Settings:
    duration: float
    warmup: float
    connections: tuple[int, ...]
    async_connections: int
    large_bodies: tuple[tuple[int, int], ...]  # (body bytes, connections)
    sessions: int
    idle_window: float
    ping_interval: float
    profile: bool
    output: Path
    quick: bool
    quiet_wait: float


def parse_args(argv: Sequence[str] | None = None) -> Settings:
    parser = argparse.ArgumentParser(
        description="agent-socket relay benchmark (issue 8); writes bench/RESULTS.md."
    )
    parser.add_argument("--quick", action="store_true", help="a short smoke run (< 1 min)")
    parser.add_argument("--duration", type=float, help="seconds per wrk run (default 15; 2)")
    parser.add_argument("--sessions", type=int, help="idle sessions to open (5000; quick 500)")
    parser.add_argument(
        "--idle-window", type=float, help="seconds of heartbeat CPU measurement (30; quick 5)"
    )
    parser.add_argument(
        "--profile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="profile the relay with py-spy at 64 connections (default: on unless --quick)",
    )
    parser.add_argument("--output", type=Path, help="results file (default bench/RESULTS.md)")
    parser.add_argument(
        "--quiet-wait",
        type=float,
        help="before each run, wait up to this many seconds for other processes to leave the "
        "CPUs idle (default 20; quick 2)",
    )
    args = parser.parse_args(argv)
    quick = bool(args.quick)
    return Settings(
        duration=args.duration or (2.0 if quick else 15.0),
        warmup=1.0 if quick else 3.0,
        connections=(1, 64, 256),
        async_connections=32,
        large_bodies=((64 * KIB, 64), (MIB, 16)),
        sessions=args.sessions or (500 if quick else 5000),
        idle_window=args.idle_window or (5.0 if quick else 30.0),
        ping_interval=25.0,
        profile=(not quick) if args.profile is None else bool(args.profile),
        output=args.output or (OUT / "RESULTS-quick.md" if quick else BENCH / "RESULTS.md"),
        quick=quick,
        quiet_wait=args.quiet_wait if args.quiet_wait is not None else (2.0 if quick else 20.0),
    )


# ---- processes -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cores() -> tuple[str | None, str | None]:
    """(server core, client core) for taskset, or (None, None) without two cores/taskset."""
    available = sorted(os.sched_getaffinity(0))
    if len(available) < 2 or shutil.which("taskset") is None:
        return None, None
    return str(available[0]), str(available[1])


def raise_fd_limit() -> None:
    """Children inherit this: the relay must hold one descriptor per idle session."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = 65536 if hard == resource.RLIM_INFINITY else hard
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of stat(5)


def busy_seconds() -> float:
    """CPU time every core has spent busy (steal included: the hypervisor took it from us)."""
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("cpu "):
            user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, line.split()[1:9])
            return (user + nice + system + irq + softirq + steal) / CLK_TCK
    raise RuntimeError("no cpu line in /proc/stat")


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


@dataclasses.dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def check(self) -> None:
        if self.proc.poll() is not None:
            tail = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{tail}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Bench:
    def __init__(self, settings: Settings, console: Console) -> None:
        self.settings = settings
        self.console = console
        self.server_core, self.client_core = cores()
        self.children: list[Child] = []
        #: (what, command) in the order they ran, for RESULTS.md; secrets replaced
        self.commands: list[tuple[str, str]] = []
        self._seen_commands: set[str] = set()
        self.secrets: dict[str, str] = {}

    def pinned(self, cmd: Sequence[str], core: str | None) -> list[str]:
        return ["taskset", "-c", core, *cmd] if core is not None else list(cmd)

    def record(self, what: str, cmd: Sequence[str]) -> None:
        text = shlex.join(cmd).replace(PYTHON, ".venv/bin/python").replace(str(ROOT) + "/", "")
        for secret, placeholder in self.secrets.items():
            text = text.replace(secret, placeholder)
        text = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:$PORT", text)
        text = re.sub(r"--port \d+", "--port $PORT", text)
        text = re.sub(r"--pid \d+", "--pid $RELAY_PID", text)
        if text not in self._seen_commands:
            self._seen_commands.add(text)
            self.commands.append((what, text))

    def spawn(
        self, name: str, cmd: Sequence[str], core: str | None, *, pipes: bool = False
    ) -> Child:
        full = self.pinned(cmd, core)
        self.record(name, full)
        OUT.mkdir(exist_ok=True)
        log = OUT / f"{name.replace(' ', '-')}.log"
        with log.open("wb") as err:
            proc = subprocess.Popen(
                full,
                cwd=ROOT,
                stdin=subprocess.PIPE if pipes else subprocess.DEVNULL,
                stdout=subprocess.PIPE if pipes else err,
                stderr=err,
            )
        child = Child(name, proc, log)
        self.children.append(child)
        return child

    def start_relay(self, name: str, *flags: str) -> tuple[Child, int]:
        port = free_port()
        cmd = [PYTHON, "-m", "agent_socket", "relay", "--host", "127.0.0.1", "--port", str(port)]
        relay = self.spawn(name, [*cmd, *RELAY_FLAGS, *flags], self.server_core)
        wait_http(f"http://127.0.0.1:{port}/healthz", relay)
        return relay, port

    def stop_all(self) -> None:
        for child in reversed(self.children):
            child.stop()
        self.children.clear()


def wait_http(url: str, child: Child, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        child.check()
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{child.name} did not answer {url} within {timeout:.0f} s")


def read_event(stream: IO[bytes], child: Child, want: str, timeout: float) -> dict[str, Any]:
    """The next JSON line ``{"event": want, …}`` from a helper's stdout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = stream.readline()
        if not line:
            child.check()
            raise RuntimeError(f"{child.name} closed its output before {want!r}")
        with contextlib.suppress(orjson.JSONDecodeError):
            event = orjson.loads(line)
            if isinstance(event, dict) and event.get("event", want) == want:
                return dict(event)
    raise RuntimeError(f"{child.name}: no {want!r} within {timeout:.0f} s")


# ---- wrk runs ------------------------------------------------------------------------------


@dataclasses.dataclass
class Run:
    """One wrk run and the CPU the watched processes spent during it (fraction of a core)."""

    result: WrkResult
    cpu: dict[str, float]
    cpu_seconds: dict[str, float]
    #: cores' worth of CPU used by processes outside the bench during the run (0.25 = a quarter
    #: of one core); high values mean the row was disturbed
    other: float
    #: the run started before the machine was quiet
    started_busy: bool

    @property
    def rps(self) -> float:
        return self.result.requests_per_s

    def cpu_us_per_request(self, name: str) -> float | None:
        if name not in self.cpu_seconds or self.result.requests == 0:
            return None
        return self.cpu_seconds[name] / self.result.requests * 1e6


def run_wrk(
    bench: Bench,
    url: str,
    connections: int,
    duration: float,
    script: str,
    script_args: Sequence[str],
    watch: dict[str, Child],
    *,
    record: bool = True,
) -> Run:
    cmd = bench.pinned(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{duration:g}s",
            "--timeout",
            "10s",
            "--latency",
            "-s",
            f"bench/wrk/{script}",
            url,
            "--",
            *script_args,
        ],
        bench.client_core,
    )
    if record:
        bench.record("wrk", cmd)
    quiet = wait_quiet(bench.settings.quiet_wait) if record else True
    before = {name: cpu_seconds(child.pid) for name, child in watch.items()}
    busy_before, wrk_before = busy_seconds(), children_cpu_seconds()
    started = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    spent = {name: cpu_seconds(child.pid) - before[name] for name, child in watch.items()}
    ours = sum(spent.values()) + children_cpu_seconds() - wrk_before
    other = max(0.0, busy_seconds() - busy_before - ours) / wall
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    cpu = {k: v / wall for k, v in spent.items()}
    return Run(parse(done.stdout), cpu, spent, other, not quiet)


def wait_quiet(max_wait: float, threshold: float = 0.15, sample: float = 0.5) -> bool:
    """Wait until the machine's CPUs are idle (< ``threshold`` of a core busy); False if they
    were still busy after ``max_wait`` seconds. The bench's own servers idle between runs."""
    deadline = time.monotonic() + max_wait
    while True:
        before, started = busy_seconds(), time.perf_counter()
        time.sleep(sample)
        if (busy_seconds() - before) / (time.perf_counter() - started) < threshold:
            return True
        if time.monotonic() >= deadline:
            return False


@dataclasses.dataclass
class Row:
    test: str
    connections: int
    relay: Run
    baseline: Run | None = None

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or self.baseline.rps == 0:
            return None
        return self.relay.rps / self.baseline.rps


@dataclasses.dataclass
class Idle:
    sessions: int
    failed: int
    open_seconds: float
    rss_before_kib: int
    rss_after_kib: int
    rss_end_kib: int
    cpu_fraction: float
    window_s: float
    pings: int
    pongs: int
    closed: int
    heartbeat_interval_s: float

    @property
    def kib_per_session(self) -> float:
        return (self.rss_after_kib - self.rss_before_kib) / max(self.sessions, 1)

    @property
    def heartbeats_per_s(self) -> float:
        return self.sessions / self.heartbeat_interval_s

    @property
    def cpu_us_per_heartbeat(self) -> float:
        return self.cpu_fraction / max(self.heartbeats_per_s, 1e-9) * 1e6


@dataclasses.dataclass
class Results:
    rows: list[Row] = dataclasses.field(default_factory=list)
    async_row: Row | None = None
    async_cycles_per_s: float = 0.0
    async_detail: str = ""
    idle: Idle | None = None
    profile_top: list[tuple[str, float, float]] = dataclasses.field(default_factory=list)
    profile_file: Path | None = None
    notes: list[str] = dataclasses.field(default_factory=list)


def throughput(bench: Bench, results: Results) -> None:
    settings, console = bench.settings, bench.console
    relay, relay_port = bench.start_relay("relay", *THROUGHPUT_FLAGS)
    base_port = free_port()
    baseline = bench.spawn(
        "baseline", [PYTHON, "bench/baseline.py", "--port", str(base_port)], bench.server_core
    )
    wait_http(f"http://127.0.0.1:{base_port}/", baseline)
    app = bench.spawn(
        "echo app",
        [
            PYTHON,
            "bench/echo_app.py",
            "--url",
            f"ws://127.0.0.1:{relay_port}/v1/_ws",
            "--task-delay-ms",
            f"{ASYNC_TASK_DELAY_MS:g}",
        ],
        bench.client_core,
        pipes=True,
    )
    assert app.proc.stdout is not None
    token = str(read_event(app.proc.stdout, app, "token", 30)["token"])
    bench.secrets[token] = "$TOKEN"
    link = f"http://127.0.0.1:{relay_port}/v1/t/{token}"
    base_url = f"http://127.0.0.1:{base_port}/echo"
    watch_relay = {"relay": relay, "app": app}
    watch_base = {"baseline": baseline}

    def measure(url: str, conns: int, body: int, watch: dict[str, Child]) -> Run:
        run = run_wrk(bench, url, conns, settings.duration, "post.lua", [str(body)], watch)
        for child in (relay, baseline, app):
            child.check()
        return run

    console.log(f"warm-up: {settings.warmup:g} s per server")
    for url, watch in ((base_url, watch_base), (f"{link}/echo", watch_relay)):
        run_wrk(bench, url, 64, settings.warmup, "post.lua", [str(SMALL_BODY)], watch, record=False)

    for conns in settings.connections:
        console.log(f"small bodies ({SMALL_BODY} B), {conns} connection(s)")
        base_run = measure(base_url, conns, SMALL_BODY, watch_base)
        relay_run = measure(f"{link}/echo", conns, SMALL_BODY, watch_relay)
        results.rows.append(Row(f"echo {SMALL_BODY} B", conns, relay_run, base_run))

    console.log(f"async 202 + poll cycle, {settings.async_connections} connections")
    origin = f"http://127.0.0.1:{relay_port}"
    path = f"/v1/t/{token}"
    run = run_wrk(
        bench, origin, settings.async_connections, settings.duration, "async.lua", [path],
        watch_relay,
    )  # fmt: skip
    results.async_row = Row("async 202 + poll", settings.async_connections, run)
    extra = run.result.extra
    results.async_cycles_per_s = extra.get("CYCLES", 0.0) / max(run.result.duration_s, 1e-9)
    results.async_detail = (
        f"{extra.get('POSTS', 0):,.0f} tasks started, {extra.get('CYCLES', 0):,.0f} results "
        f"fetched, {extra.get('PENDING', 0):,.0f} polls found the task still pending (the app "
        f"completes each task {ASYNC_TASK_DELAY_MS:g} ms after its 202), "
        f"{extra.get('LOST', 0):,.0f} tasks lost (still pending after 200 polls)"
    )

    for body, conns in settings.large_bodies:
        label = f"echo {body // MIB} MiB" if body >= MIB else f"echo {body // KIB} KiB"
        console.log(f"large bodies ({label}), {conns} connections")
        base_run = measure(base_url, conns, body, watch_base)
        relay_run = measure(f"{link}/echo", conns, body, watch_relay)
        results.rows.append(Row(label, conns, relay_run, base_run))

    if settings.profile:
        profile(bench, results, relay, f"{link}/echo", watch_relay)
    bench.stop_all()


def profile(
    bench: Bench, results: Results, relay: Child, url: str, watch: dict[str, Child]
) -> None:
    spy = shutil.which("py-spy", path=str(Path(PYTHON).parent)) or shutil.which("py-spy")
    if spy is None:
        results.notes.append("py-spy not installed: no profile (pip install py-spy).")
        return
    duration = bench.settings.duration
    folded = OUT / "profile-relay-64c.folded"
    cmd = bench.pinned(
        [spy, "record", "--pid", str(relay.pid), "--duration", f"{duration + 1:.0f}",
         "--rate", "250", "--nonblocking", "--format", "raw", "--output", str(folded)],
        bench.client_core,
    )  # fmt: skip
    bench.record("py-spy", cmd)
    bench.console.log("profiling the relay with py-spy at 64 connections")
    with (OUT / "py-spy.log").open("wb") as log:
        spy_proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        time.sleep(0.5)
        run_wrk(bench, url, 64, duration, "post.lua", [str(SMALL_BODY)], watch, record=False)
        spy_proc.wait(timeout=duration + 30)
    if folded.exists():
        results.profile_top = summarize_profile(folded.read_text())
        results.profile_file = folded


_FRAME_RE = re.compile(r"^(.*) \((.*?)(?::\d+)?\)$")


def summarize_profile(folded: str, top: int = 25) -> list[tuple[str, float, float]]:
    """(frame, self %, total %) of the hottest frames in py-spy's collapsed stacks."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in folded.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        samples += count
        frames = []
        for raw in stack.split(";"):
            match = _FRAME_RE.match(raw.strip())
            name, where = (match.group(1), match.group(2)) if match else (raw, "")
            where = re.sub(r"^.*/(site-packages|src)/", "", where)
            frames.append(f"{name} ({where})")
        own[frames[-1]] += count
        for frame in set(frames):
            total[frame] += count
    if samples == 0:
        return []
    return [
        (frame, 100 * count / samples, 100 * total[frame] / samples)
        for frame, count in own.most_common(top)
    ]


# ---- idle sessions ---------------------------------------------------------------------------


def idle_sessions(bench: Bench, results: Results) -> None:
    settings, console = bench.settings, bench.console
    relay, port = bench.start_relay("idle relay", *IDLE_FLAGS)
    settle = 3.0
    client = bench.spawn(
        "idle sessions",
        [
            PYTHON, "bench/idle_sessions.py", "--url", f"ws://127.0.0.1:{port}/v1/_ws",
            "--sessions", str(settings.sessions), "--tools", "5", "--agents-md-bytes", "2048",
            "--ping-interval", f"{settings.ping_interval:g}",
            "--duration", f"{settle + settings.idle_window + 2:g}",
        ],
        bench.client_core,
        pipes=True,
    )  # fmt: skip
    assert client.proc.stdout is not None and client.proc.stdin is not None
    read_event(client.proc.stdout, client, "warm", 60)
    time.sleep(1.0)
    before = rss_kib(relay.pid)
    console.log(f"idle sessions: opening {settings.sessions}")
    client.proc.stdin.write(b"go\n")
    client.proc.stdin.flush()
    opened = read_event(client.proc.stdout, client, "opened", 600)
    console.log(
        f"idle sessions: {opened['sessions']} open in {opened['seconds']:.1f} s; "
        f"heartbeats every {settings.ping_interval:g} s, CPU over {settings.idle_window:g} s"
    )
    time.sleep(settle)
    after = rss_kib(relay.pid)
    cpu_before = cpu_seconds(relay.pid)
    started = time.perf_counter()
    time.sleep(settings.idle_window)
    cpu = (cpu_seconds(relay.pid) - cpu_before) / (time.perf_counter() - started)
    done = read_event(client.proc.stdout, client, "done", settle + settings.idle_window + 60)
    end = rss_kib(relay.pid)
    client.proc.stdin.close()
    results.idle = Idle(
        sessions=int(opened["sessions"]),
        failed=int(opened["failed"]),
        open_seconds=float(opened["seconds"]),
        rss_before_kib=before,
        rss_after_kib=after,
        rss_end_kib=end,
        cpu_fraction=cpu,
        window_s=settings.idle_window,
        pings=int(done["pings"]),
        pongs=int(done["pongs"]),
        closed=int(done["closed"]),
        heartbeat_interval_s=settings.ping_interval,
    )
    relay.check()
    bench.stop_all()


# ---- report --------------------------------------------------------------------------------


def ms(seconds: float | None) -> str:
    return "–" if seconds is None else f"{seconds * 1e3:.2f} ms"


def num(value: float | None, digits: int = 0) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.0f} %"


def run_columns(run: Run | None) -> list[str]:
    if run is None:
        return ["–", "–", "–"]
    return [num(run.rps), ms(run.result.p50_s), ms(run.result.p99_s)]


THROUGHPUT_HEADER = [
    "Test", "Conns", "Relay calls/s", "Relay p50", "Relay p99", "Baseline req/s", "Baseline p50",
    "Baseline p99", "Relay / baseline", "Relay CPU", "Relay CPU µs/call", "App CPU", "Errors",
    "Other load",
]  # fmt: skip


def throughput_rows(results: Results) -> list[list[str]]:
    out = []
    rows = [*results.rows, *([results.async_row] if results.async_row else [])]
    for row in rows:
        relay = row.relay
        errors = relay.result.errors + (row.baseline.result.errors if row.baseline else 0)
        out.append(
            [
                row.test,
                str(row.connections),
                *run_columns(relay),
                *run_columns(row.baseline),
                "–" if row.ratio is None else f"{row.ratio:.2f}",
                pct(relay.cpu.get("relay")),
                num(relay.cpu_us_per_request("relay"), 1),
                pct(relay.cpu.get("app")),
                str(errors),
                other_load(row),
            ]
        )
    return out


def other_load(row: Row) -> str:
    """CPU used outside the bench during the row's runs; flagged when it may have skewed it."""
    runs = [row.relay, *([row.baseline] if row.baseline else [])]
    worst = max(run.other for run in runs)
    flag = " ⚠" if worst > DISTURBED or any(run.started_busy for run in runs) else ""
    return f"{worst * 100:.0f} %{flag}"


IDLE_HEADER = [
    "Sessions", "Opened in", "Relay RSS before", "Relay RSS after", "Per session",
    "Heartbeats/s", "Relay CPU", "CPU µs/heartbeat", "Pongs / pings", "Dropped",
]  # fmt: skip


def idle_row(idle: Idle) -> list[str]:
    return [
        f"{idle.sessions:,}" + (f" ({idle.failed} failed)" if idle.failed else ""),
        f"{idle.open_seconds:.1f} s ({idle.sessions / max(idle.open_seconds, 1e-9):,.0f}/s)",
        f"{idle.rss_before_kib / 1024:.1f} MiB",
        f"{idle.rss_after_kib / 1024:.1f} MiB",
        f"{idle.kib_per_session:.1f} KiB",
        f"{idle.heartbeats_per_s:.0f}",
        f"{idle.cpu_fraction * 100:.1f} %",
        f"{idle.cpu_us_per_heartbeat:.0f}",
        f"{idle.pongs:,} / {idle.pings:,}",
        str(idle.closed),
    ]


@dataclasses.dataclass
class Goal:
    name: str
    target: str
    measured: str
    held: bool | None  # None: not measured


def goals(results: Results) -> list[Goal]:
    by_conns = {row.connections: row for row in results.rows if row.test.endswith(" B")}
    out: list[Goal] = []
    row64 = by_conns.get(64)
    out.append(
        Goal(
            "calls/s at 64 connections, relay on one core",
            f"≥ {GOAL_RPS_64:,}",
            num(row64.relay.rps) if row64 else "–",
            None if row64 is None else row64.relay.rps >= GOAL_RPS_64,
        )
    )
    # At 1 connection throughput is 1 / round trip, and the relay's round trip includes the app
    # process by design: that row is judged by the added-latency goal. The ratio goal is about
    # the loaded rows.
    ratios = [
        (row.connections, row.ratio)
        for row in by_conns.values()
        if row.ratio is not None and row.connections > 1
    ]
    worst = min((ratio for _, ratio in ratios), default=None)
    out.append(
        Goal(
            "relay / baseline, small bodies under load (64 and 256 connections)",
            f"≥ {GOAL_RATIO}",
            ", ".join(f"{ratio:.2f} @ {conns}" for conns, ratio in ratios) or "–",
            None if worst is None else worst >= GOAL_RATIO,
        )
    )
    row1 = by_conns.get(1)
    added = None
    if row1 and row1.baseline and row1.relay.result.p50_s and row1.baseline.result.p50_s:
        added = row1.relay.result.p50_s - row1.baseline.result.p50_s
    out.append(
        Goal(
            "added p50 latency at 1 connection",
            f"< {GOAL_ADDED_P50_S * 1e3:.1f} ms",
            ms(added),
            None if added is None else added < GOAL_ADDED_P50_S,
        )
    )
    idle = results.idle
    out.append(
        Goal(
            "memory per idle registered session",
            f"≤ {GOAL_KIB_PER_SESSION:.0f} KiB",
            "–" if idle is None else f"{idle.kib_per_session:.1f} KiB",
            None if idle is None else idle.kib_per_session <= GOAL_KIB_PER_SESSION,
        )
    )
    return out


def verdict(held: bool | None) -> str:
    return {True: "yes", False: "**no**", None: "not measured"}[held]


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def package_versions() -> str:
    names = ["agent-socket", "uvicorn", "uvloop", "httptools", "websockets", "starlette", "orjson"]
    parts = []
    for name in names:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            parts.append(f"{name} {importlib.metadata.version(name)}")
    return ", ".join(parts)


def machine() -> list[tuple[str, str]]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
    wrk_version = (wrk.stdout or wrk.stderr).splitlines()[0] if (wrk.stdout or wrk.stderr) else ""
    rev = subprocess.run(
        ["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    mem = "unknown"
    with contextlib.suppress(OSError):
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kib / 1024 / 1024:.1f} GiB"
    return [
        ("CPU", f"{os.cpu_count()} × {model} (nproc {len(os.sched_getaffinity(0))})"),
        ("Memory", mem),
        ("Kernel", f"{platform.system()} {platform.release()}"),
        ("Python", f"{platform.python_implementation()} {platform.python_version()}"),
        ("Packages", package_versions()),
        ("wrk", wrk_version.split(" Copyright")[0].strip()),
        ("Commit", rev or "unknown"),
    ]


def kept_analysis(path: Path) -> str:
    if not path.exists():
        return ""
    text = path.read_text()
    start, end = text.find(ANALYSIS_START), text.find(ANALYSIS_END)
    if start < 0 or end < start:
        return ""
    return text[start : end + len(ANALYSIS_END)]


def limits_text(results: Results) -> list[str]:
    """What the numbers themselves say about the limits (the analysis below says why)."""
    out = []
    for row in results.rows:
        cpu = row.relay.cpu.get("relay", 0.0)
        app = row.relay.cpu.get("app", 0.0)
        if row.connections > 1 and row.test.endswith(" B"):
            relay_us = row.relay.cpu_us_per_request("relay")
            base_us = row.baseline.cpu_us_per_request("baseline") if row.baseline else None
            saturated = (
                "the relay's core was saturated"
                if cpu >= 0.9
                else "the relay's core was not saturated (the limit was elsewhere: other load, "
                "the app or wrk)"
            )
            projected = f"{1e6 / relay_us:,.0f}" if relay_us else "–"
            cost = f"{base_us / relay_us:.2f}" if relay_us and base_us else "–"
            out.append(
                f"- {row.test} @ {row.connections}: relay core at {cpu * 100:.0f} %, app at "
                f"{app * 100:.0f} % → {saturated}. The relay spends {num(relay_us, 1)} µs of CPU "
                f"per call vs {num(base_us, 1)} µs per baseline request (CPU-cost ratio {cost}); "
                f"on a dedicated core that is ≈ {projected} calls/s."
            )
    if results.idle:
        idle = results.idle
        out.append(
            f"- idle: {idle.kib_per_session:.1f} KiB of relay RSS per registered session "
            f"(socket, ASGI task, protocol buffers, registration with its rendered agents.md "
            f"and tools.json); heartbeats cost {idle.cpu_us_per_heartbeat:.0f} µs of relay CPU "
            "each."
        )
    return out


def write_report(settings: Settings, bench: Bench, results: Results, started: str) -> str:
    lines = [
        "# agent-socket relay benchmark",
        "",
        f"Generated by `make bench` (`bench/run.py{' --quick' if settings.quick else ''}`) on "
        f"{started}. Each wrk run lasts {settings.duration:g} s after a {settings.warmup:g} s "
        "warm-up. Numbers move by ±10 % between runs on a shared VM; compare rows of one run.",
        "",
        "## Machine",
        "",
        *[f"- **{key}**: {value}" for key, value in machine()],
        f"- **Pinning**: servers (relay, baseline) on core {bench.server_core}, wrk and apps on "
        f"core {bench.client_core}"
        if bench.server_core is not None
        else "- **Pinning**: none (fewer than two cores or no taskset)",
        f"- **Load average at start**: {Path('/proc/loadavg').read_text().split()[0]}",
        "",
        "## Tool calls: relay vs baseline",
        "",
        "Relay: one app process (bench/echo_app.py) on one WebSocket echoing the body. Baseline: "
        "a raw ASGI echo on the same uvicorn + uvloop + httptools stack (bench/baseline.py), no "
        "relay hop, same response headers. CPU columns are fractions of one core during the "
        "run; *Other load* is CPU used by processes outside the bench meanwhile (⚠: over "
        f"{DISTURBED * 100:.0f} % of a core, or the machine was busy when the run started — "
        "treat that row with care). The async row counts requests (a POST or a poll each); "
        f"full 202 + poll cycles: **{results.async_cycles_per_s:,.0f} cycles/s** "
        f"({results.async_detail}).",
        "",
        markdown_table(THROUGHPUT_HEADER, throughput_rows(results)),
        "",
    ]
    if results.idle:
        idle = results.idle
        lines += [
            "## Idle sessions",
            "",
            f"{idle.sessions:,} sessions opened from a separate process (bench/idle_sessions.py),"
            " each with 5 tools, a 2 KB agents.md and one minted token. Memory is the relay's "
            "VmRSS before (after 50 warm-up sessions) and after opening them; CPU is measured "
            f"over {idle.window_s:g} s while every session sends the exact SDK heartbeat every "
            f"{idle.heartbeat_interval_s:g} s, phases spread evenly. RSS at the end: "
            f"{idle.rss_end_kib / 1024:.1f} MiB.",
            "",
            markdown_table(IDLE_HEADER, [idle_row(idle)]),
            "",
        ]
    lines += [
        "## Goals",
        "",
        markdown_table(
            ["Goal", "Target", "Measured", "Held"],
            [[g.name, g.target, g.measured, verdict(g.held)] for g in goals(results)],
        ),
        "",
        "What the measurements say about the limits:",
        "",
        *limits_text(results),
        "",
    ]
    if results.profile_top:
        assert results.profile_file is not None
        lines += [
            "## Profile (relay, 64 connections, py-spy)",
            "",
            f"Hottest frames by own time; collapsed stacks in "
            f"`{results.profile_file.relative_to(ROOT)}` (not committed).",
            "",
            markdown_table(
                ["Frame", "Own", "Total"],
                [
                    [f"`{f}`", f"{own:.1f} %", f"{tot:.1f} %"]
                    for f, own, tot in results.profile_top[:15]
                ],
            ),
            "",
        ]
    analysis = kept_analysis(settings.output) or (
        f"{ANALYSIS_START}\n## Analysis\n\n(Written by hand from the profile.)\n{ANALYSIS_END}"
    )
    lines += [analysis, ""]
    if results.notes:
        lines += ["## Notes", "", *[f"- {note}" for note in results.notes], ""]
    lines += [
        "## Commands",
        "",
        "`$PORT` is a free port chosen per run; `$TOKEN` the minted agent token; `$RELAY_PID` "
        "the throughput relay's process id.",
        "",
        "```sh",
        *[f"# {what}\n{cmd}" for what, cmd in bench.commands],
        "```",
        "",
    ]
    text = "\n".join(lines)
    settings.output.parent.mkdir(parents=True, exist_ok=True)
    settings.output.write_text(text)
    return text


def print_tables(console: Console, results: Results) -> None:
    table = Table(title="Tool calls: relay vs baseline")
    for column in THROUGHPUT_HEADER:
        table.add_column(column, justify="left" if column == "Test" else "right")
    for row in throughput_rows(results):
        table.add_row(*row)
    console.print(table)
    console.print(
        f"async 202 + poll: {results.async_cycles_per_s:,.0f} cycles/s ({results.async_detail})"
    )
    if results.idle:
        idle_table = Table(title="Idle sessions")
        for column in IDLE_HEADER:
            idle_table.add_column(column, justify="right")
        idle_table.add_row(*idle_row(results.idle))
        console.print(idle_table)
    goal_table = Table(title="Goals")
    for column in ("Goal", "Target", "Measured", "Held"):
        goal_table.add_column(column)
    for goal in goals(results):
        goal_table.add_row(goal.name, goal.target, goal.measured, verdict(goal.held))
    console.print(goal_table)


@contextlib.contextmanager
def cleanup(bench: Bench) -> Iterator[None]:
    try:
        yield
    finally:
        bench.stop_all()


def main(argv: Sequence[str] | None = None) -> int:
    settings = parse_args(argv)
    console = Console(stderr=True)
    if shutil.which("wrk") is None:
        console.print("[red]wrk is not installed[/]: run `make bench` (it installs Debian's wrk).")
        return 2
    raise_fd_limit()
    started = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    bench = Bench(settings, console)
    results = Results()
    if bench.server_core is None:
        results.notes.append("Not pinned: fewer than two cores, or no taskset.")
    clock = time.monotonic()
    with cleanup(bench):
        throughput(bench, results)
        idle_sessions(bench, results)
    print_tables(Console(width=max(Console().width, 200)), results)
    write_report(settings, bench, results, started)
    console.log(f"wrote {settings.output} in {time.monotonic() - clock:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
