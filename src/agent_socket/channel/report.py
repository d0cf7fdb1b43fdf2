"""What the host shows while it runs: rich lines for people, JSON lines for programs (``--json``).

JSON events, one object per line on stdout::

    {"event": "link", "url": "…/agents.md", "join_sh": "…/join.sh", "resumed": true}
    {"event": "message", "seq": 3, "from": "alice", "text": "…", "ts": …, "awaiting": false}
    {"event": "peer", "name": "alice"}
    {"event": "info", "text": "…"}      {"event": "stopped"}
"""

from __future__ import annotations

import json
import sys
from typing import Any, Protocol

from rich.console import Console
from rich.markup import escape
from rich.rule import Rule

from agent_socket.channel.core import Message
from agent_socket.channel.text import clean, message_line


class Reporter(Protocol):
    def link(self, url: str, join_sh: str, *, resumed: bool, changed: bool = False) -> None: ...

    def message(self, msg: Message) -> None: ...

    def peer(self, name: str) -> None: ...

    def info(self, text: str) -> None: ...

    def stopped(self) -> None: ...


class JsonReporter:
    """One JSON object per event on stdout, flushed at once."""

    def _emit(self, event: str, **fields: Any) -> None:
        sys.stdout.write(json.dumps({"event": event, **fields}, ensure_ascii=False) + "\n")
        sys.stdout.flush()

    def link(self, url: str, join_sh: str, *, resumed: bool, changed: bool = False) -> None:
        self._emit("link", url=url, join_sh=join_sh, resumed=resumed, changed=changed)

    def message(self, msg: Message) -> None:
        self._emit("message", **msg.as_json())

    def peer(self, name: str) -> None:
        self._emit("peer", name=name)

    def info(self, text: str) -> None:
        self._emit("info", text=text)

    def stopped(self) -> None:
        self._emit("stopped")


class RichReporter:
    """The room's activity for a person watching the host's terminal."""

    def __init__(self, room: str) -> None:
        self.room = room
        self.console = Console(highlight=False)

    def link(self, url: str, join_sh: str, *, resumed: bool, changed: bool = False) -> None:
        how = (
            "The relay lost the old session: this is a NEW link, share it again."
            if changed
            else ("Same link as before (session resumed)." if resumed else "New room link.")
        )
        # Links are printed soft-wrapped, never broken by rich, so they copy as one piece.
        say = self.console.print
        say(Rule(f"room {escape(self.room)}", align="left"))
        say(f"[bold]{escape(url)}[/]", soft_wrap=True)
        say(how)
        say("Paste the link into any AI chat (Claude, ChatGPT, …) to bring it into the room.")
        say("People join from a terminal with:", soft_wrap=True)
        say(f"  [cyan]bash <(curl -s {escape(join_sh)}) NAME[/]", soft_wrap=True)
        say(f"  [cyan]agent-socket channel join {escape(url)} --name NAME[/]", soft_wrap=True)
        say("[dim]Room activity follows; press Ctrl-C to stop the host.[/]")

    def message(self, msg: Message) -> None:
        line = escape(message_line(msg.as_json()))
        self.console.print(f"[dim]#{msg.seq}[/] {line}")

    def peer(self, name: str) -> None:
        self.console.print(f"[green]→ {escape(clean(name))} is active in the room[/]")

    def info(self, text: str) -> None:
        self.console.print(f"[dim]{escape(text)}[/]")

    def stopped(self) -> None:
        self.console.print("Stopped.")
