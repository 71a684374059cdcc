"""Discarded responses never leak: a small pool survives a thousand large 503s."""

from __future__ import annotations

import anyio
import httpx
import pytest

from forbear import Backoff, Policy
from forbear_httpx import RetryTransport
from forbear_testing import FaultServer, Reply

pytestmark = pytest.mark.anyio

REQUESTS = 2_000
CONCURRENCY = 16
MIB = 1 << 20


@pytest.fixture
def anyio_backend() -> str:
    """One backend is enough here: the release path is shared with trio's."""
    return "asyncio"


async def test_a_two_connection_pool_survives_a_thousand_large_503s(
    fault_server: FaultServer,
) -> None:
    """2,000 requests, half first answered 503 with 1 MiB, through 2 connections: all succeed."""
    for index in range(0, REQUESTS, 2):
        fault_server.script(f"/r/{index}", [Reply(503, body_size=MIB)])
    inner = httpx.AsyncHTTPTransport(limits=httpx.Limits(max_connections=2))
    # No budget: it exists to stop exactly this storm of retries, which here must go through.
    transport = RetryTransport(
        inner, policy=Policy(backoff=Backoff(initial=0.0, max=0.001)), budget=None
    )
    statuses: list[int] = []
    pending = iter(range(REQUESTS))
    async with httpx.AsyncClient(transport=transport, timeout=10.0) as http:

        async def worker() -> None:
            for index in pending:
                statuses.append((await http.get(f"{fault_server.url}/r/{index}")).status_code)

        with anyio.fail_after(60):
            async with anyio.create_task_group() as tasks:
                for _ in range(CONCURRENCY):
                    tasks.start_soon(worker)
    assert statuses == [200] * REQUESTS
    assert len(fault_server.arrivals()) == REQUESTS + REQUESTS // 2
