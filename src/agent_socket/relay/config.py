"""Relay settings: one definition for flags, ``AGENT_SOCKET_*`` environment and docs.

Each field's description is its ``--help`` text; the CLI builds its options from this class, so a
new setting needs only a new field here.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from agent_socket.protocol import limits as L


class RelayConfig(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AGENT_SOCKET_", extra="ignore")

    host: str = Field("127.0.0.1", description="Address to listen on (0.0.0.0 for all).")
    port: int = Field(8787, ge=0, le=65535, description="TCP port to listen on.")
    public_url: str | None = Field(
        None,
        description="Public origin of this relay (e.g. https://relay.example.com); minted links "
        "then carry it instead of the __BASE__ placeholder.",
    )
    debug: bool = Field(
        False, description="Enable the /_debug/* endpoints (tests only; never in production)."
    )
    log_level: str = Field("info", description="Log level: debug, info, warning or error.")
    forwarded_allow_ips: str = Field(
        "",
        description="Comma-separated proxy addresses trusted to set X-Forwarded-For (used for "
        "the upgrade rate limit); empty trusts none.",
    )
    max_body_bytes: int = Field(L.MAX_BODY_BYTES, ge=1, description="Agent request body cap (413).")
    max_frame_units: int = Field(
        L.MAX_FRAME_UNITS, ge=1, description="App frame cap in UTF-16 code units (close 1009)."
    )
    max_agents_md_chars: int = Field(
        L.MAX_AGENTS_MD_CHARS, ge=0, description="agentsMd cap in UTF-16 code units (close 4413)."
    )
    max_app_description_chars: int = Field(
        L.MAX_APP_DESCRIPTION_CHARS, ge=0, description="appDescription is cut to this length."
    )
    max_label_chars: int = Field(L.MAX_LABEL_CHARS, ge=0, description="Token labels are cut here.")
    max_tokens_per_session: int = Field(
        L.MAX_TOKENS_PER_SESSION, ge=1, description="Live agent tokens per session."
    )
    max_inflight_per_session: int = Field(
        L.MAX_INFLIGHT_PER_SESSION, ge=1, description="Tool calls in flight per session (429)."
    )
    max_tasks_per_session: int = Field(
        L.MAX_TASKS_PER_SESSION, ge=1, description="Async tasks kept per session (503)."
    )
    max_task_result_bytes: int = Field(
        L.MAX_TASK_RESULT_BYTES, ge=1, description="Largest task result, as UTF-8 JSON."
    )
    max_task_content_type_chars: int = Field(
        L.MAX_TASK_CONTENT_TYPE_CHARS, ge=1, description="Longest task result content-type."
    )
    max_sync_tool_ms: int = Field(
        L.MAX_SYNC_TOOL_MS, ge=1, description="Sync tool timeout in ms (504 tool_timeout)."
    )
    register_timeout_ms: int = Field(
        L.REGISTER_TIMEOUT_MS, ge=1, description="Deadline for register/resume in ms (4408)."
    )
    heartbeat_timeout_ms: int = Field(
        L.HEARTBEAT_TIMEOUT_MS, ge=1, description="An app silent this long is closed 4408 (ms)."
    )
    resume_grace_ms: int = Field(
        L.RESUME_GRACE_MS,
        ge=0,
        description="How long a dropped app's session is held (ms); 0 ends sessions at once.",
    )
    max_resume_sockets: int = Field(
        L.MAX_RESUME_SOCKETS, ge=1, description="Waiting ?session= sockets per session (4409)."
    )
    ws_rate_limit: int = Field(
        L.WS_RATE_LIMIT, ge=1, description="/v1/_ws upgrades allowed per client address per window."
    )
    ws_rate_window_ms: int = Field(
        L.WS_RATE_WINDOW_MS, ge=1, description="Window of the upgrade rate limit in ms."
    )
    max_sessions: int = Field(
        100_000,
        ge=1,
        description="Live + held sessions on this node; past it the longest-away held sessions "
        "end first, and with none held new registrations are refused (close 4429).",
    )
    max_held_bytes: int = Field(
        512 * L.MIB,
        ge=0,
        description="Bytes of registrations kept for held sessions; past it the longest-away "
        "held sessions end first.",
    )

    nats: str | None = Field(
        None,
        description="NATS server URLs (nats://host:4222, comma-separated) — turns on cluster "
        "mode: sessions live in JetStream KV and any relay answers any link. Needs the "
        "'cluster' extra (pip install 'agent-socket[cluster]').",
    )
    nats_bucket: str = Field(
        "agent_socket_sessions", description="JetStream KV bucket holding the sessions."
    )

    def limits(self) -> L.Limits:
        names = L.Limits.__dataclass_fields__
        return L.Limits(**{name: getattr(self, name) for name in names})
