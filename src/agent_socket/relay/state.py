"""Everything a relay's handlers share, built once from the config."""

from __future__ import annotations

from dataclasses import dataclass, field

from agent_socket.protocol.limits import Limits
from agent_socket.relay.config import RelayConfig
from agent_socket.relay.hub import Hub
from agent_socket.relay.ratelimit import Network, UpgradeLimiter, parse_networks


@dataclass
class RelayState:
    config: RelayConfig
    limits: Limits = field(init=False)
    hub: Hub = field(init=False)
    limiter: UpgradeLimiter = field(init=False)
    proxies: tuple[Network, ...] = field(init=False)
    #: What minted URLs start with: the configured public origin, or the literal placeholder.
    link_origin: str = field(init=False)

    def __post_init__(self) -> None:
        config = self.config
        self.limits = config.limits()
        self.hub = Hub(self.limits, config.max_sessions, config.max_held_bytes)
        self.limiter = UpgradeLimiter(config.ws_rate_limit, config.ws_rate_window_ms)
        self.proxies = parse_networks(config.forwarded_allow_ips)
        self.link_origin = (config.public_url or "__BASE__").rstrip("/")

    def link_url(self, token: str) -> str:
        return f"{self.link_origin}/v1/t/{token}/agents.md"
