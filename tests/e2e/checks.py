"""Assertions on what agents receive, shared by the end-to-end suites (PROTOCOL.md §2.3, §2.6)."""

from __future__ import annotations

import json
from typing import Any

import httpx2

JSON_CT = "application/json; charset=utf-8"
PLAIN_CT = "text/plain; charset=utf-8"
SANDBOX_CSP = "sandbox; default-src 'none'"


def media(value: str | None) -> str:
    """A content-type normalised for comparison: lower case, no blanks around ``;``."""
    assert value is not None
    return ";".join(part.strip() for part in value.lower().split(";"))


def check_error(
    status: int, headers: Any, body: bytes, want_status: int, code: str
) -> dict[str, Any]:
    """The relay's error shape (§2.6) on a raw response; returns the error object."""
    assert status == want_status, (status, body[:300])
    assert media(headers.get("content-type")) == media(JSON_CT)
    assert headers.get("x-content-type-options") == "nosniff"
    doc = json.loads(body)
    assert set(doc) == {"error"}, doc
    assert set(doc["error"]) == {"code", "message"}, doc
    assert doc["error"]["code"] == code, doc
    assert isinstance(doc["error"]["message"], str)
    return dict(doc["error"])


def assert_error(resp: httpx2.Response, status: int, code: str) -> dict[str, Any]:
    """The relay's error shape (§2.6); returns the error object."""
    return check_error(resp.status_code, resp.headers, resp.content, status, code)


def assert_sandboxed(resp: httpx2.Response) -> None:
    """§2.3: every tool response carries nosniff and the sandbox CSP."""
    assert resp.headers.get("x-content-type-options") == "nosniff", dict(resp.headers)
    assert resp.headers.get("content-security-policy") == SANDBOX_CSP, dict(resp.headers)


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, as the contract counts characters (§6)."""
    return len(text.encode("utf-16-le")) // 2
