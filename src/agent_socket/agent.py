"""The agent side: call an app's tools through its link, from Python — PROTOCOL.md §2.

::

    async with AgentClient("https://relay.example/v1/t/as_…/agents.md") as agent:
        print(await agent.agents_md())
        for tool in await agent.tools():
            print(tool.method, tool.path)
        result = await agent.call("/increment", {"by": 2})

Every error answer (``{"error": {"code", …}}`` with a 4xx/5xx status) raises the exception class
of its code (:data:`ERRORS`); codes this module does not know raise :class:`AppError`. A ``2xx``
whose body holds ``{"error": …}`` is the app's own answer and is returned, not raised. A ``202``
with a ``taskId`` is followed by polling ``_as_tasks/<taskId>`` with backoff.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import httpx2

__all__ = [
    "ERRORS",
    "AgentClient",
    "AgentSocketError",
    "AppError",
    "AppOfflineError",
    "BadInputError",
    "BodyTooLargeError",
    "CsrfDeniedError",
    "HandlerError",
    "NotFoundError",
    "ProtocolError",
    "RateLimitedError",
    "RelayFullError",
    "ResultTooLargeError",
    "TaskTimeoutError",
    "TokenInvalidError",
    "TooManyInflightError",
    "TooManyTasksError",
    "ToolInfo",
    "ToolResponse",
    "ToolTimeoutError",
]


class AgentSocketError(Exception):
    """An error answer from the relay or the app.

    ``status`` is the HTTP status, ``code`` the error code (``"http_<status>"`` when the body
    had no error envelope), ``message`` its text, ``details`` the app's ``details`` if any,
    ``retry_after`` the ``Retry-After`` seconds when sent.
    """

    code_name: str = ""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        code: str,
        details: Any = None,
        retry_after: float | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}" if message else f"{status} {code}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.retry_after = retry_after
        self.body = body


class ProtocolError(AgentSocketError):
    """``protocol_error``: 400 (bad request shape) or 502 (the app broke the contract)."""

    code_name = "protocol_error"


class TokenInvalidError(AgentSocketError):
    """``401 token_invalid``: the link is wrong or was revoked. Ask for a fresh link."""

    code_name = "token_invalid"


class CsrfDeniedError(AgentSocketError):
    """``403 csrf_denied``: the request carried a browser's ``Sec-Fetch-Site``."""

    code_name = "csrf_denied"


class NotFoundError(AgentSocketError):
    """``404 not_found``: no such tool, task or route (or a malformed link)."""

    code_name = "not_found"


class BodyTooLargeError(AgentSocketError):
    """``413 body_too_large``: the request body is over the relay's cap (1 MiB)."""

    code_name = "body_too_large"


class TooManyInflightError(AgentSocketError):
    """``429 too_many_inflight``: 100 calls are already in flight in this session."""

    code_name = "too_many_inflight"


class RateLimitedError(AgentSocketError):
    """``429 rate_limited``: too many requests from this address."""

    code_name = "rate_limited"


class AppOfflineError(AgentSocketError):
    """``503 app_offline``: the app is not connected (``retry_after`` set while it is held)."""

    code_name = "app_offline"


class TooManyTasksError(AgentSocketError):
    """``503 too_many_tasks``: the session has 100 tasks pending."""

    code_name = "too_many_tasks"


class ToolTimeoutError(AgentSocketError):
    """``504 tool_timeout``: the app did not answer within the relay's sync timeout."""

    code_name = "tool_timeout"


class RelayFullError(AgentSocketError):
    """``relay_full``: the relay is at its session cap."""

    code_name = "relay_full"


class BadInputError(AgentSocketError):
    """``400 bad_input`` (SDK apps): the input does not match the schema; see ``details``."""

    code_name = "bad_input"


class HandlerError(AgentSocketError):
    """``500 handler_error`` (SDK apps): the tool's handler raised an exception."""

    code_name = "handler_error"


class ResultTooLargeError(AgentSocketError):
    """``500 result_too_large`` (SDK apps): a task result did not fit the relay's 64 KiB."""

    code_name = "result_too_large"


class AppError(AgentSocketError):
    """An error answer with a code this module does not know: the app's own error."""


class TaskTimeoutError(AgentSocketError, TimeoutError):
    """The task did not complete within ``task_timeout`` seconds (raised by this client)."""

    code_name = "task_timeout"


