"""The whole `forbear.testing` conformance table, for httpx sync and async (asyncio and trio)."""

from __future__ import annotations

from collections.abc import Sequence

import httpx
import pytest

from forbear import error_kind
from forbear.testing import (
    SCENARIOS,
    Result,
    Scenario,
    ScenarioEnv,
    SendContext,
    arun_scenario,
    run_scenario,
)
from forbear_httpx import RetryTransport


def _failure(exc: httpx.TransportError) -> Result:
    kind = error_kind(exc)
    if kind is None:
        raise exc  # not a failure the table expects: let the test show it
    return Result.failure(exc, kind)


class SyncDriver:
    """`httpx.Client(transport=RetryTransport(...))`, one client per scenario."""

    name = "httpx-sync"

    def send(self, ctx: SendContext) -> Sequence[Result]:
        limits = httpx.Limits(max_connections=ctx.pool_size)
        transport = RetryTransport(
            httpx.HTTPTransport(limits=limits) if ctx.pool_size else None,
            policy=ctx.policy,
            token=ctx.token_source(),
            idempotency_keys=ctx.idempotency_keys,
        )
        with httpx.Client(transport=transport, timeout=ctx.timeout) as client:

            def send_one() -> Result:
                try:
                    response = client.request(
                        ctx.method, ctx.url, headers=ctx.headers, content=ctx.content()
                    )
                except httpx.TransportError as exc:
                    return _failure(exc)
                return Result.response(response.status_code, response.content)

            return ctx.gather(send_one)


class AsyncDriver:
    """`httpx.AsyncClient(transport=RetryTransport(...))`, one client per scenario."""

    name = "httpx-async"

    async def send(self, ctx: SendContext) -> Sequence[Result]:
        limits = httpx.Limits(max_connections=ctx.pool_size)
        transport = RetryTransport(
            httpx.AsyncHTTPTransport(limits=limits) if ctx.pool_size else None,
            policy=ctx.policy,
            token=ctx.token_source(),
            idempotency_keys=ctx.idempotency_keys,
        )
        async with httpx.AsyncClient(transport=transport, timeout=ctx.timeout) as client:

            async def send_one() -> Result:
                try:
                    response = await client.request(
                        ctx.method, ctx.url, headers=ctx.headers, content=ctx.acontent()
                    )
                except httpx.TransportError as exc:
                    return _failure(exc)
                return Result.response(response.status_code, response.content)

            return await ctx.agather(send_one)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=str)
def test_sync_conformance(scenario: Scenario, conformance_env: ScenarioEnv) -> None:
    """httpx.Client with RetryTransport does what the scenario's summary says."""
    run_scenario(SyncDriver(), scenario, conformance_env)


@pytest.mark.anyio
@pytest.mark.parametrize("scenario", SCENARIOS, ids=str)
async def test_async_conformance(scenario: Scenario, conformance_env: ScenarioEnv) -> None:
    """httpx.AsyncClient with RetryTransport does what the scenario's summary says."""
    await arun_scenario(AsyncDriver(), scenario, conformance_env)
