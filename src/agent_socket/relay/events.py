"""Structured log lines: one JSON object per session event and per agent request.

Nothing here ever receives a token, verifier or secret in clear: callers pass redacted values
(``ids.redact``), and the formatter adds nothing of its own.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import orjson

log = logging.getLogger("agent_socket")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "event": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if fields:
            line.update(fields)
        return orjson.dumps(line).decode()


def configure(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    log.handlers[:] = [handler]
    log.setLevel(level.upper())
    log.propagate = False


def logging_requests() -> bool:
    """Whether per-request lines are written (skip building them when not)."""
    return log.isEnabledFor(logging.INFO)


def event(name: str, **fields: Any) -> None:
    if log.isEnabledFor(logging.INFO):
        log.info(name, extra={"fields": fields})


def elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
