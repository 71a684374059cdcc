"""The `forbear.testing` conformance table through ``forbear_tenacity.retry``, where it fits.

The decorated function calls a plain httpx client (sync, and async on asyncio and on trio:
tenacity sleeps with the running library's own sleep). Scenarios that need what a decorator
cannot do are left out: forbear's own ``Idempotency-Key`` generation (the function builds its
request) and a one-shot generator body (the function builds a fresh one on every call).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import httpx
import pytest

import forbear_tenacity
from forbear import HostGate, RetryBudget, error_kind
from forbear_testing import (
    SCENARIOS,
    BodyKind,
    Result,
    Scenario,
    ScenarioEnv,
    SendContext,
    arun_scenario,
    run_scenario,
)

F = TypeVar("F", bound=Callable[..., Any])

FITTING = [
    scenario
    for scenario in SCENARIOS
    if not scenario.idempotency_keys and scenario.body_kind is not BodyKind.GENERATOR
]


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """The anyio backend an async test runs on."""
    return str(request.param)


def _failure(exc: httpx.TransportError) -> Result:
    kind = error_kind(exc)
    if kind is None:
        raise exc  # not a failure the table expects: let the test show it
    return Result.failure(exc, kind)


def _retry(ctx: SendContext) -> Callable[[F], F]:
    """The decorator for one scenario: its policy and token, a gate and budget of its own."""
    return forbear_tenacity.retry(
        policy=ctx.policy, token=ctx.token_source(), gate=HostGate(), budget=RetryBudget()
    )


class SyncDriver:
    """A function calling ``httpx.Client``, decorated with ``forbear_tenacity.retry``."""

    name = "tenacity-httpx-sync"

    def send(self, ctx: SendContext) -> Sequence[Result]:
        limits = httpx.Limits(max_connections=ctx.pool_size)
        with httpx.Client(limits=limits, timeout=ctx.timeout) as client:

            @_retry(ctx)
            def fetch() -> httpx.Response:
                headers = {**ctx.headers, **forbear_tenacity.headers()}
                return client.request(ctx.method, ctx.url, headers=headers, content=ctx.content())

            def send_one() -> Result:
                try:
                    response = fetch()
                except httpx.TransportError as exc:
                    return _failure(exc)
                return Result.response(response.status_code, response.content)

            return ctx.gather(send_one)


class AsyncDriver:
    """An async function calling ``httpx.AsyncClient``, decorated likewise."""

    name = "tenacity-httpx-async"

    async def send(self, ctx: SendContext) -> Sequence[Result]:
        limits = httpx.Limits(max_connections=ctx.pool_size)
        async with httpx.AsyncClient(limits=limits, timeout=ctx.timeout) as client:

            @_retry(ctx)
            async def fetch() -> httpx.Response:
                headers = {**ctx.headers, **forbear_tenacity.headers()}
                return await client.request(
                    ctx.method, ctx.url, headers=headers, content=ctx.acontent()
                )

            async def send_one() -> Result:
                try:
                    response = await fetch()
                except httpx.TransportError as exc:
                    return _failure(exc)
                return Result.response(response.status_code, response.content)

            return await ctx.agather(send_one)


@pytest.mark.parametrize("scenario", FITTING, ids=str)
def test_sync_conformance(scenario: Scenario, conformance_env: ScenarioEnv) -> None:
    """A tenacity-retried httpx.Client function does what the scenario's summary says."""
    run_scenario(SyncDriver(), scenario, conformance_env)


@pytest.mark.anyio
@pytest.mark.parametrize("scenario", FITTING, ids=str)
async def test_async_conformance(scenario: Scenario, conformance_env: ScenarioEnv) -> None:
    """A tenacity-retried httpx.AsyncClient function does it too, on asyncio and on trio."""
    await arun_scenario(AsyncDriver(), scenario, conformance_env)
