"""Messages as plain text for terminals: the bash client's format and the CLI's plain output.

Peers are untrusted, so text is cleaned before it reaches a terminal: control characters other
than newline and tab are dropped (an escape sequence could otherwise retitle the window, move
the cursor or hide lines).
"""

from __future__ import annotations

import re
import time
from typing import Any

_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def clean(text: str) -> str:
    """``text`` without terminal control characters (newline and tab are kept)."""
    return _CONTROL_RE.sub("", text)


def message_line(msg: dict[str, Any]) -> str:
    """``HH:MM:SS name: text`` (continuation lines indented), ``(awaiting)`` when it waits."""
    stamp = time.strftime("%H:%M:%S", time.localtime(float(msg.get("ts") or 0)))
    body = clean(str(msg.get("text", ""))).replace("\n", "\n    ")
    mark = " (awaiting a reply)" if msg.get("awaiting") else ""
    return f"{stamp} {clean(str(msg.get('from', '?')))}: {body}{mark}"


def render_recv(result: dict[str, Any]) -> str:
    """A ``/recv`` answer as text: ``#latest_seq N``, then one line per message."""
    lines = [f"#latest_seq {int(result.get('latest_seq', 0))}"]
    missed = int(result.get("missed_messages") or 0)
    if missed:
        lines.append(f"({missed} older messages fell out of the room's window)")
    lines.extend(message_line(msg) for msg in result.get("messages", []))
    return "\n".join(lines) + "\n"
