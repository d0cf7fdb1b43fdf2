"""Identifiers and credentials (PROTOCOL.md §1)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from agent_socket.protocol import ids


def test_generated_ids_match_the_contract_formats() -> None:
    for _ in range(200):
        assert ids.SESSION_ID_RE.match(ids.new_session_id())
        verifier = ids.new_verifier()
        assert len(verifier) == 22
        secret = ids.new_resume_secret()
        assert ids.SECRET_RE.match(secret)
        token = ids.make_token(ids.new_session_id(), verifier)
        # PROTOCOL.md §1 says "35 chars", but its own regex and parts add up to 34.
        assert len(token) == 34
        assert ids.TOKEN_RE.match(token)


def test_session_ids_carry_40_random_bits() -> None:
    seen = {ids.new_session_id() for _ in range(2000)}
    assert len(seen) == 2000
    assert not any(set(sid) & set("ILOU") for sid in seen)


@given(
    st.text(alphabet="ABCDEFGHJKMNPQRSTVWXYZ0123456789", min_size=8, max_size=8),
    st.text(alphabet="abcXYZ019_-", min_size=22, max_size=22),
)
def test_tokens_are_parsed_by_position_even_with_underscores(sid: str, verifier: str) -> None:
    assert ids.parse_token(f"as_{sid}_{verifier}") == (sid, verifier)


def test_malformed_tokens_are_refused() -> None:
    good = "as_ABCDEFGH_" + "a" * 22
    assert ids.parse_token(good) is not None
    for bad in (
        good[:-1],
        good + "a",
        "xs" + good[2:],
        "as_ABCDEFGI_" + "a" * 22,
        "as_abcdefgh_" + "a" * 22,
        "as_ABCDEFGH_" + "a" * 21 + "=",
        "",
    ):
        assert ids.parse_token(bad) is None, bad


def test_credentials_are_checked_against_digests_only() -> None:
    secret = ids.new_resume_secret()
    check = ids.digest(secret)
    assert secret.encode() not in check
    assert ids.matches(secret, check)
    assert not ids.matches(secret[:-1] + "x", check)
    assert not ids.matches(None, check)
    assert not ids.matches(42, check)


def test_redaction_keeps_only_the_public_session_id() -> None:
    token = ids.make_token("ABCDEFGH", ids.new_verifier())
    assert ids.redact(token) == "as_ABCDEFGH_…"
    assert ids.redact("garbage") == "as_…"
