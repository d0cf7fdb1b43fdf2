"""The relay: pairs app WebSockets with agents' plain HTTP requests."""
