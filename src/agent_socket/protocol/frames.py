"""Frames on the app socket — PROTOCOL.md §3.

Incoming frames are JSON objects tagged by ``type``. The registration carried by ``register``,
``resume`` and ``update_tools`` is validated here, in the contract's order, into an immutable
:class:`Registration` that also pre-renders what agents will read (``agents.md``,
``tools.json``), so no per-call work repeats what register already did.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from agent_socket.protocol.errors import CloseCode, CloseReason, ErrorCode, ProtocolViolation
from agent_socket.protocol.ids import APP_ID_RE, TOOL_PATH_RE
from agent_socket.protocol.limits import Limits, cut_utf16, utf16_units
from agent_socket.protocol.preamble import served_agents_md

#: The exact heartbeat text and its exact answer (§3.5): a fast path skips JSON for these.
HEARTBEAT_PING = '{"type":"ping","id":"as_hb"}'
HEARTBEAT_PONG = '{"type":"pong","id":"as_hb"}'

#: Frames that carry an ``id`` and get ``<type>_reply`` with ok:false before registration.
REPLY_BEFORE_REGISTER = frozenset(
    {"mint_agent_token", "revoke_agent_token", "list_agent_tokens", "update_tools"}
)

_RESERVED_EXACT = ("/agents.md", "/tools.json")
_MISSING: Any = object()


@dataclass(frozen=True, slots=True)
class Tool:
    method: str
    path: str
    description: str
    input_schema: Any = _MISSING

    @property
    def has_schema(self) -> bool:
        return self.input_schema is not _MISSING

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "method": self.method,
            "path": self.path,
            "description": self.description,
        }
        if self.has_schema:
            out["input_schema"] = self.input_schema
        return out


@dataclass(frozen=True, slots=True)
class Registration:
    """What an app declared: identity, briefing and tools.

    ``agents.md`` and ``tools.json`` are rendered when an agent asks for them rather than kept
    rendered: they are rare requests, and an idle relay holds thousands of registrations.
    """

    app_id: str
    agents_md: str
    app_description: str
    tools: tuple[Tool, ...]
    index: dict[tuple[str, str], Tool] = field(repr=False)
    #: Approximate bytes held (counted against the held-bytes cap).
    size: int = 0

    @classmethod
    def build(
        cls, app_id: str, agents_md: str, app_description: str, tools: tuple[Tool, ...]
    ) -> Registration:
        tools_size = sum(len(t.path) + len(t.description) + 64 for t in tools)
        return cls(
            app_id=app_id,
            agents_md=agents_md,
            app_description=app_description,
            tools=tools,
            index={(tool.method, tool.path): tool for tool in tools},
            size=len(agents_md) + len(app_description) + tools_size,
        )

    def with_tools(self, tools: tuple[Tool, ...], agents_md: str | None) -> Registration:
        """The registration after ``update_tools``: appId and appDescription never change."""
        doc = self.agents_md if agents_md is None else agents_md
        return Registration.build(self.app_id, doc, self.app_description, tools)

    @property
    def agents_md_body(self) -> bytes:
        """What ``GET $BASE/agents.md`` serves: the app's doc, with the preamble when needed."""
        return served_agents_md(self.agents_md).encode("utf-8")

    @property
    def tools_json_body(self) -> bytes:
        """What ``GET $BASE/tools.json`` serves (§2.2)."""
        return orjson.dumps(
            {
                "version": "1.0",
                "app": {
                    "id": self.app_id,
                    "name": self.app_id,
                    "description": self.app_description,
                },
                "tools": [tool.as_json() for tool in self.tools],
            }
        )


def _violation(code: ErrorCode, message: str, reason: CloseReason) -> ProtocolViolation:
    close = {
        ErrorCode.INVALID_APP_ID: CloseCode.INVALID_APP_ID,
        ErrorCode.AGENTS_MD_TOO_LARGE: CloseCode.AGENTS_MD_TOO_LARGE,
    }.get(code, CloseCode.INVALID_TOOLS)
    return ProtocolViolation(code, message, close, reason)


