"""The bench's wrk-output parser (bench/wrkparse.py) on captured wrk 4.1 output."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

WRKPARSE = Path(__file__).resolve().parents[2] / "bench" / "wrkparse.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_wrkparse", WRKPARSE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while building
    spec.loader.exec_module(module)
    return module


wrkparse = _load()

#: wrk -t1 -c64 -d5s --latency -s bench/wrk/post.lua (a relay run, captured)
SAMPLE = """\
Running 5s test @ http://127.0.0.1:18801/v1/t/as_Q7R5X2KM_0000000000000000000000/echo
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     3.79ms    1.90ms  28.71ms   84.37%
    Req/Sec    16.90k     3.53k   20.02k    78.00%
  Latency Distribution
     50%    3.30ms
     75%    4.27ms
     90%    5.81ms
     99%   14.90ms
  84095 requests in 5.00s, 21.09MB read
Requests/sec:  16819.13
Transfer/sec:      4.22MB
"""

#: wrk -t1 -c32 -d3s --latency -s bench/wrk/async.lua, with errors and our done() lines
SAMPLE_ASYNC = """\
Running 3s test @ http://127.0.0.1:18811
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   812.00us  401.22us   1.20s    91.02%
    Req/Sec    12.10k     1.01k   13.00k    70.00%
  Latency Distribution
     50%  750.00us
     75%    0.90ms
     90%    1.10ms
     99%    1.50s
  37599 requests in 1.05m, 11.62MB read
  Socket errors: connect 0, read 2, write 1, timeout 4
  Non-2xx or 3xx responses: 17
Requests/sec:  12287.25
Transfer/sec:      3.80MB
CYCLES 1148
POSTS 1190
PENDING 35261
LOST 3
"""


def test_parses_throughput_and_percentiles() -> None:
    result = wrkparse.parse(SAMPLE)
    assert result.requests == 84095
    assert result.duration_s == pytest.approx(5.0)
    assert result.requests_per_s == pytest.approx(16819.13)
    assert result.read_bytes == pytest.approx(21.09 * 1024 * 1024)
    assert result.latency_avg_s == pytest.approx(3.79e-3)
    assert result.percentiles == pytest.approx(
        {50.0: 3.30e-3, 75.0: 4.27e-3, 90.0: 5.81e-3, 99.0: 14.90e-3}
    )
    assert result.p50_s == pytest.approx(3.30e-3)
    assert result.p99_s == pytest.approx(14.90e-3)
    assert result.errors == 0
    assert result.extra == {}


def test_parses_units_errors_and_extra_lines() -> None:
    result = wrkparse.parse(SAMPLE_ASYNC)
    assert result.duration_s == pytest.approx(63.0)
    assert result.latency_avg_s == pytest.approx(812e-6)
    assert result.p50_s == pytest.approx(750e-6)
    assert result.p99_s == pytest.approx(1.5)
    assert result.non_2xx == 17
    assert result.socket_errors == 7
    assert result.errors == 24
    assert result.extra == {"CYCLES": 1148, "POSTS": 1190, "PENDING": 35261, "LOST": 3}


def test_without_latency_flag_has_no_percentiles() -> None:
    text = "\n".join(line for line in SAMPLE.splitlines() if "%" not in line or "Latency " in line)
    result = wrkparse.parse(text)
    assert result.percentiles == {}
    assert result.p50_s is None
    assert result.requests_per_s == pytest.approx(16819.13)


def test_failed_run_is_an_error() -> None:
    with pytest.raises(wrkparse.WrkParseError):
        wrkparse.parse("unable to connect to 127.0.0.1:1 Connection refused\n")
