"""backoff's own handlers and options under forbear: decisions in details, jitter kept off.

Handlers receive the core's `forbear.Decision` as ``details["decision"]``; backoff's jitter
never shortens a server-named wait; options forbear owns are refused with a pointer to the
`forbear.Policy` field that does the job.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import logging
import time
from typing import Any

import aiohttp
import backoff
import httpx
import pytest
import requests
from backoff_harness import FAST

import forbear_backoff
from forbear import Action, Event, HostGate, Policy, TokenSource
from forbear_testing import FaultServer, Reply

EXACT = dataclasses.replace(FAST, retry_after_jitter=0.0)


def test_handlers_receive_each_decision(fault_server: FaultServer) -> None:
    """on_backoff sees each RETRY with the wait slept; on_success sees the final RETURN."""
    fault_server.script("/flaky", [Reply(503), Reply(429, retry_after=0), Reply(200)])
    backoffs: list[dict[str, Any]] = []
    successes: list[dict[str, Any]] = []

    @forbear_backoff.on_response(
        policy=FAST, on_backoff=backoffs.append, on_success=successes.append
    )
    def fetch(client: httpx.Client) -> httpx.Response:
        return client.get(fault_server.url + "/flaky")

    with httpx.Client() as client:
        assert fetch(client).status_code == 200
    assert [(d["decision"].reason, d["decision"].status) for d in backoffs] == [
        ("backoff", 503),
        ("retry-after", 429),
    ]
    assert all(d["wait"] == d["decision"].wait for d in backoffs)
    assert [d["tries"] for d in backoffs] == [1, 2]
    (success,) = successes
    assert success["decision"].action is Action.RETURN
    assert (success["decision"].reason, success["decision"].attempt) == ("success", 3)
    assert success["target"].__name__ == "fetch"


def test_on_giveup_receives_the_give_up_decision(fault_server: FaultServer) -> None:
    """When attempts run out, on_giveup (not on_success) gets the GIVE_UP decision."""
    fault_server.always("/down", Reply(503))
    giveups: list[dict[str, Any]] = []
    successes: list[dict[str, Any]] = []

    @forbear_backoff.on_response(policy=FAST, on_giveup=giveups.append, on_success=successes.append)
    def fetch(session: requests.Session) -> requests.Response:
        return session.get(fault_server.url + "/down")

    with requests.Session() as session:
        assert fetch(session).status_code == 503
    (giveup,) = giveups
    assert giveup["decision"].action is Action.GIVE_UP
    assert giveup["decision"].reason == "attempts-exhausted"
    assert giveup["tries"] == 5
    assert successes == []
    assert len(fault_server.arrivals("/down")) == 5


def test_on_exception_handlers_see_return_and_no_decision(fault_server: FaultServer) -> None:
    """on_exception: a 404 ends in on_giveup with its RETURN; a returned 200 in on_success."""
    fault_server.always("/missing", Reply(404))
    giveups: list[dict[str, Any]] = []
    successes: list[dict[str, Any]] = []

    @forbear_backoff.on_exception(
        httpx.HTTPError, policy=FAST, on_giveup=giveups.append, on_success=successes.append
    )
    def fetch(client: httpx.Client, path: str) -> httpx.Response:
        return client.get(fault_server.url + path).raise_for_status()

    with httpx.Client() as client:
        with pytest.raises(httpx.HTTPStatusError):
            fetch(client, "/missing")
        assert fetch(client, "/fine").status_code == 200
    assert [(d["decision"].action, d["decision"].reason) for d in giveups] == [
        (Action.RETURN, "not-retryable")
    ]
    # The returned response ends its call's flow too: on_success sees that RETURN.
    assert [(d["decision"].action, d["decision"].reason) for d in successes] == [
        (Action.RETURN, "success")
    ]


def test_async_handlers_are_awaited_and_can_read_the_discarded_response(
    fault_server: FaultServer,
) -> None:
    """Async handlers run; on_backoff may still read the retried response before its release."""
    fault_server.script("/flaky", [Reply(503, body=b"busy"), Reply(200, body=b"fine")])
    bodies: list[bytes] = []

    async def on_backoff(details: dict[str, Any]) -> None:
        bodies.append(await details["value"].read())

    async def main() -> bytes:
        async with aiohttp.ClientSession() as session:

            @forbear_backoff.on_response(policy=FAST, on_backoff=on_backoff)
            async def fetch() -> aiohttp.ClientResponse:
                return await session.get(fault_server.url + "/flaky")

            async with await fetch() as response:
                return await response.read()

    assert asyncio.run(main()) == b"fine"
    assert bodies == [b"busy"]


def test_backoff_default_jitter_would_shorten_retry_after(fault_server: FaultServer) -> None:
    """Plain backoff applies full jitter to the wait it is given: a Retry-After of 1 s shrinks.

    This is what `on_response` guards against; the next test shows it does.
    """
    fault_server.script("/limited", [Reply(429, retry_after=1), Reply(200)])
    pieces = forbear_backoff.Pieces(policy=EXACT)
    waits: list[float] = []

    @backoff.on_predicate(
        pieces.wait_gen, pieces.retryable, on_backoff=lambda d: waits.append(d["wait"])
    )
    def fetch(client: httpx.Client) -> httpx.Response:
        return client.get(fault_server.url + "/limited")

    with httpx.Client() as client:
        assert fetch(client).status_code == 200
    (wait,) = waits
    assert wait < 1.0


def test_retry_after_is_not_shortened_by_backoff_jitter(fault_server: FaultServer) -> None:
    """Through `on_response` backoff sleeps the full Retry-After: its jitter is off."""
    fault_server.script("/limited", [Reply(429, retry_after=1), Reply(200)])
    waits: list[float] = []

    @forbear_backoff.on_response(policy=EXACT, on_backoff=lambda d: waits.append(d["wait"]))
    def fetch(client: httpx.Client) -> httpx.Response:
        return client.get(fault_server.url + "/limited")

    with httpx.Client() as client:
        assert fetch(client).status_code == 200
    assert waits == [1.0]
    first, second = fault_server.arrivals("/limited")
    assert second.time - first.time >= 1.0


@pytest.mark.parametrize(
    ("option", "value", "hint"),
    [
        ("jitter", backoff.full_jitter, "shorten a Retry-After"),
        ("max_tries", 3, "Policy(max_attempts=...)"),
        ("max_time", 10, "Policy(deadline=...)"),
        ("giveup", bool, "Pieces"),
        ("predicate", bool, "Pieces"),
        ("base", 3, "unexpected keyword argument 'base'"),
    ],
)
def test_options_forbear_owns_are_refused(option: str, value: Any, hint: str) -> None:
    """backoff options that would override forbear's decisions raise TypeError with a hint."""
    with pytest.raises(TypeError) as for_responses:
        forbear_backoff.on_response(policy=FAST, **{option: value})
    with pytest.raises(TypeError) as for_exceptions:
        forbear_backoff.on_exception(ValueError, policy=FAST, **{option: value})
    assert hint in str(for_responses.value)
    assert hint in str(for_exceptions.value)


