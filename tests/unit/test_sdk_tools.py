"""Tools from functions: schema derivation, validation, reply forms, the default briefing."""

from __future__ import annotations

import asyncio
import json
from typing import Any, Literal

import pytest
from pydantic import BaseModel, Field

from agent_socket import App, Call, Reply, Tool, ToolError, default_agents_md
from agent_socket.client.replies import reply_fields
from agent_socket.client.tools import BadInput
from agent_socket.protocol.preamble import CONTRACT_MARKER


class Point(BaseModel):
    x: int
    y: int = 0
    tag: str = Field("", max_length=5)


def test_schema_from_type_hints() -> None:
    def move(dx: int, dy: int = 0, mode: Literal["fast", "slow"] = "slow") -> dict[str, int]:
        """Move the cursor.

        More text."""
        return {}

    tool = Tool.from_function(move, "/move")
    assert tool.method == "POST" and tool.path == "/move"
    assert tool.description.startswith("Move the cursor.")
    schema = tool.input_schema
    assert schema is not None
    assert schema["type"] == "object"
    assert schema["required"] == ["dx"]
    assert schema["properties"]["dx"] == {"type": "integer"}
    assert schema["properties"]["mode"]["enum"] == ["fast", "slow"]
    assert schema["additionalProperties"] is False


def test_schema_from_a_pydantic_model_parameter() -> None:
    def place(point: Point, call: Call) -> Point:
        return point

    tool = Tool.from_function(place, "/place", method="put")
    assert tool.method == "PUT"
    assert tool.input_schema == {
        "type": "object",
        "properties": {
            "x": {"type": "integer"},
            "y": {"type": "integer", "default": 0},
            "tag": {"type": "string", "default": "", "maxLength": 5},
        },
        "required": ["x"],
    }
    call = Call("PUT", "/place", '{"x": 1}', {})
    kwargs = tool.arguments(call)
    assert kwargs["point"] == Point(x=1)
    assert kwargs["call"] is call


def test_no_parameters_means_no_schema_and_body_ignored() -> None:
    def ping() -> str:
        return "pong"

    tool = Tool.from_function(ping, "/ping", method="GET")
    assert "input_schema" not in tool.as_json()
    assert tool.arguments(Call("GET", "/ping", "not json", {})) == {}


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ('{"dx": "abc"}', "dx"),
        ("{}", "dx"),
        ('{"dx": 1, "bogus": 2}', "bogus"),
        ("[1, 2]", "JSON object"),
        ("{not json", "not valid JSON"),
    ],
)
def test_validation_errors(body: str, fragment: str) -> None:
    def move(dx: int, dy: int = 0) -> None: ...

    tool = Tool.from_function(move, "/move")
    with pytest.raises(BadInput) as caught:
        tool.arguments(Call("POST", "/move", body, {}))
    assert fragment in caught.value.message
    fields = reply_fields(caught.value.to_reply())
    assert fields["status"] == 400
    assert fields["body"]["error"]["code"] == "bad_input"


def test_validation_details_list_every_problem() -> None:
    tool = Tool.from_function(_takes_point, "/p")
    with pytest.raises(BadInput) as caught:
        tool.arguments(Call("POST", "/p", '{"x": "no", "tag": "toolong"}', {}))
    locs = [item["loc"] for item in caught.value.details]
    assert locs == [["x"], ["tag"]]


def _takes_point(point: Point) -> Point:
    return point


@pytest.mark.parametrize(
    "path", ["/agents.md", "/tools.json", "/Tools.JSON/x", "/_as_tasks", "no-slash", "/a b", "/"]
)
def test_paths_the_relay_would_refuse(path: str) -> None:
    with pytest.raises(ValueError):
        Tool.from_function(lambda: None, path)


def test_bad_signatures() -> None:
    def star(*args: int) -> None: ...

    with pytest.raises(TypeError):
        Tool.from_function(star, "/x")


def test_reply_forms() -> None:
    assert reply_fields({"a": 1}) == {"status": 200, "body": {"a": 1}}
    assert reply_fields(None) == {"status": 200, "body": None}
    assert reply_fields(Point(x=1)) == {"status": 200, "body": {"x": 1, "y": 0, "tag": ""}}
    assert reply_fields(Reply({"b": 2}, status=201)) == {"status": 201, "body": {"b": 2}}
    assert reply_fields(Reply.text("a,b", "text/csv")) == {
        "status": 200,
        "body": "a,b",
        "headers": {"content-type": "text/csv"},
    }
    assert reply_fields(Reply("x", headers={"Content-Type": "text/plain", "x-a": "1"})) == {
        "status": 200,
        "body": "x",
        "headers": {"x-a": "1", "content-type": "text/plain"},
    }
    error = reply_fields(ToolError("nope", code="no_stock", status=409, details={"left": 0}))
    assert error == {
        "status": 409,
        "body": {"error": {"code": "no_stock", "message": "nope", "details": {"left": 0}}},
    }


@pytest.mark.parametrize("status", [199, 600, "200", 200.0, True])
def test_reply_status_is_checked_in_the_app(status: Any) -> None:
    with pytest.raises(ValueError):
        Reply({}, status=status)
    with pytest.raises(ValueError):
        ToolError("x", status=status)


async def test_sync_handler_runs_in_a_worker_thread() -> None:
    import threading

    def where() -> str:
        return threading.current_thread().name

    tool = Tool.from_function(where, "/where")
    name = await tool.invoke(Call("POST", "/where"))
    assert name != threading.current_thread().name
    assert asyncio.get_running_loop()  # still on the loop here


def test_app_rejects_duplicates_and_slugs_names() -> None:
    app = App("My Counter!", description="d")
    assert app.app_id == "My-Counter"

    @app.tool("/x")
    def x() -> None: ...

    with pytest.raises(ValueError):
        app.tool("/x")(x)
    app.tool("/x", method="GET")(x)  # another method is another tool
    assert [t.key for t in app.tools] == [("POST", "/x"), ("GET", "/x")]
    app.remove_tool("/x")
    assert [t.key for t in app.tools] == [("GET", "/x")]


def test_default_agents_md() -> None:
    def inc(by: int = 1) -> int:
        """Add `by`."""
        return by

    doc = default_agents_md(
        "counter",
        "A counter the AI can change.",
        [Tool.from_function(inc, "/increment"), {"method": "get", "path": "/count"}],
        capabilities=["Count things."],
        limitations="Counts are not saved.",
        conventions=["Say the new count."],
    )
    assert doc.startswith(CONTRACT_MARKER + "\n# counter\n")
    for needle in (
        "do not recite",
        "$BASE",
        "tools.json",
        "`POST $BASE/increment` — Add `by`.",
        '"by":{"default":1,"type":"integer"}',
        "`GET $BASE/count`",
        "_as_tasks",
        "app_offline",
        "## What this app can do\n\n- Count things.",
        "## Limitations\n\nCounts are not saved.",
        "## Conventions\n\n- Say the new count.",
    ):
        assert needle.lower() in doc.lower(), needle
    assert "## Limitations" not in default_agents_md("x")


def test_app_registration_uses_the_generated_briefing() -> None:
    app = App("counter", description="c" * 2000)

    @app.tool("/increment")
    async def increment(by: int = 1) -> dict[str, int]:
        """Add."""
        return {"count": by}

    reg = app.registration()
    assert reg["appId"] == "counter"
    assert len(reg["appDescription"]) == 1024
    assert CONTRACT_MARKER in reg["agentsMd"] and "/increment" in reg["agentsMd"]
    assert json.dumps(reg["tools"])  # JSON-serialisable as sent
