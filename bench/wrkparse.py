"""Parse the text wrk prints (``wrk --latency``, plus lines our Lua ``done()`` hooks add).

Kept free of I/O and third-party imports so ``tests/unit/test_bench_parse.py`` can load it on
its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_TIME_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_SIZE_UNITS = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}

_TIME = r"([0-9.]+)(us|ms|s|m|h)"
_PERCENTILE_RE = re.compile(r"^\s*([0-9.]+)%\s+" + _TIME + r"\s*$")
_TOTAL_RE = re.compile(r"^\s*(\d+) requests in " + _TIME + r", ([0-9.]+)(B|KB|MB|GB|TB) read\s*$")
_RPS_RE = re.compile(r"^Requests/sec:\s+([0-9.]+)\s*$")
_NON2XX_RE = re.compile(r"^\s*Non-2xx or 3xx responses:\s+(\d+)\s*$")
_SOCKET_ERRORS_RE = re.compile(
    r"^\s*Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)\s*$"
)
_LATENCY_AVG_RE = re.compile(r"^\s*Latency\s+" + _TIME + r"\s")
#: ``KEY value`` lines printed by our Lua ``done()`` hooks, e.g. ``CYCLES 12345``.
_EXTRA_RE = re.compile(r"^([A-Z][A-Z0-9_]*) (-?[0-9.]+)\s*$")


class WrkParseError(ValueError):
    """wrk's output lacks a line every run prints (it failed, or its format changed)."""


def seconds(value: str, unit: str) -> float:
    """``"1.25", "ms"`` → 0.00125."""
    return float(value) * _TIME_UNITS[unit]


@dataclass(frozen=True)
class WrkResult:
    requests: int
    duration_s: float
    requests_per_s: float
    read_bytes: float
    latency_avg_s: float | None
    #: percentile (50.0, 75.0, 90.0, 99.0) → seconds; present only with ``--latency``
    percentiles: dict[float, float] = field(default_factory=dict)
    non_2xx: int = 0
    socket_errors: int = 0
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def p50_s(self) -> float | None:
        return self.percentiles.get(50.0)

    @property
    def p99_s(self) -> float | None:
        return self.percentiles.get(99.0)

    @property
    def errors(self) -> int:
        """Responses that are not 2xx/3xx plus connect/read/write/timeout errors."""
        return self.non_2xx + self.socket_errors


def parse(text: str) -> WrkResult:
    """Parse one wrk run's standard output."""
    requests: int | None = None
    duration = read = 0.0
    rps: float | None = None
    avg: float | None = None
    percentiles: dict[float, float] = {}
    non_2xx = socket_errors = 0
    extra: dict[str, float] = {}
    in_distribution = False
    for line in text.splitlines():
        if line.strip() == "Latency Distribution":
            in_distribution = True
            continue
        if in_distribution:
            match = _PERCENTILE_RE.match(line)
            if match:
                percentiles[float(match.group(1))] = seconds(match.group(2), match.group(3))
                continue
            in_distribution = False
        if match := _TOTAL_RE.match(line):
            requests = int(match.group(1))
            duration = seconds(match.group(2), match.group(3))
            read = float(match.group(4)) * _SIZE_UNITS[match.group(5)]
        elif match := _RPS_RE.match(line):
            rps = float(match.group(1))
        elif match := _NON2XX_RE.match(line):
            non_2xx = int(match.group(1))
        elif match := _SOCKET_ERRORS_RE.match(line):
            socket_errors = sum(int(g) for g in match.groups())
        elif avg is None and (match := _LATENCY_AVG_RE.match(line)):
            avg = seconds(match.group(1), match.group(2))
        elif match := _EXTRA_RE.match(line):
            extra[match.group(1)] = float(match.group(2))
    if requests is None or rps is None:
        raise WrkParseError("no 'N requests in …' or 'Requests/sec:' line in wrk's output")
    return WrkResult(
        requests=requests,
        duration_s=duration,
        requests_per_s=rps,
        read_bytes=read,
        latency_avg_s=avg,
        percentiles=percentiles,
        non_2xx=non_2xx,
        socket_errors=socket_errors,
        extra=extra,
    )
