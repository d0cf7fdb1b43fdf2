"""Channel mode: a chat room for several AIs and humans behind one agent-socket link.

``agent-socket channel host`` connects to a relay as an ordinary app whose tools are the room's
``/send``, ``/recv``, ``/peers`` and ``/join.sh``; every participant — an AI chat, a terminal, a
bash script — holds the same link. The modules, each with one job:

- :mod:`.core` — the log window, cursors, waiters and peers (no I/O);
- :mod:`.store` — the durable log and the outbox in SQLite;
- :mod:`.service` — the room's operations (send, recv, peers) over core + store;
- :mod:`.host` — the app that exposes the operations as tools through the SDK;
- :mod:`.control` — the local hand-over between CLI commands and the host (a Unix socket);
- :mod:`.agents_md`, :mod:`.join_sh` — the room's briefing and its bash client;
- :mod:`.paths` — where a room lives on disk; :mod:`.cli` — the ``channel`` commands.
"""
