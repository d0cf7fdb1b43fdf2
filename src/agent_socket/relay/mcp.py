"""``$BASE/mcp``: an MCP server over Streamable HTTP for one link (issue 9).

The server side of the MCP Streamable HTTP transport, protocol revisions 2024-11-05 through
2025-11-25 (the ``initialize`` era), written to the spec rather than by embedding the official
``mcp`` server: the relay is raw ASGI, has already read and capped the body and checked the
token, and each link's tools are the app's registration of the moment — a per-request
dispatcher over the link is smaller than adapting a server framework, and keeps ``mcp`` out
of the relay's runtime dependencies (the official client tests this server).

What it answers:

- ``initialize``, ``ping``, ``tools/list``, ``tools/call``; empty ``resources/list``,
  ``resources/templates/list`` and ``prompts/list`` for clients that ask regardless; any other
  method is ``-32601``. Notifications and client responses are acknowledged ``202``.
- ``tools/list`` derives each tool's ``name`` from its method and path (``POST /increment`` →
  ``post_increment``; ``^[a-zA-Z0-9_-]{1,64}$``, de-duplicated in registration order), and gives
  the ``input_schema`` as ``inputSchema`` (an empty object schema when there is none).
- ``tools/call`` is a plain HTTP call to ``$BASE<path>`` (method, path, the arguments as the
  JSON body, ``content-type: application/json``) made through
  :meth:`~agent_socket.relay.agent_http.AgentSurface.answer`, so every check of PROTOCOL.md
  §2.6 applies, in one place, and apps cannot tell the difference. The reply becomes text
  content (JSON pretty-printed), ``isError`` for statuses ≥ 400. A ``202`` task is followed to
  its result within the call by polling ``$BASE/_as_tasks/<id>`` as an agent would; the answer
  then switches to ``text/event-stream`` (when the client accepts it) with
  ``notifications/progress`` every second where the request carried a ``progressToken``. After
  :data:`TASK_FOLLOW_S` the call ends with the task id, and the task can still be polled at
  ``$BASE/_as_tasks/<id>``.
- ``GET`` opens a server→client SSE stream that carries ``notifications/tools/list_changed``
  whenever the app's tool list changes (``update_tools``, or a resume with other tools): the
  stream re-reads the registration every :data:`RECHECK_S` (on a node that holds the session,
  a change wakes it at once).

Stateless: nothing is kept per MCP client, and the view holds no session object (only a
:class:`~agent_socket.relay.agent_http.LinkRequest`), so any relay node of a cluster can answer
any request. The ``initialize`` answer carries a random ``Mcp-Session-Id`` only because
clients (the official SDK among them) open the ``GET`` stream only when they were given one; the
relay never stores it and accepts any or none. ``DELETE`` has nothing to end (405).

Security: the token is the credential, as for every link request (checked before this view
runs), and the 1 MiB body cap applies. The CSRF rule of PROTOCOL.md §2.5 applies to every
request here (a page's script must not run tools through MCP either). ``Origin``, when present,
must be the relay's own origin (403 otherwise), as the transport spec requires against DNS
rebinding. Limits at the edges: :data:`MAX_STREAMS_PER_SESSION` open ``GET`` streams per session
on each node (429 beyond); a stream ends when its token is revoked or the session ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

import orjson

from agent_socket import __version__
from agent_socket.protocol.errors import ErrorCode
from agent_socket.protocol.frames import Registration, Tool
from agent_socket.relay import replies
from agent_socket.relay.agent_http import TASKS_PREFIX, Call, LinkRequest
from agent_socket.relay.asgi import Headers, Receive, Send, header
from agent_socket.relay.replies import LINK_HEADERS, SANDBOX_HEADERS, Response
from agent_socket.relay.state import RelayState
from agent_socket.relay.views import identifier, link_base, request_origin, send_whole, unique

#: Revisions this server speaks, newest first; ``initialize`` gets the client's if listed here.
PROTOCOL_VERSIONS: Final = ("2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05")
#: The revision assumed when a request carries no ``MCP-Protocol-Version`` (the spec's rule).
DEFAULT_VERSION: Final = "2025-03-26"

#: How long ``tools/call`` follows a task before it answers with the task id instead.
TASK_FOLLOW_S: Final = 600.0
#: Interval of ``notifications/progress`` while a task runs.
PROGRESS_INTERVAL_S: Final = 1.0
#: SSE comment lines keep idle streams open behind proxies.
KEEPALIVE_S: Final = 15.0
#: How often an open stream re-checks its token and session.
RECHECK_S: Final = 1.0
#: Open ``GET`` streams per session.
MAX_STREAMS_PER_SESSION: Final = 16

PARSE_ERROR: Final = -32700
INVALID_REQUEST: Final = -32600
METHOD_NOT_FOUND: Final = -32601
INVALID_PARAMS: Final = -32602
#: The code MCP clients know for "not a version I speak" (named ``UNSUPPORTED_PROTOCOL_VERSION``).
UNSUPPORTED_VERSION: Final = -32022

_SSE_HEADERS: Final = (
    (b"content-type", b"text/event-stream"),
    (b"x-accel-buffering", b"no"),
    *SANDBOX_HEADERS,
)
_EMPTY_OBJECT_SCHEMA: Final = {"type": "object"}
_LISTS_WE_DO_NOT_HAVE: Final = {
    "resources/list": "resources",
    "resources/templates/list": "resourceTemplates",
    "prompts/list": "prompts",
}

Message = dict[str, Any]


# ---- tool names and results ----------------------------------------------------------------


def tool_names(tools: Iterable[Tool]) -> dict[str, Tool]:
    """MCP name → tool, in registration order: ``<method>_<path>``, unique and MCP-valid."""
    taken: set[str] = set()
    return {unique(identifier(f"{tool.method.lower()}_{tool.path}"), taken): tool for tool in tools}


def input_schema(tool: Tool) -> dict[str, Any]:
    """The tool's ``input_schema`` as an MCP ``inputSchema`` (always an object schema)."""
    schema = tool.input_schema if tool.has_schema else None
    if not isinstance(schema, dict):
        return dict(_EMPTY_OBJECT_SCHEMA)
    if "type" not in schema:
        return {"type": "object", **schema}
    return schema if schema.get("type") == "object" else dict(_EMPTY_OBJECT_SCHEMA)


