"""A default ``agents.md`` briefing for an app — PROTOCOL.md §2.1.

The document carries the contract marker, so the relay serves it as written and adds no
preamble of its own; it therefore includes the operating notes an agent needs ($BASE, listing
and calling tools, tasks, errors, "do not recite", keep the URL) before the app's own sections.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from agent_socket.client.tools import Tool
from agent_socket.protocol.preamble import CONTRACT_MARKER

#: Schemas longer than this (as compact JSON) are not inlined; the agent reads tools.json.
_INLINE_SCHEMA_CHARS = 600


def _tool_dict(tool: Tool | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(tool, Tool):
        return tool.as_json()
    return dict(tool)


def _bullets(items: Sequence[str] | str | None) -> str:
    if not items:
        return ""
    if isinstance(items, str):
        return items.strip() + "\n"
    return "".join(f"- {item.strip()}\n" for item in items)


def default_agents_md(
    name: str,
    description: str = "",
    tools: Iterable[Tool | Mapping[str, Any]] = (),
    *,
    capabilities: Sequence[str] | str | None = None,
    limitations: Sequence[str] | str | None = None,
    conventions: Sequence[str] | str | None = None,
) -> str:
    """A complete briefing for agents: operating notes, the app, its tools and house rules.

    ``tools`` may be :class:`Tool` objects or ``tools.json`` entries. ``capabilities``,
    ``limitations`` and ``conventions`` are lists of sentences (or one preformatted string);
    empty sections are left out. Small input schemas are shown inline; larger ones are only in
    ``tools.json``. The result starts with the contract marker ``<!-- as:contract-v1 -->``. The
    relay refuses a document over 65,536 characters, so a very long tool list is better
    described in ``conventions`` than in hundreds of tools.
    """
    tool_list = [_tool_dict(tool) for tool in tools]
    parts: list[str] = [
        f"{CONTRACT_MARKER}\n",
        f"# {name}\n\n",
    ]
    if description.strip():
        parts.append(description.strip() + "\n\n")
    parts.append(
        "## How to use this link (operating notes — do not recite them to the user)\n\n"
        "Read these notes and act on them; do not repeat them to the user.\n\n"
        "- `$BASE` is the URL you fetched, with the trailing `/agents.md` removed. Keep the URL: "
        "if your context is compacted, fetch it again to re-read these notes.\n"
        "- The tools are listed at `GET $BASE/tools.json` (each with `method`, `path`, "
        "`description` and, when it takes input, an `input_schema`).\n"
        "- Call a tool as `<method> $BASE<path>`. When it has an `input_schema`, send a JSON "
        "body that matches it, with `Content-Type: application/json`.\n"
        "- A tool may answer `202` with a `taskId`: poll `GET $BASE/_as_tasks/<taskId>` (wait a "
        "second or two between polls) until the answer is no longer `202`; that is the result.\n"
        "- `400` with code `bad_input` means your input did not match the schema: the `details` "
        'say what to fix. Other `{"error": …}` answers are the app\'s own errors: read the '
        "message and adjust.\n"
        "- Errors from the relay: `401` the link is wrong or was revoked; `404` no such tool "
        "(check `tools.json`); `429` slow down and retry later; `503 app_offline` the app is not "
        "connected right now — retry shortly, and if it persists ask the user to reconnect the "
        "app and share a fresh link; `504 tool_timeout` the app took too long.\n\n"
    )
    if tool_list:
        parts.append("## Tools\n\n")
        for tool in tool_list:
            method = str(tool.get("method", "POST")).upper()
            line = f"- `{method} $BASE{tool.get('path', '')}`"
            desc = str(tool.get("description") or "").strip()
            if desc:
                first, _, rest = desc.partition("\n")
                line += f" — {first.strip()}"
                if rest.strip():
                    line += " " + " ".join(rest.split())
            schema = tool.get("input_schema")
            if schema is not None:
                compact = json.dumps(schema, separators=(",", ":"), ensure_ascii=False)
                if len(compact) <= _INLINE_SCHEMA_CHARS:
                    line += f"\n  Input: `{compact}`"
                else:
                    line += "\n  Input: see `input_schema` in tools.json."
            else:
                line += "\n  No input."
            parts.append(line + "\n")
        parts.append("\n")
    for title, items in (
        ("What this app can do", capabilities),
        ("Limitations", limitations),
        ("Conventions", conventions),
    ):
        body = _bullets(items)
        if body:
            parts.append(f"## {title}\n\n{body}\n")
    return "".join(parts).rstrip() + "\n"
