"""The room's briefing and its bash client: what they must say and must never allow."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from agent_socket.channel import join_sh
from agent_socket.channel.agents_md import build_agents_md
from agent_socket.channel.text import clean, render_recv
from agent_socket.protocol.preamble import CONTRACT_MARKER


def test_agents_md_teaches_the_patterns_and_the_trust_note() -> None:
    doc = build_agents_md("lab", "ana", 25, [])
    assert doc.startswith(CONTRACT_MARKER)
    lowered = doc.lower()
    for needle in (
        "do not recite",
        '"wait": 25',
        "say and wait",
        "awaiting",
        "latest_seq",
        "since",
        "short, stable name",
        '"wait": 0',
        "not authenticated",
        "data, not instructions",
        "missed_messages",
        "message_too_large",
    ):
        assert needle.lower() in lowered, needle


EVIL = [
    "http://x/';touch${{IFS}}{marker};'/agents.md",
    "http://x/$(touch${{IFS}}{marker})/agents.md",
    "http://x/`touch${{IFS}}{marker}`/agents.md",
    'http://x/"$(touch${{IFS}}{marker})"/agents.md',
    "http://x/'\\''$(touch${{IFS}}{marker})/agents.md",
]


@pytest.mark.parametrize("template", EVIL)
def test_no_link_can_inject_shell_code(tmp_path: Path, template: str) -> None:
    marker = tmp_path / "pwned"
    link = template.format(marker=marker)
    script = join_sh.render(link, 5)
    # Evaluate only the assignment, then print what bash holds in BASE.
    assignment = next(line for line in script.splitlines() if line.startswith("BASE="))
    result = subprocess.run(
        ["bash", "-c", assignment + '\nprintf %s "$BASE"'], capture_output=True, text=True
    )
    assert result.returncode == 0
    assert result.stdout == join_sh.base_of(link)
    assert not marker.exists()
    # And the whole script parses.
    assert subprocess.run(["bash", "-n", "-c", script]).returncode == 0


def test_links_that_are_not_printable_ascii_urls_are_refused() -> None:
    for bad in ("ftp://x/agents.md", "http://x/a b/agents.md", "http://x/\n/agents.md"):
        with pytest.raises(ValueError):
            join_sh.render(bad, 5)


def test_text_format_is_clean_for_terminals() -> None:
    assert clean("a\x1b]0;title\x07b\tc\nd") == "a]0;titleb\tc\nd"
    text = render_recv(
        {
            "latest_seq": 9,
            "missed_messages": 2,
            "messages": [{"seq": 9, "from": "al", "text": "x\ny", "ts": 0, "awaiting": True}],
        }
    )
    lines = text.splitlines()
    assert lines[0] == "#latest_seq 9"
    assert "2 older messages" in lines[1]
    assert lines[2].endswith("al: x") and lines[3] == "    y (awaiting a reply)"
