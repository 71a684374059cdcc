"""Fixtures for the forbear-aiohttp tests: aiohttp is asyncio-only, so is every test here."""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    """The anyio backend every async test runs on."""
    return "asyncio"