def is_reserved_path(path: str) -> bool:
    lowered = path.lower()
    for reserved in _RESERVED_EXACT:
        if lowered == reserved or lowered.startswith(reserved + "/"):
            return True
    return path.startswith("/_as_")


def parse_agents_md(value: Any, limits: Limits) -> str:
    if not isinstance(value, str) or utf16_units(value) > limits.max_agents_md_chars:
        raise _violation(
            ErrorCode.AGENTS_MD_TOO_LARGE,
            f"agentsMd must be a string of at most {limits.max_agents_md_chars} characters",
            CloseReason.AGENTS_MD_TOO_LARGE,
        )
    return value


def parse_tools(raw: Any) -> tuple[Tool, ...]:
    """Validate a ``tools`` array in the contract's order (§3.1); raise on the first failure."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise _violation(
            ErrorCode.PROTOCOL_ERROR, "tools must be an array", CloseReason.INVALID_TOOLS
        )
    tools: list[Tool] = []
    seen: set[tuple[str, str]] = set()
    for position, item in enumerate(raw):
        where = f"tools[{position}]"
        if not isinstance(item, dict):
            raise _violation(
                ErrorCode.PROTOCOL_ERROR, f"{where} must be an object", CloseReason.INVALID_TOOL
            )
        method = item.get("method", "POST")
        description = item.get("description", "")
        if not isinstance(method, str) or not isinstance(description, str):
            raise _violation(
                ErrorCode.PROTOCOL_ERROR,
                f"{where}: method and description must be strings",
                CloseReason.INVALID_TOOL,
            )
        path = item.get("path")
        if not isinstance(path, str) or TOOL_PATH_RE.match(path) is None:
            raise _violation(
                ErrorCode.RESERVED_PATH,
                f"{where}: path must match ^/[a-zA-Z0-9_\\-/.]+$",
                CloseReason.INVALID_TOOL_PATH,
            )
        if is_reserved_path(path):
            raise _violation(
                ErrorCode.RESERVED_PATH, f"{where}: {path} is reserved", CloseReason.RESERVED_PATH
            )
        method = (method or "POST").upper()
        if (method, path) in seen:
            raise _violation(
                ErrorCode.PROTOCOL_ERROR,
                f"{where}: {method} {path} is declared twice",
                CloseReason.DUPLICATE_TOOL,
            )
        seen.add((method, path))
        schema = item.get("input_schema", _MISSING)
        tools.append(Tool(method, path, description, schema))
    return tuple(tools)


def parse_registration(frame: dict[str, Any], limits: Limits) -> Registration:
    """Validate the registration fields of ``register`` or ``resume`` (§3.1, in order)."""
    app_id = frame.get("appId")
    if not isinstance(app_id, str) or APP_ID_RE.match(app_id) is None:
        raise _violation(
            ErrorCode.INVALID_APP_ID,
            "appId must match ^[A-Za-z0-9_.-]{1,64}$",
            CloseReason.INVALID_APP_ID,
        )
    agents_md = parse_agents_md(frame.get("agentsMd"), limits)
    tools = parse_tools(frame.get("tools"))
    description = frame.get("appDescription")
    if not isinstance(description, str):
        description = ""
    description = cut_utf16(description, limits.max_app_description_chars)
    return Registration.build(app_id, agents_md, description, tools)


def parse_update(frame: dict[str, Any], current: Registration, limits: Limits) -> Registration:
    """Validate ``update_tools`` (§3.4): like register, but the doc is optional."""
    agents_md = None
    if "agentsMd" in frame and frame["agentsMd"] is not None:
        agents_md = parse_agents_md(frame["agentsMd"], limits)
    tools = parse_tools(frame["tools"]) if "tools" in frame else current.tools
    return current.with_tools(tools, agents_md)


def dumps(frame: dict[str, Any]) -> str:
    return orjson.dumps(frame).decode("utf-8")


def error_reply(reply_type: str, frame_id: Any, code: ErrorCode, message: str) -> str:
    out: dict[str, Any] = {"type": reply_type}
    if frame_id is not None:
        out["id"] = frame_id
    out["ok"] = False
    out["error"] = {"code": code.value, "message": message}
    return dumps(out)
