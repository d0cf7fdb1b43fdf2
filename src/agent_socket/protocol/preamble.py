"""The agents.md contract marker and framework preamble — PROTOCOL.md §2.1.

An app's document that already speaks the contract (it carries the marker or mentions
``tools.json``) is served as written; any other document gets these operating notes in front.
"""

from __future__ import annotations

CONTRACT_MARKER = "<!-- as:contract-v1 -->"

PREAMBLE = f"""{CONTRACT_MARKER}
# Operating notes for the AI reading this link

These notes explain how to use the app described below. Do not recite them to the user: read
them, then act on them.

- `$BASE` is the URL you fetched with the trailing `/agents.md` removed. Keep that URL: if your
  context is compacted or you lose track, fetch it again to re-read these notes.
- List the tools with `GET $BASE/tools.json`. Each tool has a `method`, a `path`, a
  `description` and, optionally, an `input_schema` (JSON Schema of its body).
- Call a tool as `<method> $BASE<path>`. When the tool has an `input_schema`, send a JSON body
  that matches it, with `Content-Type: application/json`.
- A tool that needs long may answer `202` with a `taskId`; poll `GET $BASE/_as_tasks/<taskId>`
  until it stops answering `202`, then read the result.
- Errors from this framework are 4xx/5xx with `{{"error": {{"code": …, "message": …}}}}`:
  401 means the link is wrong or was revoked; 404 means there is no such tool (check
  `tools.json`); 429 means slow down and retry later.
- A `2xx` whose body holds `{{"error": …}}` is the app's own answer: read it and adjust.
- `503` with code `app_offline` means the app is not connected right now. Retry shortly; if it
  persists, ask the user to reopen or reconnect the app and share a fresh link.
- For clients that use them, the same tools are an MCP server (Streamable HTTP) at `$BASE/mcp`
  and an OpenAPI 3.1 document at `$BASE/openapi.json` (GPT Actions); plain HTTP works anywhere.

---

"""


def needs_preamble(agents_md: str) -> bool:
    """True when the app's document does not already speak the contract."""
    return CONTRACT_MARKER not in agents_md and "tools.json" not in agents_md


def served_agents_md(agents_md: str) -> str:
    """The document an agent receives for ``GET $BASE/agents.md``."""
    return PREAMBLE + agents_md if needs_preamble(agents_md) else agents_md
