"""The app-side SDK: declare tools, connect to a relay, mint links, survive drops."""

from agent_socket.client.agents_md import default_agents_md
from agent_socket.client.app import App
from agent_socket.client.backoff import Backoff, backoff_delay
from agent_socket.client.replies import Call, Deferred, Reply, ToolError
from agent_socket.client.session import (
    ConnectError,
    Link,
    ReconnectInfo,
    RegistrationError,
    RequestError,
    Session,
    SessionChange,
    SessionClosedError,
    SessionError,
    State,
)
from agent_socket.client.tools import Tool

__all__ = [
    "App",
    "Backoff",
    "Call",
    "ConnectError",
    "Deferred",
    "Link",
    "ReconnectInfo",
    "RegistrationError",
    "Reply",
    "RequestError",
    "Session",
    "SessionChange",
    "SessionClosedError",
    "SessionError",
    "State",
    "Tool",
    "ToolError",
    "backoff_delay",
    "default_agents_md",
]
