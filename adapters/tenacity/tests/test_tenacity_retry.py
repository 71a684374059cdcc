"""forbear_tenacity against the real fault server, with httpx, requests, httpx async, aiohttp."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any

import aiohttp
import httpx
import pytest
import requests
import tenacity

import forbear_tenacity
from forbear import Backoff, HostGate, Policy, TokenSource
from forbear_testing import FaultServer, RawFaults, RawMode, Reply

FAST = Policy(backoff=Backoff(initial=0.01, max=0.05))
CLIENTS = ("httpx", "requests", "httpx-async", "aiohttp")


def call(name: str, verb: str, url: str, *, raising: bool = False, **options: Any) -> Any:
    """Make one request through a function decorated by ``forbear_tenacity.retry``.

    Returns ``(status or exception, responses the function returned)``.
    """
    options.setdefault("policy", FAST)
    seen: list[Any] = []
    decorate = forbear_tenacity.retry(**options)
    try:
        if name == "httpx":
            with httpx.Client(timeout=5) as client:

                @decorate
                def fetch() -> httpx.Response:
                    response = client.request(verb, url, headers=forbear_tenacity.headers())
                    seen.append(response)
                    return response.raise_for_status() if raising else response

                return fetch().status_code, seen
        if name == "requests":
            with requests.Session() as session:

                @decorate
                def fetch_requests() -> requests.Response:
                    response = session.request(
                        verb, url, headers=forbear_tenacity.headers(), timeout=5
                    )
                    seen.append(response)
                    if raising:
                        response.raise_for_status()
                    return response

                return fetch_requests().status_code, seen
        return asyncio.run(_call_async(name, verb, url, decorate, raising, seen)), seen
    except (httpx.HTTPError, requests.RequestException, aiohttp.ClientError) as exc:
        return exc, seen


async def _call_async(
    name: str, verb: str, url: str, decorate: Any, raising: bool, seen: list[Any]
) -> int:
    if name == "httpx-async":
        async with httpx.AsyncClient(timeout=5) as client:

            @decorate
            async def fetch() -> httpx.Response:
                response = await client.request(verb, url, headers=forbear_tenacity.headers())
                seen.append(response)
                return response.raise_for_status() if raising else response

            return (await fetch()).status_code
    async with aiohttp.ClientSession() as session:

        @decorate
        async def fetch_aiohttp() -> aiohttp.ClientResponse:
            response = await session.request(verb, url, headers=forbear_tenacity.headers())
            seen.append(response)
            if raising:
                response.raise_for_status()
            return response

        response = await fetch_aiohttp()
        response.release()
        return response.status


@pytest.mark.parametrize("name", CLIENTS)
def test_retries_until_the_answer(name: str, fault_server: FaultServer) -> None:
    """Two 503s then a 200: three sends, the 200 handed back, the 503s released."""
    fault_server.script("/flaky", [Reply(503), Reply(503), Reply(200)])
    status, seen = call(name, "GET", fault_server.url + "/flaky")
    assert status == 200
    assert [a.status for a in fault_server.arrivals("/flaky")] == [503, 503, 200]
    if name.startswith("httpx"):
        assert [r.is_closed for r in seen[:-1]] == [True, True]


@pytest.mark.parametrize("name", CLIENTS)
def test_gives_up_with_the_clients_own_exception(name: str, fault_server: FaultServer) -> None:
    """Five 503s: the client's own status error (never RetryError), the history as a note."""
    fault_server.always("/down", Reply(503))
    result, _ = call(name, "GET", fault_server.url + "/down", raising=True)
    assert not isinstance(result, tenacity.RetryError)
    assert isinstance(result, (httpx.HTTPStatusError, requests.HTTPError, aiohttp.ClientError))
    assert len(fault_server.arrivals("/down")) == 5
    (note,) = result.__notes__
    assert note.startswith("forbear: GET made 5 send(s)")
    assert note.endswith("give-up (attempts-exhausted)")


@pytest.mark.parametrize("name", CLIENTS)
def test_a_post_answered_503_is_not_retried(name: str, fault_server: FaultServer) -> None:
    """A POST without an Idempotency-Key answered 503 may have had its effect: one send."""
    fault_server.always("/orders", Reply(503))
    status, _ = call(name, "POST", fault_server.url + "/orders")
    assert status == 503
    assert len(fault_server.arrivals("/orders")) == 1


def test_retry_after_is_a_floor(fault_server: FaultServer) -> None:
    """A 429 with Retry-After: 1 is waited in full before the next send."""
    fault_server.script("/limited", [Reply(429, retry_after=1), Reply(200)])
    started = time.monotonic()
    status, _ = call("httpx", "GET", fault_server.url + "/limited", gate=None)
    assert status == 200
    assert time.monotonic() - started >= 1.0


