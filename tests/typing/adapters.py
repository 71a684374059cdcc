"""Type-check-only use of each adapter's public surface; mypy reads it, nothing runs it."""

from __future__ import annotations

import sys

import aiohttp
import forbear_backoff
import forbear_tenacity
import httpx
import requests
from forbear_aiohttp import RetryMiddleware
from forbear_httpx import RetryTransport
from forbear_redis import Fleet
from forbear_requests import RetryAdapter

from forbear import Event, HostGate, Policy, RetryBudget, TokenSource, profiles

if sys.version_info >= (3, 11):
    from typing import assert_type
else:
    from typing_extensions import assert_type


def _exchange() -> str:
    return "token"


def _hook(event: Event) -> None:
    del event


def sync_clients() -> None:
    gate, budget = HostGate(), RetryBudget()
    token = TokenSource(_exchange, origins=["https://api.example.com"])
    transport = RetryTransport(
        policy=profiles.sarucci,
        token=token,
        gate=gate,
        budget=budget,
        idempotency_keys=True,
        request_ids=True,
        on_event=_hook,
    )
    with httpx.Client(transport=transport) as client:
        assert_type(client.get("https://api.example.com"), httpx.Response)
    session = requests.Session()
    session.mount("https://", RetryAdapter(policy=Policy(max_attempts=3), gate=gate))
    assert_type(session.get("https://api.example.com"), requests.Response)


async def async_clients() -> None:
    async with httpx.AsyncClient(transport=RetryTransport(gate=None, budget=None)) as client:
        assert_type(await client.get("https://api.example.com"), httpx.Response)
    middleware = RetryMiddleware(policy=Policy(), on_event=_hook)
    async with (
        aiohttp.ClientSession(middlewares=[middleware]) as session,
        session.get("https://api.example.com") as response,
    ):
        assert_type(response.status, int)


@forbear_backoff.on_response(policy=profiles.policy_api)
def decorated() -> httpx.Response:
    return httpx.get("https://api.example.com")


@forbear_tenacity.retry(policy=profiles.sarucci, method="GET")
def decorated_by_tenacity() -> httpx.Response:
    return httpx.get("https://api.example.com", headers=forbear_tenacity.headers())


def fleet_scope() -> None:
    fleet = Fleet("redis://127.0.0.1:6379/0", namespace="crawler")
    middleware = RetryMiddleware(gate=fleet.gate, budget=fleet.budget)
    transport = RetryTransport(gate=fleet.gate, budget=fleet.budget)
    token = fleet.token(_exchange, origins=["https://api.example.com"])
    assert_type(token.header_value("t"), str)
    del middleware, transport
