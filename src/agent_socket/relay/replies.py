"""An app's ``tool_reply`` or ``task_complete`` → the agent's HTTP response — PROTOCOL.md §2.3–2.4.

App output is untrusted and is served from the relay's origin, so every tool response carries a
sandbox CSP and ``nosniff``, and markup types are downgraded to plain text.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, TypeGuard

import orjson

from agent_socket.protocol.errors import BAD_GATEWAY, HTTP_STATUS, ErrorCode, error_body
from agent_socket.protocol.ids import TASK_ID_RE
from agent_socket.protocol.limits import utf16_units

JSON_TYPE = "application/json; charset=utf-8"
TEXT_TYPE = "text/plain; charset=utf-8"

#: On every error the relay writes (§2.6).
NOSNIFF: tuple[tuple[bytes, bytes], ...] = ((b"x-content-type-options", b"nosniff"),)
#: Headers on every response to an agent URL: the URL is a credential.
LINK_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
    *NOSNIFF,
)
#: Added to tool responses and task results: app output must never run as script here.
SANDBOX_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", b"sandbox; default-src 'none'"),
)

_MARKUP_TYPES = frozenset(
    {"text/html", "application/xhtml+xml", "image/svg+xml", "application/xml", "text/xml"}
)


@dataclass(slots=True)
class Response:
    status: int
    content_type: str
    body: bytes
    sandboxed: bool = False
    extra_headers: tuple[tuple[bytes, bytes], ...] = ()


@dataclass(frozen=True, slots=True)
class StartTask:
    """The reply asks the relay to start an async task with this id."""

    task_id: str


def error(code: ErrorCode, message: str, status: int | None = None) -> Response:
    status = HTTP_STATUS[code] if status is None else status
    return Response(status, JSON_TYPE, orjson.dumps(error_body(code, message)))


def json_response(status: int, payload: Any, *, sandboxed: bool = False) -> Response:
    return Response(status, JSON_TYPE, orjson.dumps(payload), sandboxed)


def bad_reply(message: str) -> Response:
    return error(ErrorCode.PROTOCOL_ERROR, message, BAD_GATEWAY)


def valid_status(status: Any) -> TypeGuard[int]:
    return type(status) is int and 200 <= status <= 599


def _content_type(headers: Any) -> Any:
    if not isinstance(headers, dict):
        return None
    for key, value in headers.items():
        if isinstance(key, str) and key.lower() == "content-type":
            return value
    return None


@functools.lru_cache(maxsize=256)
def _has_control(text: str) -> bool:
    return any(ord(char) < 0x20 or ord(char) == 0x7F for char in text)


@functools.lru_cache(maxsize=256)
def _safe_type(content_type: str) -> str:
    essence = content_type.split(";", 1)[0].strip().lower()
    if essence in _MARKUP_TYPES or essence.endswith("+xml"):
        return TEXT_TYPE
    return content_type


def render(frame: dict[str, Any]) -> Response:
    """Build the response for a reply's ``status``, ``headers`` and ``body`` (§2.3)."""
    status = frame.get("status")
    if not valid_status(status):
        return bad_reply("the app replied with an invalid status")
    # From here on ``status`` is an int in 200–599.
    content_type = _content_type(frame.get("headers"))
    if isinstance(content_type, str):
        if _has_control(content_type):
            return bad_reply("the app replied with an invalid content-type")
        body = frame.get("body")
        if isinstance(body, str):
            return Response(status, _safe_type(content_type), body.encode("utf-8"), True)
    if "body" not in frame:
        return Response(status, JSON_TYPE, b"", True)
    try:
        payload = orjson.dumps(frame["body"])
    except TypeError:
        return bad_reply("the app replied with a body that is not JSON")
    return Response(status, JSON_TYPE, payload, True)


def interpret(frame: dict[str, Any]) -> Response | StartTask:
    """A ``tool_reply`` → the response, or the start of an async task (§2.4)."""
    task_id = frame.get("taskId")
    status = frame.get("status")
    if type(status) is int and status == 202 and task_id not in (None, ""):
        if not isinstance(task_id, str) or TASK_ID_RE.match(task_id) is None:
            return bad_reply("the app replied with an invalid taskId")
        return StartTask(task_id)
    return render(frame)


def task_result(frame: dict[str, Any], max_bytes: int, max_type_chars: int) -> Response | None:
    """A ``task_complete`` → the stored result, or None when the frame must be dropped."""
    if not valid_status(frame.get("status")):
        return None
    content_type = _content_type(frame.get("headers"))
    if isinstance(content_type, str) and utf16_units(content_type) > max_type_chars:
        return None
    if "body" in frame:
        try:
            size = len(orjson.dumps(frame["body"]))
        except TypeError:
            return None
        if size > max_bytes:
            return None
    return render(frame)
