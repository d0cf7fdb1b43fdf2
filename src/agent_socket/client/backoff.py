"""Reconnect delays: exponential backoff with jitter, as a pure function.

The SDK waits ``base`` seconds before the first retry, doubles the wait after every failed
attempt up to ``cap``, and spreads each wait by ``±jitter`` so that many apps dropped by the same
relay restart do not come back in lockstep. Nothing here sleeps or touches the clock; the session
asks for a delay and does the waiting itself, so the schedule is unit-testable.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

#: Defaults from the SDK contract: 1 s doubling to 30 s, ±25 % jitter.
BACKOFF_BASE_S = 1.0
BACKOFF_CAP_S = 30.0
BACKOFF_JITTER = 0.25


def backoff_delay(
    attempt: int,
    *,
    base: float = BACKOFF_BASE_S,
    cap: float = BACKOFF_CAP_S,
    jitter: float = BACKOFF_JITTER,
    rand: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait before reconnect attempt number ``attempt`` (0 for the first retry).

    The nominal delay is ``min(cap, base * 2**attempt)``; the result is that value scaled by a
    factor drawn uniformly from ``[1 - jitter, 1 + jitter]`` (``rand`` returns a float in
    ``[0, 1)``). Jitter may take a capped delay slightly past ``cap`` — at most by ``jitter``.
    A negative ``attempt`` counts as 0; a huge one never overflows (the exponent stops growing
    once the cap is reached). The result is never negative.
    """
    if base < 0 or cap < 0 or not 0 <= jitter <= 1:
        raise ValueError("base and cap must be >= 0 and jitter within [0, 1]")
    attempt = max(0, attempt)
    nominal = cap
    if base > 0:
        # 2**attempt grows past any sensible cap long before it could overflow a float.
        exponent = min(attempt, 64)
        nominal = min(cap, base * (2.0**exponent))
    factor = 1.0 + jitter * (2.0 * rand() - 1.0)
    return max(0.0, nominal * factor)


@dataclass(frozen=True, slots=True)
class Backoff:
    """Reconnect schedule of a session: ``base`` s doubling to ``cap`` s, ``±jitter``."""

    base: float = BACKOFF_BASE_S
    cap: float = BACKOFF_CAP_S
    jitter: float = BACKOFF_JITTER

    def delay(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """The wait before retry ``attempt`` (see :func:`backoff_delay`)."""
        return backoff_delay(attempt, base=self.base, cap=self.cap, jitter=self.jitter, rand=rand)