def test_jitter_none_and_logging_options_are_accepted() -> None:
    """``jitter=None`` is forbear's own choice; backoff's logging options pass through."""
    forbear_backoff.on_response(policy=FAST, jitter=None, logger=None, backoff_log_level=10)
    forbear_backoff.on_exception(
        ValueError, policy=FAST, raise_on_giveup=False, giveup_log_level=10
    )
    with pytest.raises(TypeError, match="raise_on_giveup"):
        forbear_backoff.on_response(policy=FAST, raise_on_giveup=False)
    with pytest.raises(TypeError, match="on_backoff must be a callable"):
        forbear_backoff.on_response(policy=FAST, on_backoff=42)


def test_bad_options_are_refused() -> None:
    """A policy that is not a Policy, a method that is not a method name, a bad origin."""
    with pytest.raises(TypeError, match=r"forbear\.Policy"):
        forbear_backoff.on_response(policy="fast")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="HTTP method"):
        forbear_backoff.on_response(method="not a method")
    with pytest.raises(ValueError, match="origin"):
        forbear_backoff.on_response(origin="nowhere")
    with pytest.raises(TypeError):
        forbear_backoff.on_response(retrier=None)


def test_on_event_sees_each_decision(fault_server: FaultServer) -> None:
    """``on_event`` gets each decision, with the URL's query left out."""
    fault_server.always("/down", Reply(503))
    events: list[Event] = []

    @forbear_backoff.on_response(
        policy=Policy(max_attempts=2, backoff=FAST.backoff), on_event=events.append
    )
    def fetch(client: httpx.Client) -> httpx.Response:
        return client.get(fault_server.url + "/down?key=secret")

    with httpx.Client() as client:
        assert fetch(client).status_code == 503
    assert [(e.action, e.reason) for e in events] == [
        (Action.RETRY, "backoff"),
        (Action.GIVE_UP, "attempts-exhausted"),
    ]
    assert {e.url for e in events} == {fault_server.url + "/down"}
    assert len(fault_server.arrivals("/down")) == 2


def test_logs_carry_no_secrets(fault_server: FaultServer, caplog: pytest.LogCaptureFixture) -> None:
    """forbear logs each decision, redacted; backoff's own log lines (quoting URLs) are off."""
    fault_server.always("/down", Reply(503, headers={"Set-Cookie": "session=cookie-secret"}))
    caplog.set_level(logging.DEBUG, logger="forbear")
    caplog.set_level(logging.DEBUG, logger="backoff")

    @forbear_backoff.on_exception(
        httpx.HTTPStatusError, policy=dataclasses.replace(FAST, max_attempts=2)
    )
    def fetch(client: httpx.Client) -> httpx.Response:
        return client.get(fault_server.url + "/down?api_key=key-secret").raise_for_status()

    with httpx.Client() as client, pytest.raises(httpx.HTTPStatusError) as caught:
        fetch(client)
    assert "key-secret" in str(caught.value)  # httpx's own message; forbear adds nothing to it
    assert "secret" not in "".join(caught.value.__notes__)
    records = [r for r in caplog.records if r.name in ("forbear", "backoff")]
    assert [(r.name, r.levelno) for r in records] == [
        ("forbear", logging.INFO),
        ("forbear", logging.DEBUG),
    ]
    assert all("secret" not in r.getMessage() for r in records)


