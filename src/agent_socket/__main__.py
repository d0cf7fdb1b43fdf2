"""`python -m agent_socket` runs the CLI."""

from agent_socket.cli import main

main()
