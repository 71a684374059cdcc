"""The decorators against the real fault server, for httpx, requests, httpx async and aiohttp.

Every test runs for each client library and for both decorators (`on_response` returns the
last response, `on_exception` re-raises the last ``raise_for_status()`` error), and counts the
requests that reached the server from its arrivals log.
"""

from __future__ import annotations

import re
from email.utils import parsedate_to_datetime
from typing import Any

from backoff_harness import Client

from forbear_testing import FaultServer, Reply


def notes(result: Any) -> list[str]:
    return list(getattr(result, "__notes__", []))


def test_429_retry_after_seconds_is_waited_in_full(
    client: Client, mode: str, fault_server: FaultServer
) -> None:
    """A 429 with ``Retry-After: 1`` is retried after at least one second, then 200 returned."""
    fault_server.script("/limited", [Reply(429, retry_after=1), Reply(200)])
    waits: list[float] = []
    result = client.call(
        mode, "GET", fault_server.url + "/limited", on_backoff=lambda d: waits.append(d["wait"])
    )
    assert result == 200
    first, second = fault_server.arrivals("/limited")
    assert second.time - first.time >= 1.0
    assert len(waits) == 1 and 1.0 <= waits[0] <= 1.1 + 0.05


def test_429_retry_after_http_date_is_waited_in_full(
    client: Client, mode: str, fault_server: FaultServer
) -> None:
    """A 429 whose Retry-After is an HTTP-date is retried only once that moment has passed."""
    fault_server.script("/dated", [Reply(429, retry_after_date=0.5), Reply(200)])
    result = client.call(mode, "GET", fault_server.url + "/dated")
    assert result == 200
    first, second = fault_server.arrivals("/dated")
    assert first.retry_after is not None
    moment = parsedate_to_datetime(first.retry_after).timestamp()
    assert second.wall >= moment
    assert second.wall - first.wall < 3.0  # the date (at most 1.5 s away), not some other wait


def test_503_is_backed_off_and_capped_at_five_calls(
    client: Client, mode: str, fault_server: FaultServer
) -> None:
    """A 503 that never clears is sent five times in all, then the last answer is handed back."""
    fault_server.always("/down", Reply(503))
    result = client.call(mode, "GET", fault_server.url + "/down")
    assert client.status(result) == 503
    assert [a.status for a in fault_server.arrivals("/down")] == [503] * 5
    assert client.calls == 5
    if mode == "on_exception":
        assert isinstance(result, client.status_error)
        (note,) = notes(result)
        assert re.fullmatch(
            r"forbear: GET made 5 send\(s\): "
            r"(#[1-4] 503: retry \(backoff\) after 0\.0[0-5][0-9]s; ){4}",
            note.split("#5")[0],
        )
        assert "#5 503: give-up (attempts-exhausted)" in notes(result)[0]


def test_503_then_200_returns_the_200(client: Client, mode: str, fault_server: FaultServer) -> None:
    """Two 503s then a 200: three calls, and the 200 is the answer."""
    fault_server.script("/flaky", [Reply(503), Reply(503), Reply(200, body=b"fine")])
    assert client.call(mode, "GET", fault_server.url + "/flaky") == 200
    assert [a.status for a in fault_server.arrivals("/flaky")] == [503, 503, 200]


def test_post_503_is_not_retried(client: Client, mode: str, fault_server: FaultServer) -> None:
    """A POST answered 503 may have been acted on: it is handed back after one call."""
    fault_server.always("/orders", Reply(503))
    result = client.call(mode, "POST", fault_server.url + "/orders")
    assert client.status(result) == 503
    assert [a.method for a in fault_server.arrivals("/orders")] == ["POST"]
    if mode == "on_exception":
        assert notes(result) == ["forbear: POST made 1 send(s): #1 503: return (not-safe-to-retry)"]


def test_post_with_idempotency_key_503_is_retried(
    client: Client, mode: str, fault_server: FaultServer
) -> None:
    """A POST carrying an Idempotency-Key is safe to re-send: its 503 is retried."""
    fault_server.script("/orders", [Reply(503), Reply(201)])
    result = client.call(
        mode, "POST", fault_server.url + "/orders", headers={"Idempotency-Key": "order-17"}
    )
    assert result == 201
    arrivals = fault_server.arrivals("/orders")
    assert [a.header("idempotency-key") for a in arrivals] == ["order-17", "order-17"]


def test_post_429_is_retried(client: Client, mode: str, fault_server: FaultServer) -> None:
    """A 429 means the server refused the request unprocessed: even a POST is re-sent."""
    fault_server.script("/orders", [Reply(429, retry_after=0), Reply(201)])
    assert client.call(mode, "POST", fault_server.url + "/orders") == 201
    assert [a.status for a in fault_server.arrivals("/orders")] == [429, 201]


def test_4xx_is_returned_at_once(client: Client, mode: str, fault_server: FaultServer) -> None:
    """A 404 is the answer: one call, handed back (or raised) at once."""
    fault_server.always("/missing", Reply(404))
    result = client.call(mode, "GET", fault_server.url + "/missing")
    assert client.status(result) == 404
    assert len(fault_server.arrivals("/missing")) == 1
    if mode == "on_exception":
        assert isinstance(result, client.status_error)
        assert notes(result) == ["forbear: GET made 1 send(s): #1 404: return (not-retryable)"]


def test_retry_after_longer_than_max_wait_gives_up_at_once(
    client: Client, mode: str, fault_server: FaultServer
) -> None:
    """A server asking for an hour gets a prompt answer: the 429 is handed back, no wait."""
    fault_server.always("/slow", Reply(429, retry_after=3600))
    result = client.call(mode, "GET", fault_server.url + "/slow")
    assert client.status(result) == 429
    assert len(fault_server.arrivals("/slow")) == 1


def test_a_status_not_retried_after_retries_carries_the_history(
    client: Client, fault_server: FaultServer
) -> None:
    """A 503 then a 404: the 404 is raised at once, its note telling the whole story."""
    fault_server.script("/gone", [Reply(503), Reply(404)])
    result = client.call("on_exception", "GET", fault_server.url + "/gone")
    assert client.status(result) == 404
    assert [a.status for a in fault_server.arrivals("/gone")] == [503, 404]
    (note,) = notes(result)
    assert re.fullmatch(
        r"forbear: GET made 2 send\(s\): #1 503: retry \(backoff\) after 0\.0[0-9]{2}s; "
        r"#2 404: return \(not-retryable\)",
        note,
    )