#: Error code → exception class.
ERRORS: dict[str, type[AgentSocketError]] = {
    cls.code_name: cls
    for cls in (
        ProtocolError,
        TokenInvalidError,
        CsrfDeniedError,
        NotFoundError,
        BodyTooLargeError,
        TooManyInflightError,
        RateLimitedError,
        AppOfflineError,
        TooManyTasksError,
        ToolTimeoutError,
        RelayFullError,
        BadInputError,
        HandlerError,
        ResultTooLargeError,
    )
}


@dataclass(frozen=True, slots=True)
class ToolInfo:
    """One entry of ``tools.json``. ``input_schema`` is None when the tool lists none."""

    method: str
    path: str
    description: str = ""
    input_schema: Any = None
    has_schema: bool = False


@dataclass(frozen=True, slots=True)
class ToolResponse:
    """A tool's answer: status, headers, raw text and the parsed body (JSON, or the text)."""

    status: int
    headers: dict[str, str]
    text: str
    body: Any = field(default=None)

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")

    @property
    def task_id(self) -> str | None:
        """The task id of a ``202`` that started an async task, else None."""
        if self.status == 202 and isinstance(self.body, dict):
            task_id = self.body.get("taskId")
            if isinstance(task_id, str) and task_id and "completed" not in self.body:
                return task_id
        return None


def base_of(link: str) -> str:
    """``$BASE`` for a link: the URL without ``/agents.md`` (or ``/tools.json``) and query."""
    url = link.strip().split("#", 1)[0].split("?", 1)[0].rstrip("/")
    for suffix in ("/agents.md", "/tools.json"):
        if url.endswith(suffix):
            return url[: -len(suffix)]
    return url


def _error_from(response: ToolResponse) -> AgentSocketError:
    body = response.body
    code = f"http_{response.status}"
    message = response.text[:500]
    details: Any = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        code = str(error.get("code") or code)
        message = str(error.get("message") or "")
        details = error.get("details")
    retry_after: float | None = None
    raw_retry = response.headers.get("retry-after")
    if raw_retry:
        try:
            retry_after = float(raw_retry)
        except ValueError:
            retry_after = None
    cls = ERRORS.get(code, AppError)
    return cls(
        message,
        status=response.status,
        code=code,
        details=details,
        retry_after=retry_after,
        body=body,
    )