def test_a_value_that_is_not_a_response_is_returned_at_once() -> None:
    """Anything but an httpx, requests or aiohttp response is the answer: one call."""
    calls: list[int] = []
    successes: list[dict[str, Any]] = []

    @forbear_backoff.on_response(policy=FAST, on_success=successes.append)
    def compute() -> dict[str, int]:
        calls.append(1)
        return {"status": 503}

    assert compute() == {"status": 503}
    assert calls == [1]
    assert successes[0]["decision"] is None


def test_an_exception_forbear_cannot_read_is_reraised_at_once() -> None:
    """An exception that is no client library's is raised after one call, without a note."""
    calls: list[int] = []

    @forbear_backoff.on_exception(ValueError, policy=FAST)
    def parse() -> None:
        calls.append(1)
        raise ValueError("bad json")

    with pytest.raises(ValueError, match="bad json") as caught:
        parse()
    assert calls == [1]
    assert not hasattr(caught.value, "__notes__")


def test_the_last_exception_is_reraised_unchanged(fault_server: FaultServer) -> None:
    """The exception raised is the very one the function raised last, with the history noted."""
    fault_server.always("/down", Reply(502))
    raised: list[BaseException] = []

    @forbear_backoff.on_exception(requests.HTTPError, policy=FAST)
    def fetch(session: requests.Session) -> requests.Response:
        response = session.get(fault_server.url + "/down")
        try:
            response.raise_for_status()
        except requests.HTTPError as exc:
            raised.append(exc)
            raise
        return response

    with requests.Session() as session, pytest.raises(requests.HTTPError) as caught:
        fetch(session)
    assert len(raised) == 5
    assert caught.value is raised[-1]
    assert caught.value.__notes__[0].endswith("#5 502: give-up (attempts-exhausted)")
    assert all(not hasattr(exc, "__notes__") for exc in raised[:-1])


def test_raise_on_giveup_false_returns_none(fault_server: FaultServer) -> None:
    """backoff's ``raise_on_giveup=False`` still works: the call returns None."""
    fault_server.always("/down", Reply(503))

    @forbear_backoff.on_exception(httpx.HTTPStatusError, policy=FAST, raise_on_giveup=False)
    def fetch(client: httpx.Client) -> httpx.Response:
        return client.get(fault_server.url + "/down").raise_for_status()

    with httpx.Client() as client:
        assert fetch(client) is None
    assert len(fault_server.arrivals("/down")) == 5


def test_decorated_functions_keep_their_identity() -> None:
    """Name and docstring survive; an async function stays a coroutine function."""

    @forbear_backoff.on_response()
    def fetch() -> None:
        """Fetch it."""

    @forbear_backoff.on_exception(httpx.HTTPError)
    async def afetch() -> None:
        """Fetch it later."""

    assert (fetch.__name__, fetch.__doc__) == ("fetch", "Fetch it.")
    assert (afetch.__name__, afetch.__doc__) == ("afetch", "Fetch it later.")
    assert inspect.iscoroutinefunction(afetch)
    assert not inspect.iscoroutinefunction(fetch)


def test_first_attempts_wait_for_the_gate(fault_server: FaultServer) -> None:
    """A 503 naming a wait pauses the origin: the next call's first attempt waits it out."""
    fault_server.script("/paused", [Reply(503, retry_after=1), Reply(200)])
    once = dataclasses.replace(FAST, max_attempts=1)

    @forbear_backoff.on_response(policy=once, gate=HostGate())
    def fetch(client: httpx.Client) -> httpx.Response:
        return client.get(fault_server.url + "/paused")

    with httpx.Client() as client:
        assert fetch(client).status_code == 503
        started = time.monotonic()
        assert fetch(client).status_code == 200  # held: it goes where the last call went
    assert time.monotonic() - started >= 0.9


def test_a_token_is_exchanged_once_on_a_401(fault_server: FaultServer) -> None:
    """The function sends ``headers()``; an expired token is re-exchanged once, then it passes."""
    fault_server.require_token("/private")
    source = TokenSource(fault_server.issue_token, origins=[fault_server.url])
    source.get_sync()
    fault_server.expire_tokens()

    @forbear_backoff.on_response(policy=FAST, token=source)
    async def fetch(client: httpx.AsyncClient) -> httpx.Response:
        return await client.get(fault_server.url + "/private", headers=forbear_backoff.headers())

    async def main() -> int:
        async with httpx.AsyncClient() as client:
            return (await fetch(client)).status_code

    assert asyncio.run(main()) == 200
    assert [a.status for a in fault_server.arrivals("/private")] == [401, 200]
    assert fault_server.tokens_issued == 2
