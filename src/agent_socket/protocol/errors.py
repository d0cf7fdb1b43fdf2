"""Error codes, HTTP statuses and WebSocket close codes — PROTOCOL.md §2.6 and §5.

Clients match codes, never message texts; the close reasons are the ones the contract names.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum


class ErrorCode(StrEnum):
    PROTOCOL_ERROR = "protocol_error"
    TOKEN_INVALID = "token_invalid"
    CSRF_DENIED = "csrf_denied"
    NOT_FOUND = "not_found"
    BODY_TOO_LARGE = "body_too_large"
    TOO_MANY_INFLIGHT = "too_many_inflight"
    RATE_LIMITED = "rate_limited"
    APP_OFFLINE = "app_offline"
    TOO_MANY_TASKS = "too_many_tasks"
    TOOL_TIMEOUT = "tool_timeout"
    # register / resume / token frames
    INVALID_APP_ID = "invalid_app_id"
    AGENTS_MD_TOO_LARGE = "agents_md_too_large"
    RESERVED_PATH = "reserved_path"
    TOO_MANY_TOKENS = "too_many_tokens"
    RESUME_FAILED = "resume_failed"
    # not in PROTOCOL.md: this relay's memory bound (docs/protocol.md, "Relay full")
    RELAY_FULL = "relay_full"


#: HTTP status of each error an agent can receive.
HTTP_STATUS: dict[ErrorCode, int] = {
    ErrorCode.PROTOCOL_ERROR: 400,
    ErrorCode.TOKEN_INVALID: 401,
    ErrorCode.CSRF_DENIED: 403,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.BODY_TOO_LARGE: 413,
    ErrorCode.TOO_MANY_INFLIGHT: 429,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.APP_OFFLINE: 503,
    ErrorCode.TOO_MANY_TASKS: 503,
    ErrorCode.TOOL_TIMEOUT: 504,
}

#: The app's reply broke the contract: same code, but a gateway status.
BAD_GATEWAY = 502


class CloseCode(IntEnum):
    NORMAL = 1000
    TOO_BIG = 1009
    INTERNAL = 1011
    RESTART = 1012
    TRY_AGAIN = 1013
    INVALID_APP_ID = 4001
    INVALID_TOOLS = 4400
    RESUME_REJECTED = 4401
    TIMEOUT = 4408
    CONFLICT = 4409
    REPLACED = 4410
    AGENTS_MD_TOO_LARGE = 4413
    # not in PROTOCOL.md: a relay at its hard session cap refuses new registrations.
    RELAY_FULL = 4429


class CloseReason(StrEnum):
    SESSION_ENDED = "session ended"
    FRAME_TOO_LARGE = "frame too large"
    INVALID_APP_ID = "invalid app_id"
    INVALID_TOOLS = "invalid tools"
    INVALID_TOOL = "invalid tool"
    INVALID_TOOL_PATH = "invalid tool path"
    RESERVED_PATH = "reserved path"
    DUPLICATE_TOOL = "duplicate tool"
    RESUME_NEEDS_SESSION = "resume needs ?session="
    RESUME_REJECTED = "resume rejected"
    END_REJECTED = "end rejected"
    REGISTER_TIMEOUT = "register timeout"
    RESUME_TIMEOUT = "resume timeout"
    HEARTBEAT_TIMEOUT = "heartbeat timeout"
    ALREADY_CONNECTED = "already connected"
    TOO_MANY_RESUME = "too many resume attempts"
    REPLACED = "replaced by a resumed connection"
    AGENTS_MD_TOO_LARGE = "agents.md too large"
    WRONG_PATH = "wrong path"
    PROTOCOL_ERROR = "protocol error"
    RELAY_FULL = "relay full"
    DROPPED = "connection dropped"
    RESTARTING = "relay restarting"
    TRY_AGAIN = "try again later"


class ProtocolViolation(Exception):
    """A frame broke the contract: carries the error code and the close that follows it."""

    def __init__(
        self, code: ErrorCode, message: str, close_code: CloseCode, close_reason: CloseReason
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.close_code = close_code
        self.close_reason = close_reason

    def as_error(self) -> dict[str, str]:
        return {"code": self.code.value, "message": self.message}


def error_body(code: ErrorCode, message: str) -> dict[str, dict[str, str]]:
    """The JSON error envelope every framework error uses."""
    return {"error": {"code": code.value, "message": message}}
