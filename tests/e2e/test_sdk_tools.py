"""SDK end to end: tools from functions, validation, replies, errors, handlers, tasks.

A real relay process (tests/conftest.py, sync timeout 3 s) sits between the SDK app and the
agent client; every assertion is on what the agent receives over HTTP.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest
from pydantic import BaseModel

from agent_socket import (
    AgentClient,
    App,
    BadInputError,
    Call,
    Deferred,
    HandlerError,
    Reply,
    Session,
    ToolError,
)
from agent_socket.agent import AppError, NotFoundError, ResultTooLargeError
from tests.e2e.test_sdk_support import FAST

pytestmark = pytest.mark.timeout(60)


class Order(BaseModel):
    item: str
    qty: int = 1


def build_app() -> App:
    app = App("sdk-tools", description="Every kind of tool.")
    gate = {"event": asyncio.Event()}
    app.gate = gate  # type: ignore[attr-defined]

    @app.tool("/add")
    async def add(a: int, b: int = 0) -> dict[str, int]:
        """Add two integers."""
        return {"sum": a + b}

    @app.tool("/order", method="PUT")
    def order(body: Order) -> Order:
        """Place an order."""
        return body

    @app.tool("/thread", method="GET")
    def thread() -> dict[str, Any]:
        return {"thread": threading.current_thread().name}

    @app.tool("/raw", method="PATCH")
    def raw(call: Call) -> dict[str, Any]:
        return {
            "method": call.method,
            "path": call.path,
            "body": call.body,
            "headers": dict(call.headers),
        }

    @app.tool("/delete", method="DELETE")
    async def delete() -> None:
        return None

    @app.tool("/created")
    async def created() -> Reply:
        return Reply({"id": 7}, status=201)

    @app.tool("/csv", method="GET")
    async def csv() -> Reply:
        return Reply.text("a,b\n1,2\n", "text/csv; charset=utf-8")

    @app.tool("/html", method="GET")
    async def html() -> Reply:
        return Reply("<script>alert(1)</script>", headers={"Content-Type": "text/html"})

    @app.tool("/string", method="GET")
    async def string() -> str:
        return "just a string"

    @app.tool("/app-error")
    async def app_error(kind: str = "conflict") -> None:
        if kind == "soft":
            raise ToolError("soft failure", code="soft", status=200)
        raise ToolError("sold out", code="no_stock", status=409, details={"left": 0})

    @app.tool("/boom")
    def boom() -> None:
        raise RuntimeError("the database is on fire")

    @app.tool("/not-json")
    async def not_json() -> float:
        return float("nan")

    @app.tool("/slow-sync")
    def slow_sync(seconds: float = 0.3) -> dict[str, float]:
        time.sleep(seconds)
        return {"slept": seconds}

    @app.tool("/slow-async")
    async def slow_async(seconds: float = 0.3) -> dict[str, float]:
        await asyncio.sleep(seconds)
        return {"slept": seconds}

    @app.tool("/render", long_running=True)
    async def render(frames: int = 2, fail: bool = False) -> dict[str, int]:
        """Render frames (long-running)."""
        await asyncio.sleep(0.2)
        if fail:
            raise RuntimeError("renderer crashed")
        return {"frames": frames}

    @app.tool("/render-sync", long_running=True)
    def render_sync(fail: bool = False) -> dict[str, bool]:
        time.sleep(0.1)
        if fail:
            raise ToolError("bad scene", code="bad_scene", status=422)
        return {"done": True}

    @app.tool("/maybe-later")
    async def maybe_later(later: bool = True) -> Any:
        if not later:
            return {"now": True}

        async def work() -> Reply:
            await asyncio.sleep(0.2)
            return Reply.text("finished", "text/plain")

        return Deferred(work())

    @app.tool("/instant-task", long_running=True)
    async def instant_task() -> int:
        return 1

    @app.tool("/huge-task", long_running=True)
    async def huge_task() -> str:
        return "x" * 70_000

    return app


@pytest.fixture(scope="module")
async def served(relay: Any) -> AsyncIterator[tuple[App, Session, str]]:
    app = build_app()
    async with app.connect(relay.http, **FAST) as session:
        link = await session.mint_link("tests")
        yield app, session, link.url


@pytest.fixture
async def agent(served: tuple[App, Session, str]) -> AsyncIterator[AgentClient]:
    async with AgentClient(served[2], poll_interval=0.05, poll_max=0.2) as client:
        yield client


async def test_tools_json_lists_derived_tools(agent: AgentClient) -> None:
    doc = await agent.tools_json()
    assert doc["app"] == {
        "id": "sdk-tools",
        "name": "sdk-tools",
        "description": "Every kind of tool.",
    }
    tools = {(t["method"], t["path"]): t for t in doc["tools"]}
    add = tools[("POST", "/add")]
    assert add["description"] == "Add two integers."
    assert add["input_schema"]["required"] == ["a"]
    assert add["input_schema"]["properties"]["b"] == {"type": "integer", "default": 0}
    assert tools[("PUT", "/order")]["input_schema"]["required"] == ["item"]
    assert "input_schema" not in tools[("GET", "/thread")]  # no input, no schema
    assert "input_schema" not in tools[("PATCH", "/raw")]  # a Call parameter is not input
    md = await agent.agents_md()
    assert md.startswith("<!-- as:contract-v1 -->")
    assert "`POST $BASE/add` — Add two integers." in md


async def test_valid_input_reaches_the_handler(agent: AgentClient) -> None:
    assert await agent.call("/add", {"a": 2, "b": 3}) == {"sum": 5}
    assert await agent.call("/add", {"a": "4"}) == {"sum": 4}  # lax coercion, like FastAPI
    assert await agent.call("/order", {"item": "tea"}) == {"item": "tea", "qty": 1}


@pytest.mark.parametrize(
    ("path", "body", "loc"),
    [
        ("/add", {"b": 1}, ["a"]),
        ("/add", {"a": "four"}, ["a"]),
        ("/add", {"a": 1, "c": 2}, ["c"]),
        ("/order", {"item": "tea", "qty": "lots"}, ["qty"]),
    ],
)
async def test_invalid_input_is_400_bad_input(
    agent: AgentClient, path: str, body: Any, loc: list[str]
) -> None:
    with pytest.raises(BadInputError) as caught:
        await agent.call(path, body)
    error = caught.value
    assert error.status == 400 and error.code == "bad_input"
    assert error.message.startswith("invalid input")
    assert [item["loc"] for item in error.details] == [loc]


async def test_body_that_is_not_json_or_not_an_object(agent: AgentClient) -> None:
    with pytest.raises(BadInputError, match="not valid JSON"):
        await agent.call("/add", raw="{oops", headers={"content-type": "application/json"})
    with pytest.raises(BadInputError, match="JSON object"):
        await agent.call("/add", [1, 2])


async def test_reply_forms(agent: AgentClient) -> None:
    response = await agent.request("/created")
    assert (response.status, response.body) == (201, {"id": 7})
    response = await agent.request("/csv")
    assert response.status == 200
    assert response.content_type.startswith("text/csv")
    assert response.text == "a,b\n1,2\n"
    response = await agent.request("/html")
    assert response.content_type.startswith("text/plain")  # the relay defuses markup
    assert response.headers["content-security-policy"] == "sandbox; default-src 'none'"
    response = await agent.request("/string")
    assert response.content_type.startswith("application/json")
    assert response.body == "just a string"
    response = await agent.request("/delete")
    assert (response.status, response.text) == (200, "null")


async def test_any_http_method_and_the_raw_call(agent: AgentClient) -> None:
    body = await agent.call(
        "/raw", raw="free text", headers={"x-trace": "t1", "content-type": "text/plain"}
    )
    assert body == {
        "method": "PATCH",
        "path": "/raw",
        "body": "free text",
        "headers": {"content-type": "text/plain", "x-trace": "t1"},
    }
    with pytest.raises(NotFoundError):
        await agent.call("/raw", method="POST")  # the relay routes on method + path


async def test_tool_errors_and_exceptions(agent: AgentClient) -> None:
    with pytest.raises(AppError) as caught:
        await agent.call("/app-error")
    assert (caught.value.status, caught.value.code) == (409, "no_stock")
    assert caught.value.details == {"left": 0}
    # A 2xx ToolError is the app's answer: returned, not raised.
    assert await agent.call("/app-error", {"kind": "soft"}) == {
        "error": {"code": "soft", "message": "soft failure"}
    }
    with pytest.raises(HandlerError) as boom:
        await agent.call("/boom")
    assert boom.value.status == 500
    assert boom.value.message == "the database is on fire"
    assert "Traceback" not in str(boom.value.body)
    with pytest.raises(HandlerError, match="not valid JSON"):
        await agent.call("/not-json")


async def test_sync_handlers_run_in_threads_async_on_the_loop(agent: AgentClient) -> None:
    body = await agent.call("/thread")
    assert body["thread"].startswith("agent-socket-tool")
    assert body["thread"] != threading.current_thread().name


@pytest.mark.parametrize("path", ["/slow-async", "/slow-sync"])
async def test_100_concurrent_calls_run_concurrently(agent: AgentClient, path: str) -> None:
    started = time.monotonic()
    results = await asyncio.gather(*(agent.call(path, {"seconds": 0.5}) for _ in range(100)))
    elapsed = time.monotonic() - started
    assert results == [{"slept": 0.5}] * 100
    # Serially this would take 50 s; concurrently a little over 0.5 s.
    assert elapsed < 2.9, elapsed


async def test_long_running_tool_answers_202_then_completes(agent: AgentClient) -> None:
    started = await agent.request("/render", {"frames": 3}, wait=False)
    assert started.status == 202
    task_id = started.task_id
    assert task_id is not None
    pending = await agent.task(task_id)
    assert pending.status == 202 and pending.body == {"taskId": task_id, "completed": False}
    done = await agent.wait_task(task_id)
    assert (done.status, done.body) == (200, {"frames": 3})
    # The follow-up is automatic with call():
    assert await agent.call("/render-sync") == {"done": True}


async def test_failing_tasks_complete_with_their_error(agent: AgentClient) -> None:
    with pytest.raises(HandlerError, match="renderer crashed"):
        await agent.call("/render", {"fail": True})
    with pytest.raises(AppError) as caught:
        await agent.call("/render-sync", {"fail": True})
    assert (caught.value.status, caught.value.code) == (422, "bad_scene")
    # Input is validated before the task starts: no 202 for bad input.
    with pytest.raises(BadInputError):
        await agent.request("/render", {"frames": "many"}, wait=False)


async def test_deferred_result(agent: AgentClient) -> None:
    assert await agent.call("/maybe-later", {"later": False}) == {"now": True}
    response = await agent.request("/maybe-later")
    assert (response.status, response.text) == (200, "finished")
    assert response.content_type.startswith("text/plain")


async def test_task_result_over_64_kib_is_reported_not_lost(agent: AgentClient) -> None:
    with pytest.raises(ResultTooLargeError):
        await agent.call("/huge-task")


async def test_plain_http_client_sees_the_same(served: tuple[App, Session, str]) -> None:
    base = served[2].removesuffix("/agents.md")
    async with httpx2.AsyncClient() as http:
        response = await http.post(f"{base}/add", content=b'{"a": "x"}')
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_input"
    assert response.json()["error"]["details"][0]["loc"] == ["a"]


async def test_task_completing_at_once_is_not_lost(served: tuple[App, Session, str]) -> None:
    """``task_complete`` right behind its ``202`` reply must complete the task (§2.4).

    The SDK sends the 202 ``tool_reply`` and then, on the same socket, the ``task_complete``; a
    relay that records the task only when the agent's HTTP handler resumes drops the completion
    and the agent polls ``202`` forever.
    """
    async with AgentClient(served[2], poll_interval=0.05, task_timeout=3) as agent:
        results = await asyncio.gather(
            *(agent.call("/instant-task") for _ in range(20)), return_exceptions=True
        )
    lost = [item for item in results if item != 1]
    assert not lost, f"{len(lost)} of 20 results lost: {lost[0]!r}"
