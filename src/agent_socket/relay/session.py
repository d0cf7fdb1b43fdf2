"""One app's session — PROTOCOL.md §3 and §4, as a state machine with no network code.

States and their invariants::

    ATTACHED  an app socket is live: ``link`` is set, ``away_since`` is None; calls are forwarded.
    HELD      the app dropped: ``link`` is None, ``pending`` is empty, ``away_since`` and
              ``held_until`` are set; links answer meta paths, calls get 503 + Retry-After.
    ENDED     terminal: tokens, tasks and pending calls are gone; every link is 503 app_offline.

    ATTACHED --drop--> HELD --resume--> ATTACHED;  ATTACHED --resume--> ATTACHED (old link 4410);
    any --end / hold expiry / protocol break--> ENDED

The session talks to its app only through :class:`AppLink` (send a text frame, close), so these
rules are unit-testable without sockets. Timers (liveness, hold expiry) live on the running
asyncio loop; they re-check their deadline when they fire, so a frame never has to reschedule one.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol

from agent_socket.protocol import ids
from agent_socket.protocol.errors import CloseCode, CloseReason, ErrorCode
from agent_socket.protocol.frames import Registration, dumps
from agent_socket.protocol.limits import Limits, cut_utf16
from agent_socket.relay import replies
from agent_socket.relay.replies import Response, StartTask


class AppLink(Protocol):
    """The session's view of its app socket."""

    async def send(self, text: str) -> None: ...

    def close(self, code: int, reason: str) -> None:
        """Close the socket (idempotent); no frame is sent after this."""


class SessionEvents(Protocol):
    """What the owner of sessions (the hub) hears about their transitions."""

    def held(self, session: Session) -> None: ...

    def ended(self, session: Session, why: str) -> None: ...


class State(Enum):
    ATTACHED = "attached"
    HELD = "held"
    ENDED = "ended"