def list_tools(registration: Registration) -> dict[str, Any]:
    return {
        "tools": [
            {
                "name": name,
                "description": tool.description or f"{tool.method} {tool.path}",
                "inputSchema": input_schema(tool),
            }
            for name, tool in tool_names(registration.tools).items()
        ]
    }


def result_text(response: Response) -> str:
    """The reply's body as text: JSON pretty-printed, anything else as sent."""
    if response.content_type.startswith("application/json") and response.body:
        try:
            value = orjson.loads(response.body)
        except orjson.JSONDecodeError:
            pass
        else:
            return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode("utf-8")
    return response.body.decode("utf-8", "replace")


def tool_result(response: Response) -> dict[str, Any]:
    return {
        "content": [{"type": "text", "text": result_text(response)}],
        "isError": response.status >= 400,
    }


# ---- JSON-RPC framing ----------------------------------------------------------------------


def _error(request_id: Any, code: int, message: str, data: Any = None) -> Message:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "id": request_id, "error": error}


def _result(request_id: Any, result: dict[str, Any]) -> Message:
    return {"jsonrpc": "2.0", "id": request_id, "result": result}


def _sse(message: Message) -> bytes:
    return b"event: message\ndata: " + orjson.dumps(message) + b"\n\n"


def _is_request(message: Any) -> bool:
    return (
        isinstance(message, dict)
        and isinstance(message.get("method"), str)
        and "id" in message
        and isinstance(message["id"], str | int)
        and not isinstance(message["id"], bool)
    )


def _is_notification_or_response(message: Any) -> bool:
    if not isinstance(message, dict):
        return False
    if isinstance(message.get("method"), str):
        return "id" not in message
    return "id" in message and ("result" in message or "error" in message)


def _accepts(accept: str | None, media: str) -> bool:
    """Whether an ``Accept`` header lists ``media`` (or a wildcard covering it)."""
    if accept is None:
        return False
    kind = media.split("/", 1)[0]
    for item in accept.split(","):
        value = item.split(";", 1)[0].strip().lower()
        if value in (media, f"{kind}/*", "*/*"):
            return True
    return False


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


