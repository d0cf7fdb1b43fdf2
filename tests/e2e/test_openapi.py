"""``$BASE/openapi.json``: an OpenAPI 3.1 document of a live link (issue 9).

The document is checked against the OpenAPI 3.1 schema (``openapi-spec-validator``), read for
what a GPT Action needs (the link as server URL, one operation per tool, bodies, error shapes),
and then ``schemathesis`` — a client we did not write — runs against the live link and must find
no server error and no response that breaks the document.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from openapi_spec_validator import validate

from agent_socket import App, Session, ToolError
from tests.e2e.test_sdk_support import FAST, counter_app
from tests.e2e.wire import registered_app

pytestmark = pytest.mark.timeout(60)

CHECKS = ",".join(
    (
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
    )
)


def build_app() -> App:
    app = counter_app("openapi-counter", "A counter for OpenAPI clients.")

    @app.tool("/items/sell", method="PUT")
    async def sell(item: str, qty: int = 1) -> dict[str, str]:
        """Sell an item (always sold out)."""
        raise ToolError(f"{item} is sold out", code="no_stock", status=409)

    @app.tool("/render", long_running=True)
    async def render(frames: int = 1) -> dict[str, int]:
        """Render frames (long-running)."""
        await asyncio.sleep(0.05)
        return {"frames": frames}

    return app


@pytest.fixture(scope="module")
async def served(relay: Any) -> AsyncIterator[tuple[App, Session, str]]:
    app = build_app()
    async with app.connect(relay.http, **FAST) as session:
        link = await session.mint_link("openapi")
        yield app, session, link.url.removesuffix("/agents.md")


@pytest.fixture
def base(served: tuple[App, Session, str]) -> str:
    return served[2]


async def fetch(base: str, method: str = "GET") -> httpx2.Response:
    async with httpx2.AsyncClient(timeout=10) as http:
        return await http.request(method, f"{base}/openapi.json")


async def test_document_validates_against_openapi_3_1(base: str) -> None:
    response = await fetch(base)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["cache-control"] == "no-store"
    doc = response.json()
    assert doc["openapi"].startswith("3.1.")
    validate(doc)  # raises on any violation of the OpenAPI 3.1 schema


async def test_document_describes_the_link(base: str) -> None:
    doc = (await fetch(base)).json()
    assert doc["servers"][0]["url"] == base
    assert doc["info"]["title"] == "openapi-counter"
    assert doc["info"]["description"].startswith("A counter for OpenAPI clients.")
    ops = {(path, verb): op for path, item in doc["paths"].items() for verb, op in item.items()}
    assert set(ops) == {
        ("/increment", "post"),
        ("/count", "get"),
        ("/items/sell", "put"),
        ("/render", "post"),
        ("/_as_tasks/{taskId}", "get"),
    }
    assert ops[("/increment", "post")]["operationId"] == "increment"
    assert ops[("/items/sell", "put")]["operationId"] == "items_sell"
    body = ops[("/increment", "post")]["requestBody"]["content"]["application/json"]["schema"]
    assert body["properties"]["by"]["type"] == "integer"
    assert ops[("/items/sell", "put")]["requestBody"]["required"] is True
    assert "requestBody" not in ops[("/count", "get")]
    responses = ops[("/increment", "post")]["responses"]
    assert {"200", "202", "401", "404", "429", "503", "504", "default"} <= set(responses)
    error = doc["components"]["schemas"]["Error"]
    assert error["required"] == ["error"]
    assert error["properties"]["error"]["required"] == ["code", "message"]


async def test_any_method_gets_the_document_and_a_tool_there_wins(relay: Any) -> None:
    tools = [
        {"method": "GET", "path": "/openapi.json", "description": "The app's own"},
        {"method": "FROB", "path": "/frob", "description": "Not expressible in OpenAPI"},
        {"method": "POST", "path": "/a.b", "description": "x"},
        {"method": "POST", "path": "/a_b", "description": "y"},
        {"method": "GET", "path": "/a_b", "description": "z"},
    ]
    async with registered_app(relay, tools=tools) as app:
        base = await app.mint()
        own = await fetch(base)
        assert own.json()["echo"]["path"] == "/openapi.json"  # the app's tool
        doc = (await fetch(base, "POST")).json()  # no tool at POST: the document
        validate(doc)
        ids = [op["operationId"] for item in doc["paths"].values() for op in item.values()]
        assert len(ids) == len(set(ids))
        assert "/frob" not in doc["paths"]
        assert "FROB /frob" in doc["info"]["description"]
        assert doc["paths"]["/a.b"]["post"]["operationId"] == "a_b"
        assert doc["paths"]["/a_b"]["post"]["operationId"] == "post_a_b"
        assert doc["paths"]["/a_b"]["get"]["operationId"] == "get_a_b"


async def test_revoked_link_has_no_document(relay: Any) -> None:
    async with registered_app(relay) as app:
        base = await app.mint()
        token = base.rsplit("/", 1)[1]
        assert (await app.request("revoke_agent_token", token=token))["ok"]
        response = await fetch(base)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "token_invalid"


async def test_schemathesis_finds_nothing(base: str, tmp_path: Path) -> None:
    st = Path(sys.executable).with_name("st")
    proc = await asyncio.create_subprocess_exec(
        str(st), "run", f"{base}/openapi.json",
        "--checks", CHECKS,
        "--phases", "examples,coverage,fuzzing",
        "--max-examples", "25",
        "--seed", "20250609",
        "--workers", "1",
        "--request-timeout", "10",
        "--generation-database", "none",
        "--no-color",
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await asyncio.wait_for(proc.communicate(), 50)
    text = output.decode("utf-8", "replace")
    assert proc.returncode == 0, text
    assert "passed" in text.lower(), text
