"""Reconnect backoff: 1 s doubling to 30 s, ±25 % jitter, as a pure function."""

from __future__ import annotations

import pytest

from agent_socket.client.backoff import Backoff, backoff_delay


def test_nominal_schedule_doubles_to_the_cap() -> None:
    middle = lambda: 0.5  # noqa: E731 - factor exactly 1
    delays = [backoff_delay(n, rand=middle) for n in range(8)]
    assert delays == [1, 2, 4, 8, 16, 30, 30, 30]


@pytest.mark.parametrize("attempt", [0, 1, 3, 5, 10])
def test_jitter_stays_within_25_percent(attempt: int) -> None:
    nominal = min(30.0, 2.0**attempt)
    low = backoff_delay(attempt, rand=lambda: 0.0)
    high = backoff_delay(attempt, rand=lambda: 0.999999)
    assert low == pytest.approx(nominal * 0.75)
    assert high == pytest.approx(nominal * 1.25, rel=1e-5)


def test_random_delays_spread_over_the_whole_band() -> None:
    delays = [backoff_delay(2) for _ in range(2000)]
    assert min(delays) >= 3.0 and max(delays) <= 5.0
    assert min(delays) < 3.2 and max(delays) > 4.8  # jitter actually spreads them


def test_limits_negative_and_huge_attempts() -> None:
    assert backoff_delay(-5, rand=lambda: 0.5) == 1.0
    assert backoff_delay(10**9, rand=lambda: 0.5) == 30.0
    assert backoff_delay(3, base=0, rand=lambda: 0.5) == 30.0  # base 0: straight to the cap
    assert backoff_delay(3, jitter=0) == 8.0


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError):
        backoff_delay(0, jitter=1.5)
    with pytest.raises(ValueError):
        backoff_delay(0, base=-1)


def test_configurable_schedule_for_tests() -> None:
    fast = Backoff(base=0.05, cap=0.2, jitter=0)
    assert [fast.delay(n) for n in range(4)] == [0.05, 0.1, 0.2, 0.2]
