"""The whole `forbear.testing` conformance table, for aiohttp sessions (asyncio only)."""

from __future__ import annotations

from collections.abc import Sequence

import aiohttp
import pytest

from forbear import error_kind
from forbear_aiohttp import RetryMiddleware
from forbear_testing import SCENARIOS, Result, Scenario, ScenarioEnv, SendContext, arun_scenario

pytestmark = pytest.mark.anyio


class Driver:
    """``aiohttp.ClientSession(middlewares=[RetryMiddleware(...)])``, one session per scenario."""

    name = "aiohttp"

    async def send(self, ctx: SendContext) -> Sequence[Result]:
        retry = RetryMiddleware(
            policy=ctx.policy, token=ctx.token_source(), idempotency_keys=ctx.idempotency_keys
        )
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=ctx.timeout, sock_read=ctx.timeout)
        connector = aiohttp.TCPConnector(limit=ctx.pool_size or 100)
        async with aiohttp.ClientSession(
            middlewares=[retry], timeout=timeout, connector=connector
        ) as session:

            async def send_one() -> Result:
                try:
                    async with session.request(
                        ctx.method, ctx.url, headers=ctx.headers, data=ctx.acontent()
                    ) as response:
                        return Result.response(response.status, await response.read())
                except aiohttp.ClientError as exc:
                    kind = error_kind(exc)
                    if kind is None:
                        raise  # not a failure the table expects: let the test show it
                    return Result.failure(exc, kind)

            return await ctx.agather(send_one)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=str)
async def test_conformance(scenario: Scenario, conformance_env: ScenarioEnv) -> None:
    """An aiohttp session with RetryMiddleware does what the scenario's summary says."""
    await arun_scenario(Driver(), scenario, conformance_env)
