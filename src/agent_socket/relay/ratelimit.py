"""The per-address limit on ``/v1/_ws`` upgrades — PROTOCOL.md §6 (429 ``rate_limited``).

A sliding window of upgrade times per client address. The client address is the socket peer,
or the nearest untrusted hop of ``X-Forwarded-For`` when the peer is a trusted proxy.
"""

from __future__ import annotations

import ipaddress
import time
from collections import deque
from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Past this many tracked addresses, idle ones are swept so the table cannot grow without bound.
_SWEEP_AT = 10_000


def parse_networks(spec: str) -> tuple[Network, ...]:
    """``"10.0.0.1, 192.168.0.0/16"`` → networks; ``"*"`` trusts every proxy."""
    nets: list[Network] = []
    for part in spec.split(","):
        part = part.strip()
        if part == "*":
            nets += [ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")]
        elif part:
            nets.append(ipaddress.ip_network(part, strict=False))
    return tuple(nets)


def _trusted(address: str, proxies: Iterable[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in proxies)


def client_address(peer: str, forwarded_for: str | None, proxies: tuple[Network, ...]) -> str:
    """The address the rate limit counts: XFF is believed only from trusted proxies."""
    if not forwarded_for or not proxies or not _trusted(peer, proxies):
        return peer
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, proxies):
            return hop
    return hops[0] if hops else peer


class UpgradeLimiter:
    def __init__(self, limit: int, window_ms: int) -> None:
        self.limit = limit
        self.window = window_ms / 1000
        self._seen: dict[str, deque[float]] = {}

    def allow(self, address: str) -> bool:
        now = time.monotonic()
        if len(self._seen) > _SWEEP_AT:
            self._sweep(now)
        times = self._seen.setdefault(address, deque())
        while times and now - times[0] >= self.window:
            times.popleft()
        if len(times) >= self.limit:
            return False
        times.append(now)
        return True

    def _sweep(self, now: float) -> None:
        for address in [a for a, t in self._seen.items() if not t or now - t[-1] >= self.window]:
            del self._seen[address]
