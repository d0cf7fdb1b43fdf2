"""Fixtures shared by the end-to-end suites (the relay fixtures live in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx2
import pytest


@pytest.fixture
async def http() -> AsyncIterator[httpx2.AsyncClient]:
    """An agent-side HTTP client."""
    async with httpx2.AsyncClient(timeout=10) as client:
        yield client