class _Answer:
    """The answer to one POST: JSON, or — once a call has to wait — an SSE stream."""

    def __init__(self, send: Send, sse_ok: bool) -> None:
        self.send = send
        self.sse_ok = sse_ok
        self.streaming = False
        self.last_write = 0.0

    async def open_stream(self) -> None:
        if self.sse_ok and not self.streaming:
            self.streaming = True
            headers = [*LINK_HEADERS, *_SSE_HEADERS]
            await self.send({"type": "http.response.start", "status": 200, "headers": headers})
            await self._write(b": following a task\n\n")

    async def _write(self, chunk: bytes) -> None:
        self.last_write = asyncio.get_running_loop().time()
        await self.send({"type": "http.response.body", "body": chunk, "more_body": True})

    async def notify(self, message: Message) -> None:
        if self.streaming:
            await self._write(_sse(message))

    async def keepalive(self) -> None:
        if self.streaming and asyncio.get_running_loop().time() - self.last_write >= KEEPALIVE_S:
            await self._write(b": keepalive\n\n")

    async def finish(self, message: Message | list[Message], headers: Headers = ()) -> int:
        if self.streaming:
            assert isinstance(message, dict)
            await self.send({"type": "http.response.body", "body": _sse(message)})
            return 200
        return await send_whole(
            self.send, 200, replies.JSON_TYPE, orjson.dumps(message), [*SANDBOX_HEADERS, *headers]
        )


@dataclass(slots=True)
class _Call:
    """One request being answered, with what it needs to reach the app."""

    link: LinkRequest
    answer: _Answer


def _body_202(response: Response) -> Any:
    """The JSON body of a ``202`` (None for any other status or body)."""
    if response.status != 202 or not response.content_type.startswith("application/json"):
        return None
    try:
        return orjson.loads(response.body)
    except orjson.JSONDecodeError:
        return None


def _started_task(response: Response) -> str | None:
    """The task id when ``response`` is ``202 {"taskId": …}``: a task started (§2.4)."""
    body = _body_202(response)
    if isinstance(body, dict) and body.keys() == {"taskId"} and isinstance(body["taskId"], str):
        task_id: str = body["taskId"]
        return task_id
    return None


def _pending(response: Response, task_id: str) -> bool:
    """Whether a task poll answered ``202 {"taskId": …, "completed": false}``."""
    return bool(_body_202(response) == {"taskId": task_id, "completed": False})


# ---- the view ------------------------------------------------------------------------------


