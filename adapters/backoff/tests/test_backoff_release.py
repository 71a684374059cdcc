"""Discarded responses are released; the last one is handed back unread, so it still streams.

Each function here returns an unread (streamed) response, the case where a leaked response
would hold a pooled connection. Tests run under ``-W error::ResourceWarning``.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import httpx
import pytest
import requests
from backoff_harness import FAST

import forbear_backoff
from forbear_testing import FaultServer, Reply

SCRIPT = [Reply(503, body=b"busy"), Reply(502, body=b"bad gateway"), Reply(200, body=b"fine")]


def test_httpx_streamed_responses_are_closed_but_the_last(fault_server: FaultServer) -> None:
    """httpx: the two retried streams are closed; the returned one is open and readable."""
    fault_server.script("/s", SCRIPT)
    seen: list[httpx.Response] = []

    with httpx.Client() as client:

        @forbear_backoff.on_response(policy=FAST)
        def fetch() -> httpx.Response:
            response = client.send(
                client.build_request("GET", fault_server.url + "/s"), stream=True
            )
            seen.append(response)
            return response

        last = fetch()
        assert [r.is_closed for r in seen] == [True, True, False]
        assert last.read() == b"fine"
        last.close()
    assert len(fault_server.arrivals("/s")) == 3


def test_httpx_async_streamed_responses_are_closed_but_the_last(
    fault_server: FaultServer,
) -> None:
    """httpx.AsyncClient: retried streams are closed with ``aclose``; the last one streams."""
    fault_server.script("/s", SCRIPT)
    seen: list[httpx.Response] = []

    async def main() -> bytes:
        async with httpx.AsyncClient() as client:

            @forbear_backoff.on_response(policy=FAST)
            async def fetch() -> httpx.Response:
                request = client.build_request("GET", fault_server.url + "/s")
                response = await client.send(request, stream=True)
                seen.append(response)
                return response

            last = await fetch()
            assert [r.is_closed for r in seen] == [True, True, False]
            body = await last.aread()
            await last.aclose()
            return body

    assert asyncio.run(main()) == b"fine"
    assert len(fault_server.arrivals("/s")) == 3


def test_requests_streamed_responses_are_closed_but_the_last(fault_server: FaultServer) -> None:
    """requests with ``stream=True``: retried responses are closed; the last one is unread."""
    fault_server.script("/s", SCRIPT)
    seen: list[requests.Response] = []

    with requests.Session() as session:

        @forbear_backoff.on_response(policy=FAST)
        def fetch() -> requests.Response:
            response = session.get(fault_server.url + "/s", stream=True)
            seen.append(response)
            return response

        last = fetch()
        assert [r.raw.closed for r in seen] == [True, True, False]
        assert last.content == b"fine"
        last.close()
    assert len(fault_server.arrivals("/s")) == 3


def test_aiohttp_responses_are_released_but_the_last(fault_server: FaultServer) -> None:
    """aiohttp: retried responses are released; the last one is open and readable."""
    # Bodies larger than aiohttp's read buffer, so no response has reached its end unread.
    size = 1 << 20
    fault_server.script("/s", [Reply(503, body_size=size), Reply(502, body_size=size)])
    fault_server.script("/s", [Reply(200, body_size=size)])
    seen: list[aiohttp.ClientResponse] = []

    async def main() -> bytes:
        async with aiohttp.ClientSession() as session:

            @forbear_backoff.on_response(policy=FAST)
            async def fetch() -> aiohttp.ClientResponse:
                response = await session.get(fault_server.url + "/s")
                seen.append(response)
                return response

            last = await fetch()
            assert [r.closed for r in seen] == [True, True, False]
            async with last:
                return await last.read()

    assert asyncio.run(main()) == b"x" * size
    assert len(fault_server.arrivals("/s")) == 3


def test_pieces_wait_gen_closes_what_it_retries(fault_server: FaultServer) -> None:
    """The composable wait generator closes each retried response itself."""
    import backoff

    fault_server.script("/s", SCRIPT)
    pieces = forbear_backoff.Pieces(policy=FAST)
    seen: list[requests.Response] = []

    with requests.Session() as session:

        @backoff.on_predicate(pieces.wait_gen, pieces.retryable, jitter=None)
        def fetch() -> requests.Response:
            response = session.get(fault_server.url + "/s", stream=True)
            seen.append(response)
            return response

        last = fetch()
        assert [r.raw.closed for r in seen] == [True, True, False]
        last.close()


def test_cancelling_the_wait_leaves_nothing_open(fault_server: FaultServer) -> None:
    """A task cancelled while waiting out a Retry-After stops at once; the 429 was closed."""
    fault_server.always("/limited", Reply(429, retry_after=30, body=b"slow down"))
    seen: list[httpx.Response] = []

    async def main() -> None:
        async with httpx.AsyncClient() as client:

            @forbear_backoff.on_response(policy=FAST)
            async def fetch() -> httpx.Response:
                request = client.build_request("GET", fault_server.url + "/limited")
                response = await client.send(request, stream=True)
                seen.append(response)
                return response

            await asyncio.wait_for(fetch(), timeout=0.3)

    started = time.monotonic()
    with pytest.raises(asyncio.TimeoutError):
        asyncio.run(main())
    assert time.monotonic() - started < 5.0
    assert [r.is_closed for r in seen] == [True]
    assert len(fault_server.arrivals("/limited")) == 1
