"""Identifiers and credentials — PROTOCOL.md §1.

Patterns end in ``\\Z``, not ``$``: in Python ``$`` also matches before a trailing newline.

Session ids are public (they route); verifiers and resume secrets are credentials. The relay
keeps only SHA-256 digests of credentials and compares digests in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

SESSION_ID_RE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{8}\Z")
TOKEN_RE = re.compile(r"^as_([0-9A-HJKMNP-TV-Z]{8})_([A-Za-z0-9_-]{22})\Z")
SECRET_RE = re.compile(r"^[A-Za-z0-9_-]{43}\Z")
APP_ID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}\Z")
TASK_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}\Z")
TOOL_PATH_RE = re.compile(r"^/[a-zA-Z0-9_\-/.]+\Z")

TOKEN_PREFIX = "as_"


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def new_session_id() -> str:
    """8 Crockford base32 characters carrying 40 random bits."""
    bits = secrets.randbits(40)
    return "".join(CROCKFORD[(bits >> shift) & 31] for shift in range(35, -1, -5))


def new_verifier() -> str:
    """16 random bytes, base64url without padding (22 chars)."""
    return _b64url(secrets.token_bytes(16))


def new_resume_secret() -> str:
    """32 random bytes, base64url without padding (43 chars)."""
    return _b64url(secrets.token_bytes(32))


def make_token(session_id: str, verifier: str) -> str:
    return f"{TOKEN_PREFIX}{session_id}_{verifier}"


def parse_token(token: str) -> tuple[str, str] | None:
    """Split a token into (session id, verifier) by position, or None when malformed.

    The verifier may itself contain ``_``, so the token is never split on ``_``.
    """
    match = TOKEN_RE.match(token)
    if match is None:
        return None
    return match.group(1), match.group(2)


def digest(credential: str) -> bytes:
    """The check value stored in place of a verifier or secret."""
    return hashlib.sha256(credential.encode("utf-8")).digest()


def matches(credential: object, check_value: bytes) -> bool:
    """Constant-time comparison of a presented credential against its stored check value."""
    if not isinstance(credential, str):
        return False
    return hmac.compare_digest(digest(credential), check_value)


def seal_key(secret: str) -> bytes:
    """A key derived from the resume secret: only an app that presents the secret can open what
    the relay sealed with it (used for token verifiers in durable storage)."""
    return hashlib.sha256(b"agent-socket/v1 seal\x00" + secret.encode("utf-8")).digest()


def _pad(key: bytes, check_value: bytes, size: int) -> bytes:
    return hmac.new(key, check_value, hashlib.sha256).digest()[:size]


def seal_verifier(verifier: str, key: bytes) -> str:
    """The verifier encrypted under ``key`` (a one-time pad bound to the verifier's digest)."""
    raw = base64.urlsafe_b64decode(verifier + "==")
    pad = _pad(key, digest(verifier), len(raw))
    return _b64url(bytes(a ^ b for a, b in zip(raw, pad, strict=True)))


def open_verifier(sealed: str, check_value: bytes, key: bytes) -> str | None:
    """The verifier back from :func:`seal_verifier`, or None when the key is not the right one."""
    raw = base64.urlsafe_b64decode(sealed + "==")
    pad = _pad(key, check_value, len(raw))
    verifier = _b64url(bytes(a ^ b for a, b in zip(raw, pad, strict=True)))
    return verifier if hmac.compare_digest(digest(verifier), check_value) else None


def redact(token: str) -> str:
    """What logs show of a token: the public session id, never the verifier."""
    parsed = parse_token(token)
    if parsed is None:
        return "as_…"
    return f"{TOKEN_PREFIX}{parsed[0]}_…"
