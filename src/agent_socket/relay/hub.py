"""Where sessions live on this node, and the bounds on how many it keeps — PROTOCOL.md §4.

The hub creates sessions (fresh ids, the per-node caps), finds them for agents and resumes,
counts the ``?session=`` sockets waiting on each session, and forgets sessions when they end.
Held sessions are the first to go when a cap is reached, longest away first.

In cluster mode the hub also tells the :class:`Cluster` about every transition, so the durable
part of each session is mirrored where every node can read it (``relay/cluster.py``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol

from agent_socket.protocol import ids
from agent_socket.protocol.frames import Registration
from agent_socket.protocol.limits import Limits
from agent_socket.relay.events import event
from agent_socket.relay.session import AppLink, Session, State

if TYPE_CHECKING:
    from agent_socket.relay.agent_http import Call
    from agent_socket.relay.durable import Snapshot
    from agent_socket.relay.replies import Response


class Cluster(Protocol):
    """What the hub and the handlers need from cluster mode (implemented in cluster.py)."""

    def attached(self, session: Session) -> Awaitable[None]: ...
    def held(self, session: Session) -> None: ...
    def ended(self, session: Session) -> None: ...
    def released(self, session: Session) -> None: ...
    def task_changed(self, session: Session, task_id: str) -> None: ...
    def save(self, session: Session) -> Awaitable[None]: ...
    def route(self, session_id: str, call: Call) -> Awaitable[Response]: ...
    def load(self, session_id: str) -> Awaitable[Snapshot | None]:
        """The session's durable state; raises :class:`ClusterUnavailable`."""

    def status(self) -> str: ...
    def take_over(
        self, session_id: str, proves: Callable[[bytes], bool], secret: str
    ) -> Awaitable[Session | None]: ...
    def end_elsewhere(
        self, session_id: str, proves: Callable[[bytes], bool]
    ) -> Awaitable[bool]: ...


class ClusterUnavailable(Exception):
    """The cluster's storage cannot be reached: answer 'try again', never a wrong 'no'."""


class RelayFull(Exception):
    """Every session slot holds a live app: a new registration is refused."""


class Hub:
    def __init__(self, limits: Limits, max_sessions: int, max_held_bytes: int) -> None:
        self.limits = limits
        self.max_sessions = max_sessions
        self.max_held_bytes = max_held_bytes
        self.sessions: dict[str, Session] = {}
        self.waiting: Counter[str] = Counter()
        #: Set by cluster mode; None on the embedded single process.
        self.cluster: Cluster | None = None

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
        session = Session(
            session_id,
            registration,
            ids.digest(secret),
            link,
            self.limits,
            self,
            ids.seal_key(secret),
        )
        self.sessions[session_id] = session
        event("session_registered", session=session_id, app=registration.app_id)
        return session, secret

    def adopt(self, session: Session) -> None:
        """Keep a session restored from the cluster's durable state (a resume from elsewhere)."""
        self.sessions[session.id] = session

    async def attached(self, session: Session) -> None:
        """An app socket is live for this session here (after register or resume)."""
        if self.cluster is not None:
            await self.cluster.attached(session)

    async def persist(self, session: Session) -> None:
        """Write the session's durable part before answering a frame that changed it."""
        if self.cluster is not None:
            await self.cluster.save(session)

    def task_changed(self, session: Session, task_id: str) -> None:
        if self.cluster is not None:
            self.cluster.task_changed(session, task_id)

    def release(self, session: Session, code: int, reason: str) -> None:
        """Drop the in-process object, keep the session (taken over elsewhere, or evicted)."""
        session.release(code, reason)
        if self.sessions.get(session.id) is session:
            del self.sessions[session.id]
        if self.cluster is not None:
            self.cluster.released(session)

    def held(self, session: Session) -> None:
        """A session became held: enforce the held-bytes cap."""
        event("session_held", session=session.id, held_until=session.held_until)
        if self.cluster is not None:
            self.cluster.held(session)
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
        if self.cluster is not None:
            self.cluster.ended(session)

    def close_all(self, code: int, reason: str) -> None:
        """Close every app socket (shutdown); sessions are held, not ended."""
        for session in list(self.sessions.values()):
            session.drop(code, reason)
