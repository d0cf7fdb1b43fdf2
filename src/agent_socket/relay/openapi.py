"""``$BASE/openapi.json``: an OpenAPI 3.1 document of one link, generated from the registration.

The server URL is the link itself (``<origin>/v1/t/<token>``), so a GPT Action or any OpenAPI
client can import the document and call the tools as plain HTTP (PROTOCOL.md §2.3) with no
authentication setting: the token in the URL is the credential. One operation per tool:

- ``operationId`` from the path (``/increment`` → ``increment``; the method is prefixed, then a
  number appended, when that is taken), restricted to ``^[a-zA-Z0-9_-]{1,64}$``;
- the request body from the tool's ``input_schema`` (``application/json``), when it has one;
- responses: the app's answer (its shape is the app's), ``202`` for a started task, the
  framework's error shape for the statuses of §2.6, and ``default`` for any other status the
  app chooses. The task poll ``GET /_as_tasks/{taskId}`` is documented too.

Tools whose method OpenAPI cannot express (anything but GET, PUT, POST, DELETE, OPTIONS, HEAD,
PATCH, TRACE) are left out; ``tools.json`` still lists them. Like ``tools.json``, the document
answers any HTTP method and is exempt from the CSRF rule (it is read-only).
"""

from __future__ import annotations

from typing import Any

import orjson

from agent_socket import __version__
from agent_socket.protocol.frames import Registration, Tool
from agent_socket.relay import replies
from agent_socket.relay.agent_http import TASKS_PREFIX, LinkRequest
from agent_socket.relay.asgi import Send
from agent_socket.relay.state import RelayState
from agent_socket.relay.views import identifier, link_base, send_whole, unique

OPENAPI_VERSION = "3.1.0"
_VERBS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})
_TASK_ID_PATTERN = "^[A-Za-z0-9_-]{1,64}$"
_FRAMEWORK_ERRORS = {
    "401": "token_invalid: the link is unknown or was revoked.",
    "403": "csrf_denied: the call came from a web page (Sec-Fetch-Site).",
    "404": "not_found: no such tool or task.",
    "413": "body_too_large: the request body is over the relay's limit (1 MiB by default).",
    "429": "too_many_inflight: too many calls in flight for this app; slow down.",
    "502": "protocol_error: the app's reply broke the contract.",
    "503": "app_offline (the app is not connected: retry shortly) or too_many_tasks.",
    "504": "tool_timeout: the app did not answer in time.",
}
_INFO = (
    "Tools of the app behind this link, called through an agent-socket relay. The link is the "
    "credential: keep it private. A tool that needs long answers 202 with a taskId; poll "
    "GET /_as_tasks/{taskId} until it stops answering 202. Framework errors are "
    '{"error": {"code", "message"}}; a 2xx whose body holds "error" is the app\'s own answer.'
)


def _ref(kind: str, name: str) -> dict[str, str]:
    return {"$ref": f"#/components/{kind}/{name}"}


def _components() -> dict[str, Any]:
    json_any: dict[str, Any] = {"schema": {}}
    error_content = {"application/json": {"schema": _ref("schemas", "Error")}}
    responses: dict[str, Any] = {
        "Result": {
            "description": "The tool's answer; its shape is the app's.",
            "content": {"application/json": json_any, "text/plain": {"schema": {"type": "string"}}},
        },
        "TaskStarted": {
            "description": "The tool runs on as a task: poll GET /_as_tasks/{taskId}.",
            "content": {"application/json": {"schema": _ref("schemas", "TaskStarted")}},
        },
        "Other": {
            "description": "Any other status the app chose (e.g. 400 for input it refuses).",
            "content": {"application/json": json_any, "text/plain": {"schema": {"type": "string"}}},
        },
    }
    for status, text in _FRAMEWORK_ERRORS.items():
        responses[f"Error{status}"] = {"description": text, "content": error_content}
    responses["Error503"]["headers"] = {
        "Retry-After": {
            "description": "Seconds to wait when the app is briefly away.",
            "required": False,
            "schema": {"type": "string"},
        }
    }
    return {
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error"],
                "properties": {
                    "error": {
                        "type": "object",
                        "required": ["code", "message"],
                        "properties": {
                            "code": {"type": "string", "description": "Match on this."},
                            "message": {"type": "string"},
                        },
                    }
                },
            },
            "TaskStarted": {
                "type": "object",
                "required": ["taskId"],
                "properties": {"taskId": {"type": "string", "pattern": _TASK_ID_PATTERN}},
            },
            "TaskPending": {
                "type": "object",
                "required": ["taskId", "completed"],
                "properties": {
                    "taskId": {"type": "string", "pattern": _TASK_ID_PATTERN},
                    "completed": {"const": False},
                },
            },
        },
        "responses": responses,
    }


