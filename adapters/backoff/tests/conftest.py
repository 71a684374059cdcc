"""Fixtures for the forbear-backoff tests: each client library, each decorator."""

from __future__ import annotations

import pytest
from backoff_harness import CLIENTS, MODES, Client


@pytest.fixture(params=CLIENTS)
def client(request: pytest.FixtureRequest) -> Client:
    """Each client library in turn: httpx, requests, httpx.AsyncClient, aiohttp."""
    return Client(str(request.param))


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    """Each decorator in turn: ``on_response`` and ``on_exception``."""
    return str(request.param)