class McpView:
    """Serves ``$BASE/mcp`` (see the module docstring)."""

    def __init__(self, relay: RelayState) -> None:
        self.relay = relay
        self.streams: Counter[str] = Counter()

    async def __call__(self, request: LinkRequest, send: Send) -> int:
        scope = request.scope
        site = header(scope, b"sec-fetch-site")
        if site and site != "none":
            return await self._refuse(
                send, replies.error(ErrorCode.CSRF_DENIED, "MCP calls from web pages are refused")
            )
        origin = header(scope, b"origin")
        own = request_origin(self.relay, scope).lower()
        if origin is not None and origin.rstrip("/").lower() != own:
            body = orjson.dumps(_error(None, INVALID_REQUEST, "Origin not allowed"))
            return await send_whole(send, 403, replies.JSON_TYPE, body)
        method = scope["method"].upper()
        if method == "POST":
            return await self._post(request, send)
        if method == "GET":
            return await self._listen(request, send)
        return await send_whole(
            send,
            405,
            replies.JSON_TYPE,
            orjson.dumps(_error(None, INVALID_REQUEST, f"{method} is not used here")),
            ((b"allow", b"GET, POST"),),
        )

    @staticmethod
    async def _refuse(send: Send, response: Response) -> int:
        return await send_whole(send, response.status, response.content_type, response.body)

    # ---- POST: JSON-RPC requests -----------------------------------------------------------

    async def _post(self, request: LinkRequest, send: Send) -> int:
        scope = request.scope
        accept = header(scope, b"accept")
        json_ok = accept is None or _accepts(accept, "application/json")
        sse_ok = _accepts(accept, "text/event-stream")
        if not (json_ok or sse_ok):
            body = orjson.dumps(_error(None, INVALID_REQUEST, "Accept must allow application/json"))
            return await send_whole(send, 406, replies.JSON_TYPE, body)
        try:
            payload = orjson.loads(request.body)
        except orjson.JSONDecodeError:
            return await self._bad(send, _error(None, PARSE_ERROR, "Parse error: not JSON"))
        batch = isinstance(payload, list)
        messages: list[Any] = payload if isinstance(payload, list) else [payload]
        if not messages:
            return await self._bad(send, _error(None, INVALID_REQUEST, "empty batch"))
        version = header(scope, b"mcp-protocol-version")
        requests = [m for m in messages if _is_request(m)]
        is_initialize = any(m["method"] == "initialize" for m in requests)
        if version is not None and version not in PROTOCOL_VERSIONS and not is_initialize:
            first = requests[0]["id"] if requests and not batch else None
            data = {"supported": list(PROTOCOL_VERSIONS), "requested": version}
            message = _error(first, UNSUPPORTED_VERSION, "Unsupported protocol version", data)
            return await self._bad(send, message)
        for message in messages:
            if not (_is_request(message) or _is_notification_or_response(message)):
                request_id = message.get("id") if isinstance(message, dict) else None
                return await self._bad(send, _error(request_id, INVALID_REQUEST, "Invalid Request"))
        if not requests:
            return await send_whole(send, 202, None, b"")
        answer = _Answer(send, sse_ok and not batch)
        call = _Call(request, answer)
        replies_out = [await self._answer(call, message) for message in requests]
        headers: list[tuple[bytes, bytes]] = []
        if is_initialize:
            headers.append((b"mcp-session-id", secrets.token_urlsafe(16).encode()))
        return await answer.finish(replies_out if batch else replies_out[0], headers)

    @staticmethod
    async def _bad(send: Send, message: Message) -> int:
        return await send_whole(send, 400, replies.JSON_TYPE, orjson.dumps(message))

    async def _answer(self, call: _Call, message: Message) -> Message:
        request_id = message["id"]
        method: str = message["method"]
        params = message.get("params")
        if params is not None and not isinstance(params, dict):
            return _error(request_id, INVALID_PARAMS, "params must be an object")
        params = params or {}
        registration = call.link.registration
        if method == "initialize":
            return _result(request_id, self._initialize(registration, params))
        if method == "ping":
            return _result(request_id, {})
        if method == "tools/list":
            return _result(request_id, list_tools(registration))
        if method == "tools/call":
            return await self._tools_call(call, request_id, params)
        if method in _LISTS_WE_DO_NOT_HAVE:
            return _result(request_id, {_LISTS_WE_DO_NOT_HAVE[method]: []})
        return _error(request_id, METHOD_NOT_FOUND, f"Method not found: {method}")

    @staticmethod
    def _initialize(registration: Registration, params: dict[str, Any]) -> dict[str, Any]:
        asked = params.get("protocolVersion")
        version = asked if asked in PROTOCOL_VERSIONS else PROTOCOL_VERSIONS[0]
        result: dict[str, Any] = {
            "protocolVersion": version,
            "capabilities": {"tools": {"listChanged": True}},
            "serverInfo": {"name": registration.app_id, "version": __version__},
        }
        instructions = registration.agents_md.strip() or registration.app_description
        if instructions:
            result["instructions"] = instructions
        return result

    async def _tools_call(self, call: _Call, request_id: Any, params: dict[str, Any]) -> Message:
        name = params.get("name")
        arguments = params.get("arguments")
        if not isinstance(name, str):
            return _error(request_id, INVALID_PARAMS, "params.name must be a string")
        if arguments is not None and not isinstance(arguments, dict):
            return _error(request_id, INVALID_PARAMS, "params.arguments must be an object")
        tool = tool_names(call.link.registration.tools).get(name)
        if tool is None:
            return _error(request_id, INVALID_PARAMS, f"Unknown tool: {name}")
        meta = params.get("_meta")
        token = meta.get("progressToken") if isinstance(meta, dict) else None
        wanted = isinstance(token, str | int) and not isinstance(token, bool)
        progress_token = token if wanted else None
        response = await self._run(call, tool, arguments, progress_token)
        return _result(request_id, tool_result(response))

    async def _run(
        self,
        call: _Call,
        tool: Tool,
        arguments: dict[str, Any] | None,
        progress_token: str | int | None,
    ) -> Response:
        """Call the tool through the agent surface, exactly as a plain HTTP call to
        ``$BASE<path>`` with the arguments as its JSON body would be (every check of §2.6 applies,
        on whichever node holds the app), then follow a task it starts."""
        link = call.link
        if arguments is None:
            body, headers = b"", {}
        else:
            body = orjson.dumps(arguments)
            headers = {"content-type": "application/json"}
        response = await link.surface.answer(
            link.session_id,
            Call(
                method=tool.method,
                tail=tool.path,
                verifier=link.verifier,
                site=header(link.scope, b"sec-fetch-site"),
                headers=headers,
                body=body,
            ),
        )
        task_id = _started_task(response)
        if task_id is None:
            return response
        return await self._follow(call, task_id, progress_token)

    async def _follow(
        self, call: _Call, task_id: str, progress_token: str | int | None
    ) -> Response:
        """Poll ``$BASE/_as_tasks/<id>`` until it is no longer pending, with progress
        notifications; the result is taken (§2.4), so it is given to this call only."""
        loop = asyncio.get_running_loop()
        link = call.link
        answer = call.answer
        await answer.open_stream()
        receive = link.receive
        gone = asyncio.ensure_future(_until_disconnect(receive)) if receive else None
        poll = Call(
            method="GET",
            tail=TASKS_PREFIX + task_id,
            verifier=link.verifier,
            site=header(link.scope, b"sec-fetch-site"),
            headers={},
            body=b"",
        )
        deadline = loop.time() + TASK_FOLLOW_S
        next_progress = loop.time()
        ticks = 0
        step = 0.02
        try:
            while gone is None or not gone.done():
                response = await link.surface.answer(link.session_id, poll)
                if not _pending(response, task_id):
                    return response
                now = loop.time()
                if now >= deadline:
                    break
                if progress_token is not None and now >= next_progress:
                    ticks += 1
                    await answer.notify(self._progress(progress_token, ticks, task_id))
                    next_progress = now + PROGRESS_INTERVAL_S
                await answer.keepalive()
                await asyncio.sleep(step)
                step = min(step * 2, 0.25)
        finally:
            if gone is not None:
                gone.cancel()
        url = f"{link_base(self.relay, link.scope, link.token)}{TASKS_PREFIX}{task_id}"
        return replies.json_response(202, {"taskId": task_id, "completed": False, "poll": url})

    @staticmethod
    def _progress(token: str | int, ticks: int, task_id: str) -> Message:
        return {
            "jsonrpc": "2.0",
            "method": "notifications/progress",
            "params": {
                "progressToken": token,
                "progress": ticks,
                "message": f"waiting for the app's task {task_id}",
            },
        }

    # ---- GET: the server→client stream -----------------------------------------------------

    async def _listen(self, request: LinkRequest, send: Send) -> int:
        if not _accepts(header(request.scope, b"accept"), "text/event-stream"):
            body = orjson.dumps(_error(None, INVALID_REQUEST, "Accept must allow SSE"))
            return await send_whole(send, 406, replies.JSON_TYPE, body)
        session_id = request.session_id
        if self.streams[session_id] >= MAX_STREAMS_PER_SESSION:
            return await self._refuse(
                send,
                replies.error(
                    ErrorCode.TOO_MANY_INFLIGHT,
                    f"{MAX_STREAMS_PER_SESSION} MCP streams already open for this app",
                ),
            )
        self.streams[session_id] += 1
        try:
            await self._stream(request, send)
        finally:
            self.streams[session_id] -= 1
            if self.streams[session_id] <= 0:
                del self.streams[session_id]
        return 200

    async def _stream(self, request: LinkRequest, send: Send) -> None:
        """Announce tool-list changes until the client leaves, the link is revoked or the
        session ends. Every :data:`RECHECK_S` the registration is read again through the
        surface, which works on any node; when the session lives on this node its
        ``registration_changed`` event wakes the stream at once."""
        loop = asyncio.get_running_loop()
        headers = [*LINK_HEADERS, *_SSE_HEADERS]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b": open\n\n", "more_body": True})
        tools = request.registration.tools_json_body
        receive = request.receive
        gone = asyncio.ensure_future(_until_disconnect(receive)) if receive else None
        changed: asyncio.Future[Any] | None = None
        watched: asyncio.Event | None = None
        last_write = loop.time()
        try:
            while gone is None or not gone.done():
                # Taken before the registration is read, so a change in between still wakes us.
                local = self.relay.hub.get(request.session_id)
                event = local.registration_changed if local is not None else None
                registration = await request.surface.registration(
                    request.session_id, request.verifier
                )
                if registration is None:  # revoked, ended, or storage unreachable
                    break
                if registration.tools_json_body != tools:
                    tools = registration.tools_json_body
                    chunk = _sse({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"})
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                    last_write = loop.time()
                if watched is not event:
                    if changed is not None:
                        changed.cancel()
                    watched = event
                    changed = asyncio.ensure_future(event.wait()) if event is not None else None
                waits: set[asyncio.Future[Any]] = {f for f in (changed, gone) if f is not None}
                if waits:
                    await asyncio.wait(
                        waits, timeout=RECHECK_S, return_when=asyncio.FIRST_COMPLETED
                    )
                else:
                    await asyncio.sleep(RECHECK_S)
                if loop.time() - last_write >= KEEPALIVE_S:
                    chunk = b": keepalive\n\n"
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                    last_write = loop.time()
        finally:
            for future in (changed, gone):
                if future is not None:
                    future.cancel()
        with contextlib.suppress(OSError, RuntimeError):
            await send({"type": "http.response.body", "body": b""})
