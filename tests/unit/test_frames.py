"""Registration validation (PROTOCOL.md §3.1, §3.4) and the preamble rule (§2.1)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from agent_socket.protocol.errors import CloseCode, ErrorCode, ProtocolViolation
from agent_socket.protocol.frames import parse_registration, parse_update
from agent_socket.protocol.limits import Limits, cut_utf16, utf16_units
from agent_socket.protocol.preamble import CONTRACT_MARKER, served_agents_md

LIMITS = Limits()


def frame(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"type": "register", "appId": "app", "agentsMd": "# doc", "tools": []}
    base.update(fields)
    return base


def refused(**fields: Any) -> tuple[ErrorCode, int, str]:
    with pytest.raises(ProtocolViolation) as info:
        parse_registration(frame(**fields), LIMITS)
    return info.value.code, info.value.close_code, info.value.close_reason


@pytest.mark.parametrize(
    ("fields", "code", "close"),
    [
        ({"appId": "bad id"}, ErrorCode.INVALID_APP_ID, CloseCode.INVALID_APP_ID),
        ({"appId": 5}, ErrorCode.INVALID_APP_ID, CloseCode.INVALID_APP_ID),
        ({"appId": "x" * 65}, ErrorCode.INVALID_APP_ID, CloseCode.INVALID_APP_ID),
        ({"agentsMd": 5}, ErrorCode.AGENTS_MD_TOO_LARGE, CloseCode.AGENTS_MD_TOO_LARGE),
        ({"agentsMd": "a" * 65_537}, ErrorCode.AGENTS_MD_TOO_LARGE, CloseCode.AGENTS_MD_TOO_LARGE),
        ({"tools": {}}, ErrorCode.PROTOCOL_ERROR, CloseCode.INVALID_TOOLS),
        ({"tools": ["x"]}, ErrorCode.PROTOCOL_ERROR, CloseCode.INVALID_TOOLS),
        (
            {"tools": [{"path": "/a", "method": 1}]},
            ErrorCode.PROTOCOL_ERROR,
            CloseCode.INVALID_TOOLS,
        ),
        ({"tools": [{"path": "a"}]}, ErrorCode.RESERVED_PATH, CloseCode.INVALID_TOOLS),
        ({"tools": [{"path": "/a b"}]}, ErrorCode.RESERVED_PATH, CloseCode.INVALID_TOOLS),
        ({"tools": [{"path": "/Agents.MD"}]}, ErrorCode.RESERVED_PATH, CloseCode.INVALID_TOOLS),
        ({"tools": [{"path": "/tools.json/x"}]}, ErrorCode.RESERVED_PATH, CloseCode.INVALID_TOOLS),
        ({"tools": [{"path": "/_as_x"}]}, ErrorCode.RESERVED_PATH, CloseCode.INVALID_TOOLS),
        (
            {"tools": [{"path": "/a"}, {"path": "/a", "method": "post"}]},
            ErrorCode.PROTOCOL_ERROR,
            CloseCode.INVALID_TOOLS,
        ),
    ],
)
def test_each_rule_has_its_code_and_close(
    fields: dict[str, Any], code: ErrorCode, close: int
) -> None:
    got_code, got_close, _ = refused(**fields)
    assert (got_code, got_close) == (code, close)


def test_rules_apply_in_the_contract_order() -> None:
    assert refused(appId="", agentsMd=None, tools={})[0] is ErrorCode.INVALID_APP_ID
    assert refused(agentsMd=None, tools={})[0] is ErrorCode.AGENTS_MD_TOO_LARGE


def test_reserved_prefix_is_case_sensitive_for_as() -> None:
    registration = parse_registration(frame(tools=[{"path": "/_AS_x"}]), LIMITS)
    assert registration.tools[0].path == "/_AS_x"


def test_defaults_and_cuts() -> None:
    registration = parse_registration(
        frame(appDescription="😀" * 600, tools=[{"path": "/a", "method": "get"}]), LIMITS
    )
    tool = registration.tools[0]
    assert (tool.method, tool.description, tool.has_schema) == ("GET", "", False)
    assert utf16_units(registration.app_description) == 1024
    assert parse_registration(frame(appDescription=7), LIMITS).app_description == ""


def test_agents_md_counts_utf16_units() -> None:
    assert parse_registration(frame(agentsMd="😀" * 32_768), LIMITS)
    assert refused(agentsMd="😀" * 32_768 + "a")[0] is ErrorCode.AGENTS_MD_TOO_LARGE


def test_tools_json_keeps_schema_presence_and_null() -> None:
    registration = parse_registration(
        frame(
            appId="c",
            appDescription="d",
            tools=[{"path": "/a", "input_schema": None}, {"path": "/b"}],
        ),
        LIMITS,
    )
    doc = orjson.loads(registration.tools_json_body)
    assert doc["app"] == {"id": "c", "name": "c", "description": "d"}
    assert doc["tools"][0]["input_schema"] is None
    assert "input_schema" not in doc["tools"][1]


def test_update_keeps_identity_and_optional_doc() -> None:
    current = parse_registration(frame(appDescription="d"), LIMITS)
    updated = parse_update({"tools": [{"path": "/n"}]}, current, LIMITS)
    assert (updated.app_id, updated.app_description, updated.agents_md) == ("app", "d", "# doc")
    assert [t.path for t in updated.tools] == ["/n"]
    assert parse_update({"agentsMd": "new"}, current, LIMITS).agents_md == "new"


def test_preamble_only_for_documents_without_the_contract() -> None:
    assert served_agents_md("").startswith(CONTRACT_MARKER)
    assert served_agents_md("# x").endswith("\n\n---\n\n# x")
    assert served_agents_md("see tools.json") == "see tools.json"
    assert served_agents_md(f"{CONTRACT_MARKER}\nmine") == f"{CONTRACT_MARKER}\nmine"
    text = served_agents_md("")
    assert "do not recite" in text.lower() and "$BASE" in text


def test_cut_never_splits_a_surrogate_pair() -> None:
    assert cut_utf16("a😀b", 2) == "a"
    assert cut_utf16("a😀b", 3) == "a😀"