def test_aiohttp_post_dropped_after_sending_is_sent_once(raw_faults: RawFaults) -> None:
    """aiohttp's errors name no method: an unknown method is not re-sent, one arrival."""
    raw_faults.mode = RawMode.RESET_AFTER_REQUEST
    result, _ = call("aiohttp", "POST", raw_faults.url + "/x")
    assert isinstance(result, aiohttp.ClientOSError)
    assert len(raw_faults.arrivals()) == 1


def test_a_declared_method_judges_what_names_none(raw_faults: RawFaults) -> None:
    """``method="GET"`` declares what the function sends: aiohttp's resets are retried."""
    raw_faults.mode = RawMode.RESET_AFTER_REQUEST
    result, _ = call("aiohttp", "GET", raw_faults.url + "/x", method="GET")
    assert isinstance(result, aiohttp.ClientOSError)
    assert result.__notes__[0].startswith("forbear: GET made 5 send(s)")


@pytest.mark.parametrize("name", CLIENTS)
def test_a_token_is_exchanged_once_on_a_401(name: str, fault_server: FaultServer) -> None:
    """The function sends ``headers()``; an expired token is re-exchanged once, then it passes."""
    fault_server.require_token("/private")
    source = TokenSource(fault_server.issue_token, origins=[fault_server.url])
    source.get_sync()
    fault_server.expire_tokens()
    status, _ = call(name, "GET", fault_server.url + "/private", token=source)
    assert status == 200
    assert [a.status for a in fault_server.arrivals("/private")] == [401, 200]
    assert fault_server.tokens_issued == 2


def test_first_attempts_wait_for_the_gate(fault_server: FaultServer) -> None:
    """A 503 naming a wait pauses the origin: the next call's first attempt waits it out."""
    fault_server.script("/paused", [Reply(503, retry_after=1), Reply(200)])
    once = dataclasses.replace(FAST, max_attempts=1)

    @forbear_tenacity.retry(policy=once, gate=HostGate())
    def fetch(client: httpx.Client) -> httpx.Response:
        return client.get(fault_server.url + "/paused")

    with httpx.Client() as client:
        assert fetch(client).status_code == 503
        started = time.monotonic()
        assert fetch(client).status_code == 200  # held: it goes where the last call went
    assert time.monotonic() - started >= 0.9


def test_a_declared_origin_holds_the_first_call(fault_server: FaultServer) -> None:
    """``origin=`` says where a function's calls go: even its first call waits for the gate."""
    fault_server.script("/paused", [Reply(503, retry_after=1), Reply(200)])
    gate = HostGate()
    once = dataclasses.replace(FAST, max_attempts=1)
    assert call("httpx", "GET", fault_server.url + "/paused", policy=once, gate=gate)[0] == 503
    started = time.monotonic()
    status, _ = call(
        "httpx", "GET", fault_server.url + "/paused", gate=gate, origin=fault_server.url
    )
    assert status == 200
    assert time.monotonic() - started >= 0.9


def test_tenacity_options_forbear_owns_are_refused() -> None:
    """stop, wait, retry and reraise are refused with the Policy field to use instead."""
    with pytest.raises(TypeError, match="max_attempts"):
        forbear_tenacity.retry(stop=tenacity.stop_after_attempt(3))
    with pytest.raises(TypeError, match="Backoff"):
        forbear_tenacity.retry(wait=tenacity.wait_fixed(1))
    with pytest.raises(TypeError, match="unexpected"):
        forbear_tenacity.retry(tries=3)


def test_strategies_in_your_own_retrying(fault_server: FaultServer) -> None:
    """``Strategies.options()`` in a plain tenacity.Retrying loop: retried as forbear decides."""
    fault_server.script("/flaky", [Reply(503), Reply(200)])
    strategies = forbear_tenacity.Strategies(policy=FAST)
    with httpx.Client() as client:
        for attempt in tenacity.Retrying(**strategies.options()):
            with attempt:
                response = client.get(fault_server.url + "/flaky")
            if not attempt.retry_state.outcome.failed:  # type: ignore[union-attr]
                attempt.retry_state.set_result(response)
    assert [a.status for a in fault_server.arrivals("/flaky")] == [503, 200]


def test_a_wait_or_stop_of_tenacitys_own_mixed_in_is_refused(fault_server: FaultServer) -> None:
    """tenacity's own stop or wait next to forbear's strategies: TypeError naming the field."""
    strategies = forbear_tenacity.Strategies(policy=FAST)
    mixed = {**strategies.options(), "stop": tenacity.stop_after_attempt(2)}
    with pytest.raises(TypeError, match="max_attempts"):
        tenacity.Retrying(**mixed)(lambda: None)
    mixed = {**strategies.options(), "wait": tenacity.wait_fixed(1) + strategies.wait}
    with pytest.raises(TypeError, match="Backoff"):
        tenacity.Retrying(**mixed)(lambda: None)
