"""What a tool handler can give back, and the raw call it can ask for — PROTOCOL.md §2.3, §2.4.

A handler returns a plain value (sent as ``200`` JSON), a :class:`Reply` (another status, a
string with its own content type, headers), a :class:`Deferred` (answer ``202`` now, finish as an
async task), or raises :class:`ToolError` (an error the app means to report). The SDK turns each
into a ``tool_reply`` or ``task_complete`` frame; :func:`reply_fields` is that translation.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic_core import to_jsonable_python

#: Code of a validation failure (the agent sent input that does not match the schema).
BAD_INPUT = "bad_input"
#: Code of an unexpected exception in a handler.
HANDLER_ERROR = "handler_error"
#: Code of a task result the relay would drop for being too large (§2.4, 64 KiB).
RESULT_TOO_LARGE = "result_too_large"


@dataclass(frozen=True, slots=True)
class Call:
    """The raw tool call as the relay forwarded it (§2.3).

    ``method`` is upper-case, ``path`` is the tool path, ``body`` is the raw request body
    (``""`` when the agent sent none) and ``headers`` holds ``content-type`` and the agent's
    ``x-*`` headers, lower-cased — nothing else reaches the app. A handler receives it by
    declaring a parameter annotated ``Call``; that parameter is not part of the input schema.
    """

    method: str
    path: str
    body: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    call_id: str = ""

    def json(self) -> Any:
        """The body parsed as JSON; ``None`` for an empty body. Raises ``ValueError`` if invalid."""
        if not self.body.strip():
            return None
        return json.loads(self.body)


class Reply:
    """A tool answer with a chosen status, content type or headers.

    ``Reply(body)`` is ``200`` JSON. ``Reply(text, content_type="text/csv")`` sends the string
    as-is with that type (the relay turns markup types such as ``text/html`` into
    ``text/plain``; a content type with control characters is refused by the relay as
    ``502 protocol_error``). ``status`` must be an int in 200–599 — checked here, so a bad value
    fails in the app and not at the agent. Only ``content-type`` of ``headers`` reaches the
    agent; the relay ignores the others.
    """

    __slots__ = ("body", "content_type", "headers", "status")

    def __init__(
        self,
        body: Any = None,
        *,
        status: int = 200,
        content_type: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if isinstance(status, bool) or not isinstance(status, int) or not 200 <= status <= 599:
            raise ValueError(f"status must be an int within 200-599, not {status!r}")
        if content_type is not None and not isinstance(body, str):
            raise TypeError("a content_type needs a str body")
        self.body = body
        self.status = status
        self.content_type = content_type
        self.headers: dict[str, str] = dict(headers or {})

    @classmethod
    def text(
        cls, text: str, content_type: str = "text/plain; charset=utf-8", status: int = 200
    ) -> Reply:
        """A string sent as-is with ``content_type``."""
        return cls(text, status=status, content_type=content_type)

    @classmethod
    def error(cls, code: str, message: str, *, status: int = 400, details: Any = None) -> Reply:
        """The error envelope ``{"error": {"code", "message", "details"?}}`` with ``status``."""
        return cls(error_envelope(code, message, details), status=status)

    def __repr__(self) -> str:
        return f"Reply(status={self.status}, content_type={self.content_type!r})"


class ToolError(Exception):
    """Raise from a handler to answer ``{"error": {"code", "message", "details"?}}``.

    The status defaults to 400; any int in 200–599 is allowed (a 2xx tells the agent "the call
    worked, and this is the app's answer"). Unlike any other exception, the message is meant for
    the agent and is sent as written.
    """

    def __init__(
        self, message: str, *, code: str = "tool_error", status: int = 400, details: Any = None
    ) -> None:
        super().__init__(message)
        if isinstance(status, bool) or not isinstance(status, int) or not 200 <= status <= 599:
            raise ValueError(f"status must be an int within 200-599, not {status!r}")
        self.message = message
        self.code = code
        self.status = status
        self.details = details

    def to_reply(self) -> Reply:
        return Reply.error(self.code, self.message, status=self.status, details=self.details)


class Deferred:
    """Return ``Deferred(awaitable)`` from a handler to finish the call as an async task (§2.4).

    The agent gets ``202 {"taskId": …}`` at once; when ``awaitable`` ends, its result (a value, a
    :class:`Reply`, or the error it raised — handled as for a normal handler) is sent as
    ``task_complete``. If the session is offline then, the completion is sent after the resume;
    if the session is gone (fresh session, close), the task is dropped along with it.
    """

    __slots__ = ("awaitable",)

    def __init__(self, awaitable: Awaitable[Any]) -> None:
        self.awaitable = awaitable


def error_envelope(code: str, message: str, details: Any = None) -> dict[str, Any]:
    """``{"error": {"code": code, "message": message[, "details": details]}}``."""
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = to_jsonable_python(details, fallback=str)
    return {"error": error}


def reply_fields(result: Any) -> dict[str, Any]:
    """The ``status``/``body``/``headers`` fields of a reply frame for a handler's result.

    Plain values become JSON via pydantic (models, dataclasses, datetimes, sets… are converted;
    anything else falls back to ``str``). ``None`` is sent as JSON ``null``.
    """
    if isinstance(result, ToolError):
        result = result.to_reply()
    if isinstance(result, Reply):
        fields: dict[str, Any] = {"status": result.status}
        headers = {k: v for k, v in result.headers.items() if k.lower() != "content-type"}
        content_type = result.content_type
        if content_type is None:
            for key, value in result.headers.items():
                if key.lower() == "content-type" and isinstance(result.body, str):
                    content_type = value
        if content_type is not None:
            headers["content-type"] = content_type
            fields["body"] = result.body
        else:
            fields["body"] = to_jsonable_python(result.body, fallback=str)
        if headers:
            fields["headers"] = headers
        return fields
    return {"status": 200, "body": to_jsonable_python(result, fallback=str)}
