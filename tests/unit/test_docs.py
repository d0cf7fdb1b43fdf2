"""The docs list every relay setting, so flags, environment and docs cannot drift apart."""

from __future__ import annotations

from pathlib import Path

from agent_socket.relay.config import RelayConfig

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_self_hosting_lists_every_setting_with_its_flag_and_variable() -> None:
    text = (DOCS / "self-hosting.md").read_text()
    for name in RelayConfig.model_fields:
        assert f"`--{name.replace('_', '-')}`" in text, name
        assert f"`AGENT_SOCKET_{name.upper()}`" in text, name


def test_protocol_doc_names_every_close_code_the_relay_sends() -> None:
    from agent_socket.protocol.errors import CloseCode

    text = (DOCS / "protocol.md").read_text()
    for code in CloseCode:
        assert f"| {code.value} |" in text, code
