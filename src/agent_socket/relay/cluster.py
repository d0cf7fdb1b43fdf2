"""Cluster mode: many relays on NATS, any relay answers any link — DESIGN.md "Scaling out".

Where things live:

* JetStream KV bucket (TTL = the hold window): ``s.<sid>``, the durable part of each session
  (``durable.py``), and ``t.<sid>.<taskId>``, each async task. The node holding a session writes
  through on every change and refreshes live sessions so the TTL only runs out for sessions
  nobody holds — that is how a crashed node's sessions expire.
* ``as.req.<sid>``: subscribed by the node whose app socket is attached. Any other node sends
  an agent request there with request/reply; the owner runs the usual checks (so revocation and
  every per-session limit are decided in one place) and answers.
* ``as.ctl.<sid>``: subscribed by the node holding the in-process object (attached or held), so
  another node can take the session over (a resume elsewhere) or end it.

"No responders" on ``as.req`` means no node has the app: the request is answered from the KV
(``agents.md``, ``tools.json``, token checks, task polls; tool calls get 503 + Retry-After).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

import nats
import orjson
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import NoRespondersError
from nats.js.errors import BucketNotFoundError, KeyDeletedError, KeyNotFoundError, NotFoundError
from nats.js.kv import KeyValue

from agent_socket.protocol import ids
from agent_socket.protocol.errors import CloseCode, CloseReason, ErrorCode
from agent_socket.relay import durable, replies
from agent_socket.relay.durable import Snapshot
from agent_socket.relay.events import event
from agent_socket.relay.hub import ClusterUnavailable
from agent_socket.relay.replies import Response
from agent_socket.relay.session import Session, State, Task

if TYPE_CHECKING:
    from agent_socket.relay.agent_http import AgentSurface, Call
    from agent_socket.relay.state import RelayState

log = logging.getLogger("agent_socket.cluster")

REQ = "as.req."
CTL = "as.ctl."
_RELEASE = b"release"
_END = b"end"


def _offline(message: str) -> Response:
    return replies.error(ErrorCode.APP_OFFLINE, message)


def encode_call(call: Call) -> bytes:
    head = [call.method, call.tail, call.verifier, call.site, call.headers]
    return orjson.dumps(head) + b"\n" + call.body


def decode_call(raw: bytes) -> Call:
    from agent_socket.relay.agent_http import Call

    head_raw, _, body = raw.partition(b"\n")
    method, tail, verifier, site, headers = orjson.loads(head_raw)
    return Call(method, tail, verifier, site, headers, body)


class NatsCluster:
    def __init__(self, relay: RelayState, servers: str, bucket: str) -> None:
        self.relay = relay
        self.hub = relay.hub
        self.servers = [s.strip() for s in servers.split(",") if s.strip()]
        self.bucket = bucket
        self.node = secrets.token_hex(4)
        self.surface: AgentSurface | None = None
        self.nc: Client | None = None
        self.kv: KeyValue | None = None
        self._subs: dict[str, dict[str, Subscription]] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self._runner: asyncio.Task[None] | None = None
        #: Completed when the current NATS connection drops (requests in flight give up).
        self._lost: asyncio.Future[None] | None = None
        limits = relay.limits
        self.call_timeout = limits.max_sync_tool_ms / 1000 + 2
        self.refresh_every = min(max(limits.resume_grace_ms / 3000, 0.5), 60.0)

    # ---- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect (retrying in the background until NATS answers) and start refreshing."""
        self._runner = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Finish pending writes (sessions just held on shutdown), then disconnect."""
        if self._background:
            await asyncio.wait(list(self._background), timeout=3)
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        for task in list(self._background):
            task.cancel()
        if self.nc is not None and not self.nc.is_closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.nc.close(), 2)

    def status(self) -> str:
        nc = self.nc
        if nc is None or self.kv is None:
            return "connecting"
        if nc.is_connected:
            return "connected"
        if nc.is_reconnecting:
            return "reconnecting"
        return "closed"

    @property
    def up(self) -> bool:
        return self.nc is not None and self.kv is not None and self.nc.is_connected

    async def _run(self) -> None:
        while self.kv is None:
            try:
                await self._connect()
            except Exception as exc:  # keep trying: NATS may start after the relay
                log.warning("NATS not reachable yet (%s); retrying", type(exc).__name__)
                await asyncio.sleep(1)
        event("cluster_connected", node=self.node, bucket=self.bucket)
        await self._resync()
        while True:
            await asyncio.sleep(self.refresh_every)
            if self.up:
                await self._refresh()

    async def _connect(self) -> None:
        self._lost = asyncio.get_running_loop().create_future()
        self.nc = await nats.connect(
            self.servers,
            name=f"agent-socket-{self.node}",
            connect_timeout=2,
            reconnect_time_wait=0.5,
            max_reconnect_attempts=-1,
            allow_reconnect=True,
            reconnected_cb=self._on_reconnected,
            disconnected_cb=self._on_disconnected,
            error_cb=self._on_error,
        )
        js = self.nc.jetstream()
        ttl = self.relay.limits.resume_grace_ms / 1000 or None
        try:
            self.kv = await js.key_value(self.bucket)
        except BucketNotFoundError:
            try:
                self.kv = await js.create_key_value(bucket=self.bucket, ttl=ttl, history=1)
            except Exception:  # another relay created it first
                self.kv = await js.key_value(self.bucket)

    async def _on_reconnected(self) -> None:
        self._lost = asyncio.get_running_loop().create_future()
        event("cluster_reconnected", node=self.node)
        self._spawn(self._resync())

    async def _on_disconnected(self) -> None:
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(None)
        event("cluster_disconnected", node=self.node)

    async def _on_error(self, exc: Exception) -> None:
        log.warning("NATS error: %s", exc)

    async def _resync(self) -> None:
        """Write every session this node holds (after a connect or an outage)."""
        for session in list(self.hub.sessions.values()):
            if session.state is not State.ENDED:
                await self._subscribe(session)
                await self.save(session)
                for task_id in list(session.tasks):
                    await self._save_task(session, task_id)

    async def _refresh(self) -> None:
        """Rewrite live sessions and their tasks so the bucket TTL never ends them."""
        for session in list(self.hub.sessions.values()):
            if session.state is State.ATTACHED:
                await self.save(session)
                for task_id in list(session.tasks):
                    await self._save_task(session, task_id)

    def _spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # ---- the owner's side ----------------------------------------------------------------------

    async def save(self, session: Session) -> None:
        if not self.up or session.state is State.ENDED:
            return
        assert self.kv is not None
        try:
            await self.kv.put(f"s.{session.id}", durable.encode_session(session, self.node))
        except Exception as exc:
            log.warning("could not save session %s: %s", session.id, exc)

    async def _save_task(self, session: Session, task_id: str) -> None:
        if not self.up:
            return
        assert self.kv is not None
        key = f"t.{session.id}.{task_id}"
        task = session.tasks.get(task_id)
        try:
            if task is None:
                await self.kv.delete(key)
            else:
                await self.kv.put(key, durable.encode_task(task))
        except Exception as exc:
            log.warning("could not save task of %s: %s", session.id, exc)

    def task_changed(self, session: Session, task_id: str) -> None:
        self._spawn(self._save_task(session, task_id))

    async def attached(self, session: Session) -> None:
        await self._subscribe(session)

    def held(self, session: Session) -> None:
        self._spawn(self._unsubscribe(session.id, "req"))
        self._spawn(self.save(session))

    def released(self, session: Session) -> None:
        self._spawn(self._unsubscribe(session.id))

    def ended(self, session: Session) -> None:
        self._spawn(self._unsubscribe(session.id))
        self._spawn(self._remove(session.id))

    async def _subscribe(self, session: Session) -> None:
        if self.nc is None:
            return
        subs = self._subs.setdefault(session.id, {})
        try:
            if "ctl" not in subs:
                subs["ctl"] = await self.nc.subscribe(CTL + session.id, cb=self._on_control)
            if session.state is State.ATTACHED and "req" not in subs:
                subs["req"] = await self.nc.subscribe(REQ + session.id, cb=self._on_request)
        except Exception as exc:
            log.warning("could not subscribe for %s: %s", session.id, exc)

    async def _unsubscribe(self, session_id: str, only: str | None = None) -> None:
        subs = self._subs.get(session_id, {})
        for kind in [only] if only else list(subs):
            sub = subs.pop(kind, None) if kind else None
            if sub is not None:
                with contextlib.suppress(Exception):
                    await sub.unsubscribe()
        if not subs:
            self._subs.pop(session_id, None)

    async def _remove(self, session_id: str) -> None:
        if not self.up:
            return
        assert self.kv is not None
        with contextlib.suppress(Exception):
            await self.kv.delete(f"s.{session_id}")
        with contextlib.suppress(Exception):
            for key in await self._task_keys(session_id):
                await self.kv.delete(key)

    async def _on_request(self, msg: Msg) -> None:
        # Subscriptions deliver in order; each call runs on its own so slow tools don't queue.
        self._spawn(self._answer(msg))

    async def _answer(self, msg: Msg) -> None:
        session = self.hub.get(msg.subject[len(REQ) :])
        if session is None or self.surface is None:
            response = _offline("the app is not connected")
        else:
            outcome = await self.surface.route(session, decode_call(msg.data))
            response = outcome if isinstance(outcome, Response) else _offline("not available")
        with contextlib.suppress(Exception):
            await msg.respond(durable.encode_response(response))

    async def _on_control(self, msg: Msg) -> None:
        session = self.hub.get(msg.subject[len(CTL) :])
        if session is not None:
            if msg.data == _RELEASE:
                await self.save(session)
                self.hub.release(session, CloseCode.REPLACED, CloseReason.REPLACED)
            elif msg.data == _END:
                session.end("ended from another node")
        with contextlib.suppress(Exception):
            await msg.respond(b"ok")

    # ---- any node's side -----------------------------------------------------------------------

    async def route(self, session_id: str, call: Call) -> Response:
        """Answer an agent request for a session this node does not hold."""
        if not self.up:
            return _offline("the relay cluster is unavailable; retry shortly")
        assert self.nc is not None
        request = asyncio.ensure_future(
            self.nc.request(REQ + session_id, encode_call(call), timeout=self.call_timeout)
        )
        # nats-py leaves a request waiting out its timeout when the connection drops; an agent
        # should hear at once that the app cannot be reached.
        assert self._lost is not None  # set whenever the cluster is up
        await asyncio.wait((request, self._lost), return_when=asyncio.FIRST_COMPLETED)
        if not request.done():
            request.cancel()
            return _offline("the relay cluster connection dropped; retry shortly")
        try:
            msg = request.result()
        except NoRespondersError:
            return await self._from_storage(session_id, call)
        except Exception:
            return _offline("the app could not be reached; retry shortly")
        return durable.decode_response(msg.data)

    async def load(self, session_id: str) -> Snapshot | None:
        if not self.up:
            raise ClusterUnavailable
        assert self.kv is not None
        try:
            entry = await self.kv.get(f"s.{session_id}")
        except (KeyNotFoundError, KeyDeletedError, NotFoundError):
            return None
        except Exception as exc:
            raise ClusterUnavailable from exc
        if not entry.value:
            return None
        return durable.decode_session(session_id, entry.value)

    async def _from_storage(self, session_id: str, call: Call) -> Response:
        """Checks (4)–(9) against the durable state: no node has the app right now."""
        from agent_socket.relay.agent_http import (
            CSRF_DENIED,
            NOT_FOUND,
            OFFLINE,
            TASKS_PREFIX,
            held_response,
            meta_response,
        )

        try:
            snapshot = await self.load(session_id)
        except ClusterUnavailable:
            return _offline("the relay cluster is unavailable; retry shortly")
        if snapshot is None:  # (4)
            return OFFLINE
        if call.tail in ("", "/"):  # (5)
            return NOT_FOUND
        if not snapshot.accepts(call.verifier):  # (6)
            return replies.error(ErrorCode.TOKEN_INVALID, "this link is unknown or was revoked")
        if call.tail.startswith(TASKS_PREFIX):  # (7)
            return await self._take_task(session_id, call.tail[len(TASKS_PREFIX) :])
        meta = meta_response(snapshot.registration, call.tail)
        if meta is not None:
            return meta
        if call.cross_site:  # (8)
            return CSRF_DENIED
        return held_response(snapshot.away_for_ms())  # (9)

    async def _take_task(self, session_id: str, task_id: str) -> Response:
        """A task poll from storage: a result is handed out once (compare-and-delete)."""
        missing = replies.error(ErrorCode.NOT_FOUND, "no such task (results are given once)")
        if ids.TASK_ID_RE.match(task_id) is None:
            return missing
        assert self.kv is not None
        key = f"t.{session_id}.{task_id}"
        try:
            entry = await self.kv.get(key)
        except Exception:
            return missing
        if not entry.value:
            return missing
        task = durable.decode_task(entry.value)
        if task.result is None:
            return replies.json_response(
                202, {"taskId": task_id, "completed": False}, sandboxed=True
            )
        try:
            await self.kv.delete(key, last=entry.revision)
        except Exception:
            return missing  # another node handed it out first
        return task.result

    async def _control(self, session_id: str, op: bytes) -> bool:
        """Ask the node holding the session's object to act; False when no node holds it."""
        assert self.nc is not None
        try:
            await self.nc.request(CTL + session_id, op, timeout=5)
        except NoRespondersError:
            return False
        except Exception as exc:
            raise ClusterUnavailable from exc
        return True

    async def take_over(
        self, session_id: str, proves: Callable[[bytes], bool], secret: str
    ) -> Session | None:
        """A resume for a session this node does not hold: check the secret against storage,
        make the previous holder let go (its app gets 4410), then restore the session here."""
        snapshot = await self.load(session_id)
        if snapshot is None or not proves(snapshot.secret_check):
            return None
        if await self._control(session_id, _RELEASE):
            snapshot = await self.load(session_id) or snapshot
        key = ids.seal_key(secret)
        session = Session(
            session_id,
            snapshot.registration,
            snapshot.secret_check,
            None,
            self.relay.limits,
            self.hub,
            key,
        )
        session.tokens = snapshot.open_tokens(key)
        session.tasks = await self._load_tasks(session_id)
        session.away_since = snapshot.away_since
        self.hub.adopt(session)
        return session

    async def _load_tasks(self, session_id: str) -> dict[str, Task]:
        assert self.kv is not None
        tasks: dict[str, Task] = {}
        with contextlib.suppress(Exception):
            for key in await self._task_keys(session_id):
                with contextlib.suppress(Exception):
                    entry = await self.kv.get(key)
                    if entry.value:
                        tasks[key.rsplit(".", 1)[1]] = durable.decode_task(entry.value)
        return tasks

    async def _task_keys(self, session_id: str) -> list[str]:
        """The task keys of one session (a server-side filtered watch; ``kv.keys`` filters
        client-side by substring, which wildcards never match)."""
        assert self.kv is not None
        watcher = await self.kv.watch(f"t.{session_id}.>", ignore_deletes=True, meta_only=True)
        keys: list[str] = []
        try:
            async for entry in watcher:
                if entry is None:
                    break
                keys.append(entry.key)
        finally:
            await watcher.stop()  # type: ignore[no-untyped-call]
        return keys

    async def end_elsewhere(self, session_id: str, proves: Callable[[bytes], bool]) -> bool:
        """An ``end`` for a session this node does not hold."""
        snapshot = await self.load(session_id)
        if snapshot is None or not proves(snapshot.secret_check):
            return False
        if not await self._control(session_id, _END):
            await self._remove(session_id)
        return True
