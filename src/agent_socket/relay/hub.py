"""Where sessions live on this node, and the bounds on how many it keeps — PROTOCOL.md §4.

The hub creates sessions (fresh ids, the per-node caps), finds them for agents and resumes,
counts the ``?session=`` sockets waiting on each session, and forgets sessions when they end.
Held sessions are the first to go when a cap is reached, longest away first.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from agent_socket.protocol import ids
from agent_socket.protocol.frames import Registration
from agent_socket.protocol.limits import Limits
from agent_socket.relay.events import event
from agent_socket.relay.session import AppLink, Session, State


class RelayFull(Exception):
    """Every session slot holds a live app: a new registration is refused."""


class Hub:
    def __init__(self, limits: Limits, max_sessions: int, max_held_bytes: int) -> None:
        self.limits = limits
        self.max_sessions = max_sessions
        self.max_held_bytes = max_held_bytes
        self.sessions: dict[str, Session] = {}
        self.waiting: Counter[str] = Counter()

    def get(self, session_id: str) -> Session | None:
        return self.sessions.get(session_id)

    def create(
        self, registration: Registration, link: AppLink, session_id: str | None = None
    ) -> tuple[Session, str]:
        """Register a new session; returns it with its resume secret (never stored in clear)."""
        if len(self.sessions) >= self.max_sessions:
            self._evict_held(lambda: len(self.sessions) >= self.max_sessions)
            if len(self.sessions) >= self.max_sessions:
                raise RelayFull
        if session_id is None:
            session_id = ids.new_session_id()
            while session_id in self.sessions:
                session_id = ids.new_session_id()
        secret = ids.new_resume_secret()
        session = Session(session_id, registration, ids.digest(secret), link, self.limits, self)
        self.sessions[session_id] = session
        event("session_registered", session=session_id, app=registration.app_id)
        return session, secret

    def held(self, session: Session) -> None:
        """A session became held: enforce the held-bytes cap."""
        event("session_held", session=session.id, held_until=session.held_until)
        self._evict_held(lambda: self.held_bytes() > self.max_held_bytes)

    def held_bytes(self) -> int:
        return sum(s.registration.size for s in self.sessions.values() if s.state is State.HELD)

    def _evict_held(self, over: Callable[[], bool]) -> None:
        held = sorted(
            (s for s in self.sessions.values() if s.state is State.HELD),
            key=lambda s: s.away_since or 0,
        )
        for session in held:
            if not over():
                return
            session.end("evicted: relay memory bound")

    def ended(self, session: Session, why: str) -> None:
        if self.sessions.get(session.id) is session:
            del self.sessions[session.id]
        event("session_ended", session=session.id, reason=why)

    def close_all(self, code: int, reason: str) -> None:
        """Close every app socket (shutdown); sessions are held, not ended."""
        for session in list(self.sessions.values()):
            session.drop(code, reason)
