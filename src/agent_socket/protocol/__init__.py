"""The wire contract (PROTOCOL.md), shared by the relay and every client. No I/O here."""
