"""Transport errors through `forbear_backoff.on_exception`, judged by their kind.

Real connection faults from `forbear.testing.RawFaults` and a refused port, for every client
library. Whether an error is retried depends on whether the request may have reached the
server (the core's rule); these tests check each library's exceptions are read that way.
"""

from __future__ import annotations

import asyncio
import dataclasses

import aiohttp
import httpx
import pytest
import requests
from backoff_harness import FAST, Client

import forbear_backoff
from forbear_testing import RawFaults, RawMode

CONNECT_ERRORS: dict[str, type[Exception]] = {
    "httpx": httpx.ConnectError,
    "httpx-async": httpx.ConnectError,
    "requests": requests.ConnectionError,
    "aiohttp": aiohttp.ClientConnectorError,
}


def method_option(client: Client, method: str) -> dict[str, str]:
    """What some errors do not name (aiohttp's connection errors, requests' cut-short body)."""
    return {"method": method} if client.name in ("aiohttp", "requests") else {}


def test_refused_connection_is_retried_and_reraised(client: Client, refused_port: int) -> None:
    """A refused connection never reached the server: five calls, then the client's own error."""
    url = f"http://127.0.0.1:{refused_port}/x"
    result = client.call("on_exception", "POST", url, **method_option(client, "POST"))
    assert isinstance(result, CONNECT_ERRORS[client.name])
    assert client.calls == 5
    (note,) = result.__notes__
    assert note.startswith("forbear: POST made 5 send(s): #1 connect: retry (backoff) after ")
    assert note.endswith("#5 connect: give-up (attempts-exhausted)")


@pytest.mark.parametrize(("method", "sends"), [("GET", 5), ("POST", 1)])
def test_reset_after_the_request_is_retried_only_when_safe(
    client: Client, raw_faults: RawFaults, method: str, sends: int
) -> None:
    """A reset after the request was read may have had an effect: GET is retried, POST is not."""
    raw_faults.mode = RawMode.RESET_AFTER_REQUEST
    result = client.call(
        "on_exception", method, raw_faults.url + "/x", **method_option(client, method)
    )
    assert isinstance(result, client.errors)
    assert client.calls == sends
    # aiohttp itself re-sends an idempotent request once after a reset, inside each call.
    per_call = 2 if client.name == "aiohttp" and method == "GET" else 1
    assert len(raw_faults.arrivals()) == sends * per_call
    assert "disconnect" in result.__notes__[0]


def test_half_response_is_retried_for_get(client: Client, raw_faults: RawFaults) -> None:
    """A body cut short after the headers is a transport error: a GET is sent five times."""
    raw_faults.mode = RawMode.HALF_RESPONSE
    result = client.call(
        "on_exception", "GET", raw_faults.url + "/x", **method_option(client, "GET")
    )
    assert isinstance(result, client.errors)
    assert len(raw_faults.arrivals()) == 5
    assert result.__notes__[0].endswith("give-up (attempts-exhausted)")


@pytest.mark.parametrize(("method", "sends"), [("GET", 3), ("POST", 1)])
def test_read_timeout_is_retried_only_when_safe(
    client: Client, raw_faults: RawFaults, method: str, sends: int
) -> None:
    """No answer in time: a GET is retried (three attempts here), a POST is not."""
    raw_faults.mode = RawMode.NEVER_ANSWER
    result = client.call(
        "on_exception",
        method,
        raw_faults.url + "/x",
        policy=dataclasses.replace(FAST, max_attempts=3),
        timeout=0.2,
        **method_option(client, method),
    )
    assert isinstance(result, client.errors)
    assert len(raw_faults.arrivals()) == sends
    assert "read_timeout" in result.__notes__[0]


def test_aiohttp_post_dropped_after_sending_is_sent_once(raw_faults: RawFaults) -> None:
    """aiohttp's errors name no method: unknown is not safe to re-send, so one arrival."""
    raw_faults.mode = RawMode.RESET_AFTER_REQUEST
    client = Client("aiohttp")
    result = client.call("on_exception", "POST", raw_faults.url + "/x")
    assert isinstance(result, aiohttp.ClientOSError)
    assert len(raw_faults.arrivals()) == 1
    assert client.calls == 1


def test_a_declared_method_judges_what_names_none(raw_faults: RawFaults) -> None:
    """``method="GET"`` declares what the function sends: its resets are retried."""
    raw_faults.mode = RawMode.RESET_AFTER_REQUEST
    client = Client("aiohttp")
    result = client.call("on_exception", "GET", raw_faults.url + "/x", method="GET")
    assert isinstance(result, aiohttp.ClientOSError)
    assert client.calls == 5
    assert result.__notes__[0].startswith("forbear: GET made 5 send(s)")


def test_aiohttp_total_timeout_is_not_retried(raw_faults: RawFaults) -> None:
    """A bare TimeoutError (aiohttp's ClientTimeout.total) is the caller's deadline: raised."""
    raw_faults.mode = RawMode.NEVER_ANSWER
    calls = 0

    async def main() -> None:
        nonlocal calls
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=0.2)) as session:

            @forbear_backoff.on_exception((aiohttp.ClientError, TimeoutError), policy=FAST)
            async def fetch() -> bytes:
                nonlocal calls
                calls += 1
                async with session.get(raw_faults.url + "/x") as response:
                    return await response.read()

            await fetch()

    with pytest.raises(TimeoutError):
        asyncio.run(main())
    assert calls == 1
    assert len(raw_faults.arrivals()) == 1