class CallFailed(Exception):
    """A tool call could not be completed; ``code`` says why (§2.6)."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(slots=True)
class TokenRecord:
    token: str
    label: str
    minted_at: int  # epoch ms


@dataclass(slots=True)
class Task:
    """An async tool call: pending until ``task_complete`` brings its ``result``."""

    result: Response | None = None


def now_ms() -> int:
    return int(time.time() * 1000)


_call_ids = itertools.count(1)


class Session:
    # Slots: a relay holds thousands of idle sessions; this keeps each one small.
    __slots__ = (
        "_events",
        "_hold_timer",
        "_last_frame_mono",
        "_liveness",
        "_loop",
        "_registration",
        "_registration_changed",
        "away_since",
        "held_until",
        "id",
        "last_frame_at",
        "limits",
        "link",
        "pending",
        "seal_key",
        "secret_check",
        "state",
        "tasks",
        "tokens",
    )

    def __init__(
        self,
        session_id: str,
        registration: Registration,
        secret_check: bytes,
        link: AppLink | None,
        limits: Limits,
        events: SessionEvents,
        seal_key: bytes = b"",
    ) -> None:
        """A session attached to ``link``; with ``link=None``, a held session being restored
        from durable state (``attach`` follows)."""
        self.id = session_id
        self._registration_changed: asyncio.Event | None = None
        self.registration = registration
        self.secret_check = secret_check
        #: Derived from the resume secret; seals token verifiers in durable storage.
        self.seal_key = seal_key
        self.limits = limits
        self.state = State.ATTACHED if link is not None else State.HELD
        self.link: AppLink | None = link
        self.tokens: dict[bytes, TokenRecord] = {}
        self.tasks: dict[str, Task] = {}
        self.pending: dict[str, asyncio.Future[Response | StartTask]] = {}
        self.last_frame_at = now_ms()
        self.away_since: int | None = None
        self.held_until: int | None = None
        self._events = events
        self._loop = asyncio.get_running_loop()
        self._last_frame_mono = self._loop.time()
        self._liveness: asyncio.TimerHandle | None = None
        if link is not None:
            self._liveness = self._loop.call_later(self._liveness_s, self._check_liveness)
        self._hold_timer: asyncio.TimerHandle | None = None

    @property
    def registration(self) -> Registration:
        return self._registration

    @registration.setter
    def registration(self, registration: Registration) -> None:
        self._registration = registration
        changed, self._registration_changed = self._registration_changed, None
        if changed is not None:
            changed.set()

    @property
    def registration_changed(self) -> asyncio.Event:
        """Set when the registration is next replaced (update_tools, resume); MCP streams wait
        on it to send tools/list_changed. Made on first use: most sessions never need one."""
        if self._registration_changed is None:
            self._registration_changed = asyncio.Event()
        return self._registration_changed

    # ---- liveness (§3.5) -------------------------------------------------------------------

    @property
    def _liveness_s(self) -> float:
        return self.limits.heartbeat_timeout_ms / 1000

    def touch(self) -> None:
        """Any frame from the app is a sign of life."""
        self._last_frame_mono = self._loop.time()
        self.last_frame_at = now_ms()

    def _check_liveness(self) -> None:
        if self.state is not State.ATTACHED or self.link is None:
            return
        silent_for = self._loop.time() - self._last_frame_mono
        if silent_for >= self._liveness_s:
            self.drop(CloseCode.TIMEOUT, CloseReason.HEARTBEAT_TIMEOUT)
        else:
            self._liveness = self._loop.call_later(
                self._liveness_s - silent_for, self._check_liveness
            )

    # ---- tokens (§3.2) ---------------------------------------------------------------------

    def mint(self, label: Any) -> TokenRecord | None:
        """A new token, or None when the session already has its maximum of live tokens."""
        if len(self.tokens) >= self.limits.max_tokens_per_session:
            return None
        verifier = ids.new_verifier()
        text = cut_utf16(label, self.limits.max_label_chars) if isinstance(label, str) else ""
        record = TokenRecord(ids.make_token(self.id, verifier), text, now_ms())
        self.tokens[ids.digest(verifier)] = record
        return record

    def revoke(self, token: Any) -> bool:
        """Revoke a live token of this session; False when it was not live here."""
        if not isinstance(token, str):
            return False
        parsed = ids.parse_token(token)
        if parsed is None or parsed[0] != self.id:
            return False
        return self.tokens.pop(ids.digest(parsed[1]), None) is not None

    def accepts(self, verifier: str) -> bool:
        """Whether this verifier belongs to a live token (a digest lookup, no string compare)."""
        return ids.digest(verifier) in self.tokens

    # ---- tool calls (§2.3, §3.3) -----------------------------------------------------------

    @property
    def inflight_full(self) -> bool:
        return len(self.pending) >= self.limits.max_inflight_per_session

    async def call(
        self, method: str, path: str, body: str, headers: dict[str, str]
    ) -> Response | StartTask:
        """Forward one call to the app and wait for its ``tool_reply``, already interpreted.

        A reply that starts an async task is recorded the moment it arrives (before any later
        ``task_complete`` frame is read); with the task table full the answer is 503
        ``too_many_tasks``. Raises :class:`CallFailed` with ``tool_timeout`` after the sync
        timeout (a late reply is then dropped) or ``app_offline`` when the app socket drops or
        the session ends first.
        """
        link = self.link
        if link is None:
            raise CallFailed(ErrorCode.APP_OFFLINE, "the app is not connected")
        call_id = f"{self.id}-{next(_call_ids)}"
        future: asyncio.Future[Response | StartTask] = self._loop.create_future()
        self.pending[call_id] = future
        # A plain timer instead of asyncio.wait_for: half the cost on the hot path.
        timer = self._loop.call_later(self.limits.max_sync_tool_ms / 1000, self._expire, future)
        frame = {
            "type": "tool_call",
            "id": call_id,
            "method": method,
            "path": path,
            "body": body,
            "headers": headers,
        }
        try:
            await link.send(dumps(frame))
            return await future
        except (ConnectionError, RuntimeError, OSError):
            raise CallFailed(ErrorCode.APP_OFFLINE, "the app's connection dropped") from None
        finally:
            timer.cancel()
            self.pending.pop(call_id, None)

    def _expire(self, future: asyncio.Future[Response | StartTask]) -> None:
        if not future.done():
            future.set_exception(
                CallFailed(
                    ErrorCode.TOOL_TIMEOUT,
                    f"the app did not answer within {self.limits.max_sync_tool_ms} ms",
                )
            )

    def on_tool_reply(self, frame: dict[str, Any]) -> None:
        call_id = frame.get("id")
        future = self.pending.pop(call_id, None) if isinstance(call_id, str) else None
        if future is None or future.done():
            return  # unknown, or too late: dropped (§3.3)
        outcome = replies.interpret(frame)
        if isinstance(outcome, StartTask) and not self.start_task(outcome.task_id):
            outcome = replies.error(
                ErrorCode.TOO_MANY_TASKS,
                f"the app has {self.limits.max_tasks_per_session} tasks pending",
            )
        future.set_result(outcome)

    def _fail_pending(self, message: str) -> None:
        pending, self.pending = self.pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(CallFailed(ErrorCode.APP_OFFLINE, message))

    # ---- tasks (§2.4) ----------------------------------------------------------------------

    def start_task(self, task_id: str) -> bool:
        """Record a pending task; False when the task table is full (a reused id overwrites)."""
        if task_id not in self.tasks and len(self.tasks) >= self.limits.max_tasks_per_session:
            return False
        self.tasks[task_id] = Task()
        return True

    def complete_task(self, task_id: str, result: Response) -> None:
        task = self.tasks.get(task_id)
        if task is not None:
            task.result = result

    def take_task(self, task_id: str) -> Task | None:
        """The task, removed once its result has been handed out (answered once, §2.4)."""
        task = self.tasks.get(task_id)
        if task is not None and task.result is not None:
            del self.tasks[task_id]
        return task

    # ---- lifecycle (§4) --------------------------------------------------------------------

    def drop(self, code: int, reason: str) -> None:
        """The app socket is gone (or we close it): hold the session, fail calls in flight."""
        if self.state is not State.ATTACHED:
            return
        link, self.link = self.link, None
        if link is not None:
            link.close(code, reason)
        self._fail_pending("the app's connection dropped during the call")
        self._cancel_timers()
        if self.limits.resume_grace_ms <= 0:
            self.end("hold window is 0")
            return
        self.hold(self.limits.resume_grace_ms)
        self._events.held(self)

    def hold(self, hold_ms: int) -> None:
        """Keep the session for ``hold_ms`` without an app (the state after a drop)."""
        self.state = State.HELD
        now = now_ms()
        if self.away_since is None:
            self.away_since = now
        self.held_until = now + hold_ms
        if self._hold_timer is not None:
            self._hold_timer.cancel()
        self._hold_timer = self._loop.call_later(hold_ms / 1000, self._check_hold)

    def _check_hold(self) -> None:
        if self.state is State.HELD:
            self.end("hold window expired")

    def attach(self, link: AppLink, registration: Registration) -> None:
        """A successful resume: the new link replaces any attached one (closed 4410)."""
        old = self.link
        self.link = link
        if old is not None:
            self._fail_pending("the app was replaced by a resumed connection")
            old.close(CloseCode.REPLACED, CloseReason.REPLACED)
        self.registration = registration
        self.state = State.ATTACHED
        self.away_since = None
        self.held_until = None
        self.touch()
        self._cancel_timers()
        self._liveness = self._loop.call_later(self._liveness_s, self._check_liveness)

    def end(
        self,
        why: str,
        code: int = CloseCode.NORMAL,
        reason: str = CloseReason.SESSION_ENDED,
    ) -> None:
        """End the session for good: everything is dropped and every link answers 503.

        An attached app socket is closed with ``code`` (1000 unless the end is a protocol break).
        """
        if self.state is State.ENDED:
            return
        self.state = State.ENDED
        link, self.link = self.link, None
        if link is not None:
            link.close(code, reason)
        self._fail_pending("the session ended")
        self.tokens.clear()
        self.tasks.clear()
        self._cancel_timers()
        self._events.ended(self, why)

    def release(self, code: int, reason: str) -> None:
        """Let go of this in-process object without ending the session (its durable state lives
        on): another relay node takes the session over, or a debug eviction simulates a restart.
        """
        if self.state is State.ENDED:
            return
        link, self.link = self.link, None
        if link is not None:
            link.close(code, reason)
        self._fail_pending("the app's connection moved")
        self._cancel_timers()
        self.state = State.ENDED  # this object is spent; the session itself is not

    def _cancel_timers(self) -> None:
        if self._liveness is not None:
            self._liveness.cancel()
            self._liveness = None
        if self._hold_timer is not None:
            self._hold_timer.cancel()
            self._hold_timer = None

    def away_for_ms(self) -> int:
        return 0 if self.away_since is None else now_ms() - self.away_since

    def debug_state(self) -> dict[str, Any]:
        return {
            "session": self.state is not State.ENDED,
            "appConnected": self.state is State.ATTACHED,
            "lastFrameAt": self.last_frame_at,
            "heldUntil": self.held_until,
            "tokens": len(self.tokens),
            "tasks": len(self.tasks),
        }
