"""agent-socket: let any app expose tools to any AI chat through one paste-able URL.

The app side (declare tools, connect, mint links)::

    from agent_socket import App
    app = App("counter", description="A counter the AI can change.")

    @app.tool("/increment")
    async def increment(by: int = 1) -> dict:
        "Add `by` to the counter and return the new count."
        ...

    app.run("http://127.0.0.1:8787")

The agent side: :class:`AgentClient`. The relay lives in :mod:`agent_socket.relay`, the wire
contract in :mod:`agent_socket.protocol`.
"""

from agent_socket.agent import (
    ERRORS,
    AgentClient,
    AgentSocketError,
    AppError,
    AppOfflineError,
    BadInputError,
    BodyTooLargeError,
    CsrfDeniedError,
    HandlerError,
    NotFoundError,
    ProtocolError,
    RateLimitedError,
    RelayFullError,
    ResultTooLargeError,
    TaskTimeoutError,
    TokenInvalidError,
    ToolInfo,
    ToolResponse,
    ToolTimeoutError,
    TooManyInflightError,
    TooManyTasksError,
)
from agent_socket.client import (
    App,
    Backoff,
    Call,
    ConnectError,
    Deferred,
    Link,
    ReconnectInfo,
    RegistrationError,
    Reply,
    RequestError,
    Session,
    SessionChange,
    SessionClosedError,
    SessionError,
    State,
    Tool,
    ToolError,
    default_agents_md,
)

__version__ = "0.1.0"

__all__ = [
    "ERRORS",
    "AgentClient",
    "AgentSocketError",
    "App",
    "AppError",
    "AppOfflineError",
    "Backoff",
    "BadInputError",
    "BodyTooLargeError",
    "Call",
    "ConnectError",
    "CsrfDeniedError",
    "Deferred",
    "HandlerError",
    "Link",
    "NotFoundError",
    "ProtocolError",
    "RateLimitedError",
    "ReconnectInfo",
    "RegistrationError",
    "RelayFullError",
    "Reply",
    "RequestError",
    "ResultTooLargeError",
    "Session",
    "SessionChange",
    "SessionClosedError",
    "SessionError",
    "State",
    "TaskTimeoutError",
    "TokenInvalidError",
    "TooManyInflightError",
    "TooManyTasksError",
    "Tool",
    "ToolError",
    "ToolInfo",
    "ToolResponse",
    "ToolTimeoutError",
    "__version__",
    "default_agents_md",
]
