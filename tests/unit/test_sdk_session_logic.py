"""The connection state machine's pure parts: transitions, decisions after a close, URLs."""

from __future__ import annotations

import pytest

from agent_socket.client.session import (
    TRANSITIONS,
    Link,
    Next,
    SessionChange,
    State,
    _token_of,
    after_close,
    parse_resume_state,
    split_url,
)


def test_closed_is_final_and_registered_only_via_connecting_or_reconnecting() -> None:
    assert TRANSITIONS[State.CLOSED] == frozenset()
    for state, targets in TRANSITIONS.items():
        assert State.CONNECTING not in targets  # never back to the first connect
        if state is not State.CLOSED:
            assert State.CLOSED in targets  # close() is always possible
    assert State.REGISTERED in TRANSITIONS[State.RECONNECTING]


@pytest.mark.parametrize(
    ("code", "has_session", "expected"),
    [
        (4401, True, Next.FRESH),  # resume refused
        (4410, True, Next.FRESH),  # replaced by another socket
        (4001, True, Next.FAIL),
        (4400, True, Next.FAIL),
        (4413, True, Next.FAIL),
        (1011, True, Next.RESUME),  # network loss / debug kill
        (4408, True, Next.RESUME),  # heartbeat timeout: the session is held
        (1000, True, Next.RESUME),  # relay ended it: the resume is refused, then fresh
        (None, True, Next.RESUME),  # no close frame at all
        (1006, False, Next.FRESH),  # never registered: nothing to resume
    ],
)
def test_after_close(code: int | None, has_session: bool, expected: Next) -> None:
    assert after_close(code, has_session=has_session) is expected


@pytest.mark.parametrize(
    ("url", "ws", "base"),
    [
        ("http://127.0.0.1:8787", "ws://127.0.0.1:8787/v1/_ws", "http://127.0.0.1:8787"),
        ("https://relay.example/", "wss://relay.example/v1/_ws", "https://relay.example"),
        ("ws://h:1/v1/_ws", "ws://h:1/v1/_ws", "http://h:1"),
        ("wss://h/prefix/v1/_ws", "wss://h/prefix/v1/_ws", "https://h/prefix"),
        ("https://h/prefix", "wss://h/prefix/v1/_ws", "https://h/prefix"),
    ],
)
def test_split_url(url: str, ws: str, base: str) -> None:
    assert split_url(url) == (ws, base)


@pytest.mark.parametrize("bad", ["127.0.0.1:8787", "ftp://x", "http://"])
def test_split_url_refuses_non_relay_urls(bad: str) -> None:
    with pytest.raises(ValueError):
        split_url(bad)


def test_resume_state_round_trip() -> None:
    secret = "A" * 43
    assert parse_resume_state(f"Q7R5X2KM:{secret}") == ("Q7R5X2KM", secret)
    with pytest.raises(ValueError):
        parse_resume_state("no-separator")


def test_links_never_print_their_token() -> None:
    token = "as_Q7R5X2KM_" + "v" * 22
    link = Link(token, f"http://h/v1/t/{token}/agents.md", "me")
    assert token not in repr(link)
    assert str(link) == link.url
    assert _token_of(link) == token
    assert _token_of(link.url) == token
    change = SessionChange("OLD", "NEW", ((link, Link("t2", "http://new", "me")),))
    assert change.urls == {link.url: "http://new"}
