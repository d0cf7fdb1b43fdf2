"""agent-socket: let any app expose tools to any AI chat through one paste-able URL.

The relay lives in :mod:`agent_socket.relay`, the wire contract in :mod:`agent_socket.protocol`.
"""

__version__ = "0.1.0"
