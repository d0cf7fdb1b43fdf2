"""Tool reply → HTTP response rules (PROTOCOL.md §2.3, §2.4)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent_socket.relay.replies import TEXT_TYPE, Response, StartTask, interpret, task_result


def reply(**fields: Any) -> Response:
    out = interpret({"type": "tool_reply", "id": "1", **fields})
    assert isinstance(out, Response)
    return out


@pytest.mark.parametrize("status", ["200", 200.0, True, 199, 600, None])
def test_bad_status_is_a_bad_gateway(status: Any) -> None:
    out = reply(status=status, body={})
    assert out.status == 502 and b"protocol_error" in out.body


def test_json_and_empty_bodies() -> None:
    assert reply(status=201, body={"a": 1}).body == b'{"a":1}'
    assert reply(status=200).body == b""
    assert reply(status=200, body=None).body == b"null"
    assert reply(status=200, body="x").body == b'"x"'


@pytest.mark.parametrize(
    "content_type",
    [
        "text/html",
        "TEXT/HTML; charset=utf-8",
        " application/xhtml+xml ",
        "image/svg+xml",
        "application/xml",
        "text/xml",
        "application/atom+xml;q=1",
    ],
)
def test_markup_is_downgraded(content_type: str) -> None:
    out = reply(status=200, body="<b>", headers={"Content-Type": content_type})
    assert (out.content_type, out.body, out.sandboxed) == (TEXT_TYPE, b"<b>", True)


@given(st.sampled_from(["\r", "\n", "\x00", "\x1f", "\x7f", "\t"]))
def test_control_characters_in_content_type_are_refused(char: str) -> None:
    assert reply(status=200, body="x", headers={"content-type": f"text/plain{char}x"}).status == 502


def test_tasks_start_only_on_202_with_a_task_id() -> None:
    assert interpret({"status": 202, "taskId": "t-1"}) == StartTask("t-1")
    assert reply(status=202, taskId="", body={}).status == 202
    assert reply(status=202, taskId=None, body={}).status == 202
    assert reply(status=202, taskId="bad id").status == 502
    assert reply(status=202, taskId=5).status == 502


def test_task_results_over_the_limits_are_dropped() -> None:
    fits = "é" * ((65_536 - 2) // 2)  # JSON string: quotes + 2 bytes per char
    assert task_result({"status": 200, "body": fits}, 65_536, 256) is not None
    assert task_result({"status": 200, "body": fits + "a"}, 65_536, 256) is None
    assert task_result({"status": 700, "body": 1}, 65_536, 256) is None
    long_type = {"content-type": "a" * 257}
    assert task_result({"status": 200, "body": "x", "headers": long_type}, 65_536, 256) is None
