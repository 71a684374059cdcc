"""`forbear_backoff.Pieces` inside the user's own backoff decorators.

backoff makes one wait generator per call and sends it each value or exception it retries
on; the generator asks forbear's core and ends when the core says stop, so backoff gives up.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import backoff
import httpx
import pytest
import requests
from backoff_harness import FAST

import forbear_backoff
from forbear import Policy
from forbear_testing import FaultServer, Reply


def test_on_predicate_retries_until_the_answer(fault_server: FaultServer) -> None:
    """Two 503s then a 200 through backoff.on_predicate: three calls, the 200 returned."""
    fault_server.script("/flaky", [Reply(503), Reply(503), Reply(200)])
    pieces = forbear_backoff.Pieces(policy=FAST)

    @backoff.on_predicate(pieces.wait_gen, pieces.retryable, jitter=None)
    def fetch(client: httpx.Client) -> httpx.Response:
        return client.get(fault_server.url + "/flaky")

    with httpx.Client() as client:
        assert fetch(client).status_code == 200
    assert [a.status for a in fault_server.arrivals("/flaky")] == [503, 503, 200]


def test_the_wait_generator_ends_when_attempts_run_out(fault_server: FaultServer) -> None:
    """Past max_attempts the generator stops; backoff gives up and returns the last 503."""
    fault_server.always("/down", Reply(503))
    pieces = forbear_backoff.Pieces(policy=dataclasses.replace(FAST, max_attempts=3))
    giveups: list[dict[str, Any]] = []

    @backoff.on_predicate(pieces.wait_gen, pieces.retryable, jitter=None, on_giveup=giveups.append)
    def fetch(client: httpx.Client) -> httpx.Response:
        return client.get(fault_server.url + "/down")

    with httpx.Client() as client:
        assert fetch(client).status_code == 503
    assert len(fault_server.arrivals("/down")) == 3
    assert [d["tries"] for d in giveups] == [3]


def test_on_exception_with_giveup(fault_server: FaultServer) -> None:
    """backoff.on_exception with giveup: a GET 503 is retried to the cap, a POST 503 is not."""
    fault_server.always("/down", Reply(503))
    pieces = forbear_backoff.Pieces(policy=FAST)

    @backoff.on_exception(pieces.wait_gen, requests.HTTPError, giveup=pieces.giveup, jitter=None)
    def fetch(session: requests.Session, method: str) -> requests.Response:
        response = session.request(method, fault_server.url + "/down")
        response.raise_for_status()
        return response

    with requests.Session() as session:
        with pytest.raises(requests.HTTPError) as get_error:
            fetch(session, "GET")
        with pytest.raises(requests.HTTPError):
            fetch(session, "POST")
    assert [a.method for a in fault_server.arrivals("/down")] == ["GET"] * 5 + ["POST"]
    assert get_error.value.__notes__[0].endswith("#5 503: give-up (attempts-exhausted)")


def test_async_functions_on_asyncio(fault_server: FaultServer) -> None:
    """The pieces work for backoff's async loop too (httpx.AsyncClient)."""
    fault_server.script("/flaky", [Reply(429, retry_after=0), Reply(200)])
    pieces = forbear_backoff.Pieces(policy=FAST)

    async def main() -> int:
        async with httpx.AsyncClient() as client:

            @backoff.on_predicate(pieces.wait_gen, pieces.retryable, jitter=None)
            async def fetch() -> httpx.Response:
                return await client.get(fault_server.url + "/flaky")

            return (await fetch()).status_code

    assert asyncio.run(main()) == 200
    assert [a.status for a in fault_server.arrivals("/flaky")] == [429, 200]


def test_predicates_on_values_forbear_cannot_read() -> None:
    """Anything not from httpx, requests or aiohttp is never retried."""
    pieces = forbear_backoff.Pieces()
    assert pieces.retryable({"status": 503}) is False
    assert pieces.retryable(None) is False
    assert pieces.giveup(ValueError("no")) is True
    assert pieces.policy == Policy()
    assert repr(pieces) == f"Pieces(policy={Policy()!r}, method=None)"
