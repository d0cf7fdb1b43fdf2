"""The durable part of a session, as cluster mode stores it — DESIGN.md "Scaling out".

What survives the process that holds an app's socket: the registration, token check values with
their labels (verifiers sealed with a key derived from the resume secret, so storage never holds
a usable token), the resume check value, the hold state, and each async task. Pure functions:
bytes in, objects out.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import orjson

from agent_socket.protocol import ids
from agent_socket.protocol.frames import Registration, parse_tools
from agent_socket.relay.replies import Response
from agent_socket.relay.session import Session, Task, TokenRecord, now_ms


def encode_session(session: Session, node: str) -> bytes:
    registration = session.registration
    tokens = []
    for check_value, record in session.tokens.items():
        verifier = record.token[len(ids.TOKEN_PREFIX) + 9 :]
        tokens.append(
            {
                "d": check_value.hex(),
                "s": ids.seal_verifier(verifier, session.seal_key),
                "l": record.label,
                "m": record.minted_at,
            }
        )
    return orjson.dumps(
        {
            "v": 1,
            "app": {
                "appId": registration.app_id,
                "agentsMd": registration.agents_md,
                "appDescription": registration.app_description,
                "tools": [tool.as_json() for tool in registration.tools],
            },
            "secret": session.secret_check.hex(),
            "tokens": tokens,
            "state": session.state.value,
            "awaySince": session.away_since,
            "heldUntil": session.held_until,
            "lastFrameAt": session.last_frame_at,
            "node": node,
        }
    )


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A session as read back from durable storage by any node."""

    session_id: str
    registration: Registration
    secret_check: bytes
    tokens: dict[bytes, dict[str, Any]]
    state: str
    away_since: int | None
    held_until: int | None
    last_frame_at: int

    def accepts(self, verifier: str) -> bool:
        return ids.digest(verifier) in self.tokens

    def away_for_ms(self) -> int:
        since = self.away_since if self.away_since is not None else self.last_frame_at
        return max(0, now_ms() - since)

    def open_tokens(self, key: bytes) -> dict[bytes, TokenRecord]:
        """The token records in clear, given the key derived from the presented resume secret."""
        out: dict[bytes, TokenRecord] = {}
        for check_value, entry in self.tokens.items():
            verifier = ids.open_verifier(entry["s"], check_value, key)
            if verifier is not None:
                token = ids.make_token(self.session_id, verifier)
                out[check_value] = TokenRecord(token, entry["l"], entry["m"])
        return out

    def debug_state(self) -> dict[str, Any]:
        return {
            "session": True,
            "appConnected": False,
            "lastFrameAt": self.last_frame_at,
            "heldUntil": self.held_until,
            "tokens": len(self.tokens),
            "tasks": None,
        }


def decode_session(session_id: str, raw: bytes) -> Snapshot:
    data = orjson.loads(raw)
    app = data["app"]
    registration = Registration.build(
        app["appId"], app["agentsMd"], app["appDescription"], parse_tools(app["tools"])
    )
    return Snapshot(
        session_id=session_id,
        registration=registration,
        secret_check=bytes.fromhex(data["secret"]),
        tokens={bytes.fromhex(t["d"]): t for t in data["tokens"]},
        state=data["state"],
        away_since=data["awaySince"],
        held_until=data["heldUntil"],
        last_frame_at=data["lastFrameAt"],
    )


def encode_response(response: Response) -> bytes:
    head = {
        "st": response.status,
        "ct": response.content_type,
        "sb": response.sandboxed,
        "x": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in response.extra_headers],
    }
    return orjson.dumps(head) + b"\n" + response.body


def decode_response(raw: bytes) -> Response:
    head_raw, _, body = raw.partition(b"\n")
    head = orjson.loads(head_raw)
    extra = tuple((k.encode("latin-1"), v.encode("latin-1")) for k, v in head["x"])
    return Response(head["st"], head["ct"], body, head["sb"], extra)


def encode_task(task: Task) -> bytes:
    if task.result is None:
        return b'{"done":false}'
    return orjson.dumps(
        {"done": True, "r": base64.b64encode(encode_response(task.result)).decode("ascii")}
    )


def decode_task(raw: bytes) -> Task:
    data = orjson.loads(raw)
    if not data.get("done"):
        return Task()
    return Task(decode_response(base64.b64decode(data["r"])))