class AgentClient:
    """Call the tools behind one agent link.

    ``link`` is the URL an app shared (``…/agents.md``) or its ``$BASE``. ``timeout`` bounds
    each HTTP request (the relay answers a slow tool with ``504`` after its sync timeout, 30 s by
    default, so keep it above that). Task polls wait ``poll_interval`` seconds, growing ×1.5 up
    to ``poll_max``; a task not complete after ``task_timeout`` seconds raises
    :class:`TaskTimeoutError`. Pass ``client`` to reuse an ``httpx2.AsyncClient`` (it is then
    not closed by :meth:`aclose`).
    """

    def __init__(
        self,
        link: str,
        *,
        timeout: float = 40.0,
        poll_interval: float = 0.2,
        poll_max: float = 2.0,
        task_timeout: float = 600.0,
        client: httpx2.AsyncClient | None = None,
    ) -> None:
        self.base = base_of(link)
        if "/v1/t/" not in self.base:
            raise ValueError(f"not an agent link: {link!r} (expected …/v1/t/<token>/agents.md)")
        self.poll_interval = poll_interval
        self.poll_max = poll_max
        self.task_timeout = task_timeout
        self._own_client = client is None
        # No connection cap: a relay allows 100 calls in flight per session, and a pool limit
        # would queue calls in the client instead of letting the relay answer 429.
        limits = httpx2.Limits(max_connections=None, max_keepalive_connections=20)
        self._client = client or httpx2.AsyncClient(
            timeout=timeout, follow_redirects=False, limits=limits
        )
        self._tools: list[ToolInfo] | None = None
        self._tools_lock = asyncio.Lock()

    @property
    def link(self) -> str:
        return f"{self.base}/agents.md"

    async def __aenter__(self) -> AgentClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP client (if this object created it)."""
        if self._own_client:
            await self._client.aclose()

    # -- reading ------------------------------------------------------------------------------

    async def agents_md(self) -> str:
        """The app's briefing (with the relay's preamble when the app sent none)."""
        response = await self._send("GET", "/agents.md")
        return response.text

    async def tools_json(self) -> dict[str, Any]:
        """The raw ``tools.json`` document."""
        response = await self._send("GET", "/tools.json")
        if not isinstance(response.body, dict):
            raise ProtocolError(
                "tools.json is not a JSON object", status=response.status, code="protocol_error"
            )
        return response.body

    async def tools(self) -> list[ToolInfo]:
        """The app's tools (also refreshes the cache :meth:`call` uses to pick methods)."""
        doc = await self.tools_json()
        tools: list[ToolInfo] = []
        for item in doc.get("tools") or []:
            if not isinstance(item, dict):
                continue
            tools.append(
                ToolInfo(
                    method=str(item.get("method", "POST")).upper(),
                    path=str(item.get("path", "")),
                    description=str(item.get("description") or ""),
                    input_schema=item.get("input_schema"),
                    has_schema="input_schema" in item,
                )
            )
        self._tools = tools
        return tools

    # -- calling ------------------------------------------------------------------------------

    async def call(
        self,
        path: str,
        body: Any = None,
        *,
        method: str | None = None,
        headers: dict[str, str] | None = None,
        raw: str | bytes | None = None,
        wait: bool = True,
    ) -> Any:
        """Call the tool at ``path`` and return its answer's body (parsed JSON, else text).

        ``body`` is sent as JSON (``None``: no body); ``raw`` sends bytes or text as-is
        instead. ``method`` defaults to the one ``tools.json`` lists for ``path`` (read once,
        then cached), else POST. A ``202`` task is polled until it completes (``wait=False``
        returns the ``{"taskId": …}`` answer instead). Error answers raise their
        :class:`AgentSocketError` subclass.
        """
        response = await self.request(
            path, body, method=method, headers=headers, raw=raw, wait=wait
        )
        return response.body

    async def request(
        self,
        path: str,
        body: Any = None,
        *,
        method: str | None = None,
        headers: dict[str, str] | None = None,
        raw: str | bytes | None = None,
        wait: bool = True,
    ) -> ToolResponse:
        """Like :meth:`call`, but return the whole :class:`ToolResponse`."""
        if not path.startswith("/"):
            path = "/" + path
        if method is None:
            method = await self._method_for(path)
        send_headers = dict(headers or {})
        content: bytes | None = None
        if raw is not None:
            content = raw.encode("utf-8") if isinstance(raw, str) else raw
        elif body is not None:
            content = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
            send_headers.setdefault("content-type", "application/json")
        response = await self._send(method.upper(), path, content=content, headers=send_headers)
        task_id = response.task_id
        if task_id is not None and wait:
            return await self.wait_task(task_id)
        return response

    async def task(self, task_id: str) -> ToolResponse:
        """Poll a task once: ``202 {"completed": false}`` while pending, else its result.

        The result is given once; a later poll raises :class:`NotFoundError`.
        """
        return await self._send("GET", f"/_as_tasks/{task_id}")

    async def wait_task(self, task_id: str, timeout: float | None = None) -> ToolResponse:
        """Poll a task with backoff until it completes; raise its error if it failed."""
        limit = self.task_timeout if timeout is None else timeout
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit
        delay = self.poll_interval
        while True:
            response = await self.task(task_id)
            if not (
                response.status == 202
                and isinstance(response.body, dict)
                and response.body.get("completed") is False
            ):
                return response
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TaskTimeoutError(
                    f"task {task_id} not complete after {limit:g} s",
                    status=202,
                    code="task_timeout",
                )
            await asyncio.sleep(min(delay, remaining))
            delay = min(self.poll_max, delay * 1.5)

    async def _method_for(self, path: str) -> str:
        async with self._tools_lock:  # concurrent first calls read tools.json once
            if self._tools is None:
                try:
                    await self.tools()
                except AgentSocketError:
                    return "POST"
        methods = [tool.method for tool in self._tools or [] if tool.path == path]
        if len(methods) == 1:
            return methods[0]
        return "POST"

    async def _send(
        self,
        method: str,
        path: str,
        *,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> ToolResponse:
        http = await self._client.request(
            method, self.base + path, content=content, headers=headers or {}
        )
        text = http.text
        body: Any = text
        if "json" in http.headers.get("content-type", "").lower():
            try:
                body = json.loads(text) if text else None
            except ValueError:
                body = text
        response = ToolResponse(
            status=http.status_code,
            headers={key.lower(): value for key, value in http.headers.items()},
            text=text,
            body=body,
        )
        if response.status >= 400:
            raise _error_from(response)
        return response