def _responses(*codes: str) -> dict[str, Any]:
    out: dict[str, Any] = {"200": _ref("responses", "Result")}
    for code in codes:
        out[code] = _ref("responses", "TaskStarted" if code == "202" else f"Error{code}")
    out["default"] = _ref("responses", "Other")
    return out


_TOOL_RESPONSES = _responses("202", *_FRAMEWORK_ERRORS)


def _operation(tool: Tool, operation_id: str) -> dict[str, Any]:
    summary = (tool.description.strip().splitlines() or [f"{tool.method} {tool.path}"])[0]
    op: dict[str, Any] = {"operationId": operation_id, "summary": summary[:120]}
    if tool.description:
        op["description"] = tool.description
    schema = tool.input_schema if tool.has_schema else None
    if isinstance(schema, dict | bool):
        required = isinstance(schema, dict) and bool(schema.get("required"))
        op["requestBody"] = {
            "required": required,
            "content": {"application/json": {"schema": schema}},
        }
    op["responses"] = _TOOL_RESPONSES
    return op


def _task_poll(operation_id: str) -> dict[str, Any]:
    pending = {"application/json": {"schema": _ref("schemas", "TaskPending")}}
    responses = _responses("404")
    responses["202"] = {"description": "The task is still running.", "content": pending}
    return {
        "get": {
            "operationId": operation_id,
            "summary": "Result of a task a tool started (given once, then 404)",
            "parameters": [
                {
                    "name": "taskId",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "pattern": _TASK_ID_PATTERN},
                }
            ],
            "responses": responses,
        }
    }


def document(registration: Registration, base: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of a link whose ``$BASE`` is ``base``."""
    paths: dict[str, dict[str, Any]] = {}
    taken: set[str] = set()
    left_out: list[str] = []
    for tool in registration.tools:
        verb = tool.method.lower()
        if verb not in _VERBS:
            left_out.append(f"{tool.method} {tool.path}")
            continue
        name = identifier(tool.path)
        if name in taken:
            name = identifier(f"{verb}_{name}")
        paths.setdefault(tool.path, {})[verb] = _operation(tool, unique(name, taken))
    paths[TASKS_PREFIX + "{taskId}"] = _task_poll(unique("get_task_result", taken))
    description = _INFO
    if registration.app_description:
        description = f"{registration.app_description}\n\n{_INFO}"
    if left_out:
        description += " Not listed here (see tools.json): " + ", ".join(left_out) + "."
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": registration.app_id,
            "description": description,
            "version": "1.0",
            "x-agent-socket-version": __version__,
        },
        "servers": [{"url": base, "description": "This link (the URL is the credential)"}],
        "paths": paths,
        "components": _components(),
    }


class OpenApiView:
    """Serves ``$BASE/openapi.json``."""

    def __init__(self, relay: RelayState) -> None:
        self.relay = relay

    async def __call__(self, request: LinkRequest, send: Send) -> int:
        base = link_base(self.relay, request.scope, request.token)
        body = orjson.dumps(document(request.registration, base))
        return await send_whole(send, 200, replies.JSON_TYPE, body)
