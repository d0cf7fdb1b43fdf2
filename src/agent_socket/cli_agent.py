"""``agent-socket call`` and ``agent-socket tools``: the agent side on the command line.

``cli.py`` calls :func:`register` to add both commands to the ``agent-socket`` app.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.syntax import Syntax
from rich.table import Table

from agent_socket.agent import AgentClient, AgentSocketError, ToolInfo

CALL_HELP = (
    "Call a tool through an agent link and print its answer, e.g. "
    "agent-socket call LINK /increment '{\"by\": 2}'. Async tasks (202) are followed to the end."
)
TOOLS_HELP = "List the tools behind an agent link, with their input schemas."


def _fail(message: str, as_json: bool, error: AgentSocketError | None = None) -> None:
    if as_json:
        payload: dict[str, Any] = {"error": {"message": message}}
        if error is not None:
            payload = {
                "error": {
                    "status": error.status,
                    "code": error.code,
                    "message": error.message,
                    **({"details": error.details} if error.details is not None else {}),
                }
            }
        print(json.dumps(payload, ensure_ascii=False))
    else:
        Console(stderr=True).print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(1)


def _hint(error: AgentSocketError) -> str:
    hints = {
        "token_invalid": "The link is wrong or was revoked: ask for a fresh link.",
        "app_offline": "The app is not connected: retry shortly, or reconnect the app.",
        "not_found": "Check the path and method with `agent-socket tools LINK`.",
        "bad_input": "Check the body against the tool's input schema (`agent-socket tools`).",
        "tool_timeout": "The app took too long to answer.",
    }
    return hints.get(error.code, "")


async def _call(
    link: str, path: str, body: Any, method: str | None, wait: bool, headers: dict[str, str]
) -> Any:
    async with AgentClient(link) as client:
        response = await client.request(path, body, method=method, wait=wait, headers=headers)
        return response.body


async def _tools(link: str) -> tuple[dict[str, Any], list[ToolInfo]]:
    async with AgentClient(link) as client:
        doc = await client.tools_json()
        return doc, await client.tools()


def register(app: typer.Typer) -> None:
    """Add ``call`` and ``tools`` to the ``agent-socket`` command."""

    @app.command("call", help=CALL_HELP)
    def call(
        link: Annotated[str, typer.Argument(help="The agent link (…/agents.md).")],
        path: Annotated[str, typer.Argument(help="The tool path, e.g. /increment.")],
        body: Annotated[
            str | None, typer.Argument(help="JSON body; '-' reads it from stdin.")
        ] = None,
        method: Annotated[
            str | None,
            typer.Option("--method", "-X", help="HTTP method (default: from tools.json)."),
        ] = None,
        header: Annotated[
            list[str] | None,
            typer.Option("--header", "-H", help="Extra x-* header, 'name: value'."),
        ] = None,
        no_wait: Annotated[
            bool, typer.Option("--no-wait", help="Print a task's id instead of waiting.")
        ] = False,
        as_json: Annotated[
            bool, typer.Option("--json", help="Compact JSON output (also for errors).")
        ] = False,
    ) -> None:
        parsed: Any = None
        if body == "-":
            body = sys.stdin.read()
        if body is not None and body.strip():
            try:
                parsed = json.loads(body)
            except ValueError as exc:
                _fail(f"the body is not valid JSON: {exc}", as_json)
        headers: dict[str, str] = {}
        for item in header or []:
            name, sep, value = item.partition(":")
            if not sep:
                _fail(f"bad header {item!r}: use 'name: value'", as_json)
            headers[name.strip()] = value.strip()
        try:
            result = asyncio.run(_call(link, path, parsed, method, not no_wait, headers))
        except ValueError as exc:
            _fail(str(exc), as_json)
        except AgentSocketError as exc:
            hint = _hint(exc)
            _fail(f"{exc}" + (f"\n{hint}" if hint and not as_json else ""), as_json, exc)
        except Exception as exc:  # network errors: say what happened, no traceback
            _fail(f"request failed: {exc or type(exc).__name__}", as_json)
        if as_json:
            print(json.dumps(result, ensure_ascii=False))
        elif isinstance(result, str):
            print(result)
        else:
            Console().print_json(json.dumps(result, ensure_ascii=False))

    @app.command("tools", help=TOOLS_HELP)
    def tools(
        link: Annotated[str, typer.Argument(help="The agent link (…/agents.md).")],
        as_json: Annotated[bool, typer.Option("--json", help="Print tools.json as is.")] = False,
    ) -> None:
        try:
            doc, items = asyncio.run(_tools(link))
        except ValueError as exc:
            _fail(str(exc), as_json)
        except AgentSocketError as exc:
            _fail(str(exc), as_json, exc)
        except Exception as exc:
            _fail(f"request failed: {exc or type(exc).__name__}", as_json)
        if as_json:
            print(json.dumps(doc, ensure_ascii=False))
            return
        info = doc.get("app") if isinstance(doc.get("app"), dict) else {}
        assert isinstance(info, dict)
        title = str(info.get("name") or info.get("id") or "tools")
        if info.get("description"):
            title += f" — {info['description']}"
        table = Table(title=title, show_lines=True)
        table.add_column("Method", style="bold cyan", no_wrap=True)
        table.add_column("Path", style="bold", no_wrap=True)
        table.add_column("Description")
        table.add_column("Input schema")
        for tool in items:
            schema: Any = "—"
            if tool.has_schema:
                schema = Syntax(
                    json.dumps(tool.input_schema, indent=2, ensure_ascii=False),
                    "json",
                    word_wrap=True,
                    background_color="default",
                )
            table.add_row(tool.method, tool.path, tool.description or "", schema)
        Console().print(table)
