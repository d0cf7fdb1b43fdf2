"""Every limit and timeout of the contract — PROTOCOL.md §6.

These are the defaults; the relay makes each configurable (`RelayConfig`). Character limits count
UTF-16 code units, as JavaScript's ``String.length`` does, so that a browser app and the relay
agree on what fits.
"""

from __future__ import annotations

from dataclasses import dataclass

KIB = 1024
MIB = 1024 * KIB

MAX_BODY_BYTES = 1 * MIB
MAX_FRAME_UNITS = 4 * MIB
MAX_AGENTS_MD_CHARS = 65_536
MAX_APP_DESCRIPTION_CHARS = 1_024
MAX_LABEL_CHARS = 256
MAX_TOKENS_PER_SESSION = 50
MAX_INFLIGHT_PER_SESSION = 100
MAX_TASKS_PER_SESSION = 100
MAX_TASK_RESULT_BYTES = 64 * KIB
MAX_TASK_CONTENT_TYPE_CHARS = 256
MAX_SYNC_TOOL_MS = 30_000
REGISTER_TIMEOUT_MS = 10_000
HEARTBEAT_TIMEOUT_MS = 50_000
HEARTBEAT_INTERVAL_MS = 25_000
RESUME_GRACE_MS = 24 * 3600 * 1000
MAX_RESUME_SOCKETS = 4
MAX_REVOKE_ON_RESUME = 50
WS_RATE_LIMIT = 100
WS_RATE_WINDOW_MS = 10_000
RETRY_AFTER_S = 2

#: A UTF-8 frame can take up to 3 bytes per UTF-16 code unit; the WebSocket layer must let such
#: frames through so the relay can count code units itself.
UTF8_BYTES_PER_UNIT = 3


@dataclass(frozen=True, slots=True)
class Limits:
    """The limits one relay enforces (defaults from PROTOCOL.md §6)."""

    max_body_bytes: int = MAX_BODY_BYTES
    max_frame_units: int = MAX_FRAME_UNITS
    max_agents_md_chars: int = MAX_AGENTS_MD_CHARS
    max_app_description_chars: int = MAX_APP_DESCRIPTION_CHARS
    max_label_chars: int = MAX_LABEL_CHARS
    max_tokens_per_session: int = MAX_TOKENS_PER_SESSION
    max_inflight_per_session: int = MAX_INFLIGHT_PER_SESSION
    max_tasks_per_session: int = MAX_TASKS_PER_SESSION
    max_task_result_bytes: int = MAX_TASK_RESULT_BYTES
    max_task_content_type_chars: int = MAX_TASK_CONTENT_TYPE_CHARS
    max_sync_tool_ms: int = MAX_SYNC_TOOL_MS
    register_timeout_ms: int = REGISTER_TIMEOUT_MS
    heartbeat_timeout_ms: int = HEARTBEAT_TIMEOUT_MS
    resume_grace_ms: int = RESUME_GRACE_MS
    max_resume_sockets: int = MAX_RESUME_SOCKETS
    ws_rate_limit: int = WS_RATE_LIMIT
    ws_rate_window_ms: int = WS_RATE_WINDOW_MS


def utf16_units(text: str) -> int:
    """Length of ``text`` in UTF-16 code units (JavaScript's ``String.length``)."""
    if text.isascii():
        return len(text)
    # Every character outside the BMP takes two code units.
    return len(text.encode("utf-16-le")) // 2


def cut_utf16(text: str, units: int) -> str:
    """``text`` cut to at most ``units`` UTF-16 code units, never splitting a character."""
    if utf16_units(text) <= units:
        return text
    out: list[str] = []
    used = 0
    for char in text:
        size = 2 if ord(char) > 0xFFFF else 1
        if used + size > units:
            break
        out.append(char)
        used += size
    return "".join(out)
