"""`RetryMiddleware` on aiohttp sessions and requests, against the loopback fault servers."""

from __future__ import annotations

import asyncio
import io
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest

import forbear
from forbear import Backoff, Event, HostGate, Policy, RetryBudget, TokenExchangeError, TokenSource
from forbear_aiohttp import RetryMiddleware
from forbear_testing import FaultServer, RawFaults, RawMode, Reply, serve

pytestmark = pytest.mark.anyio

FAST = Policy(backoff=Backoff(initial=0.01, max=0.05))
MIB = 1 << 20


def notes(exc: BaseException) -> list[str]:
    """The notes added to an exception."""
    return list(getattr(exc, "__notes__", []))


def middleware(**options: Any) -> RetryMiddleware:
    """A middleware with the fast policy (plus ``options``)."""
    options.setdefault("policy", FAST)
    return RetryMiddleware(**options)


def session(*, connector: aiohttp.BaseConnector | None = None, **options: Any) -> Any:
    """A session whose only middleware retries with the fast policy (plus ``options``)."""
    timeout = options.pop("timeout", aiohttp.ClientTimeout(total=30))
    trace_configs = options.pop("trace_configs", None)
    return aiohttp.ClientSession(
        middlewares=[middleware(**options)],
        connector=connector,
        timeout=timeout,
        trace_configs=trace_configs,
    )


def connection_counter() -> tuple[aiohttp.TraceConfig, list[str]]:
    """A trace config that notes every new TCP connection, and the list it notes them in."""
    opened: list[str] = []
    trace = aiohttp.TraceConfig()

    async def on_create(*_: Any) -> None:
        opened.append("connect")

    trace.on_connection_create_end.append(on_create)
    return trace, opened


# -- mounting ------------------------------------------------------------------------------


async def test_session_middleware_retries_503_then_returns_200(fault_server: FaultServer) -> None:
    """On the session, a 503 is retried and the following 200 is returned."""
    fault_server.script("/a", [Reply(503)])
    async with session() as http, http.get(fault_server.url + "/a") as response:
        assert response.status == 200
        assert await response.read() == b"ok"
    assert [a.status for a in fault_server.arrivals("/a")] == [503, 200]


async def test_per_request_middlewares_retry_only_that_request(fault_server: FaultServer) -> None:
    """``middlewares=[...]`` on one request retries it; the session's other requests are bare."""
    fault_server.script("/p", [Reply(503), Reply(503)])
    async with aiohttp.ClientSession() as http:
        async with http.get(fault_server.url + "/p") as bare:
            assert bare.status == 503
        async with http.get(fault_server.url + "/p", middlewares=[middleware()]) as retried:
            assert retried.status == 200
    assert [a.status for a in fault_server.arrivals("/p")] == [503, 503, 200]


async def test_per_request_empty_middlewares_turn_retries_off(fault_server: FaultServer) -> None:
    """``middlewares=()`` on one request replaces the session's list: one send, no retry."""
    fault_server.script("/off", [Reply(503)])
    async with session() as http, http.get(fault_server.url + "/off", middlewares=()) as response:
        assert response.status == 503
    assert len(fault_server.arrivals("/off")) == 1


async def test_one_middleware_serves_several_sessions(fault_server: FaultServer) -> None:
    """One instance (its gate and budget) may be mounted on several sessions at once."""
    shared = middleware()
    fault_server.script("/s", [Reply(503), Reply(200), Reply(503)])
    async with (
        aiohttp.ClientSession(middlewares=[shared]) as first,
        aiohttp.ClientSession(middlewares=[shared]) as second,
    ):
        for http in (first, second):
            async with http.get(fault_server.url + "/s") as response:
                assert response.status == 200
    assert [a.status for a in fault_server.arrivals("/s")] == [503, 200, 503, 200]


async def test_raise_for_status_sees_only_the_final_response(fault_server: FaultServer) -> None:
    """A ``raise_for_status=True`` session raises for the final answer, after the retries."""
    fault_server.always("/rfs", Reply(503))
    async with aiohttp.ClientSession(middlewares=[middleware()], raise_for_status=True) as http:
        with pytest.raises(aiohttp.ClientResponseError) as caught:
            await http.get(fault_server.url + "/rfs")
    assert caught.value.status == 503
    assert len(fault_server.arrivals("/rfs")) == 5


# -- construction and scope ------------------------------------------------------------------


def test_gate_and_budget_default_to_the_process_scope() -> None:
    """Without ``gate``/``budget`` it shares the process's; None goes without; objects scope."""
    shared = RetryMiddleware().retrier
    assert shared.gate is forbear.process_gate()
    assert shared.budget is forbear.process_budget()
    bare = RetryMiddleware(gate=None, budget=None).retrier
    assert bare.gate is None
    assert bare.budget is None
    gate, budget = HostGate(), RetryBudget()
    scoped = RetryMiddleware(gate=gate, budget=budget).retrier
    assert scoped.gate is gate
    assert scoped.budget is budget


@pytest.mark.parametrize("option", ["gate", "budget"])
def test_a_bool_gate_or_budget_is_refused(option: str) -> None:
    """``gate=True``/``budget=True`` (the old tri-state) is refused, not read as a scope."""
    with pytest.raises(TypeError, match=option):
        RetryMiddleware(**{option: True})  # type: ignore[arg-type]


def test_inner_must_be_a_middleware() -> None:
    """A positional ``inner`` that cannot be called is refused at construction."""
    with pytest.raises(TypeError, match="inner"):
        RetryMiddleware(Policy())  # type: ignore[arg-type]


async def test_inner_middleware_runs_for_every_attempt(fault_server: FaultServer) -> None:
    """``inner`` runs for every attempt, after forbear's headers are set (per-attempt signing)."""
    fault_server.script("/sign", [Reply(503), Reply(503)])
    keys: list[str | None] = []

    async def sign(request: aiohttp.ClientRequest, handler: Any) -> aiohttp.ClientResponse:
        keys.append(request.headers.get("Idempotency-Key"))
        request.headers["X-Signature"] = f"sig-{len(keys)}"
        return await handler(request)  # type: ignore[no-any-return]

    retry = RetryMiddleware(sign, policy=FAST, idempotency_keys=True)
    async with (
        aiohttp.ClientSession(middlewares=[retry]) as http,
        http.post(fault_server.url + "/sign", data=b"x") as response,
    ):
        assert response.status == 200
    arrivals = fault_server.arrivals("/sign")
    assert [a.header("x-signature") for a in arrivals] == ["sig-1", "sig-2", "sig-3"]
    assert len(set(keys)) == 1
    assert keys[0]


# -- per-request overrides -------------------------------------------------------------------


async def test_overrides_retries_false_sends_that_request_once(fault_server: FaultServer) -> None:
    """``middlewares=[retry.overrides(retries=False)]`` sends once; the session's others retry."""
    fault_server.script("/o", [Reply(503), Reply(503)])
    retry = middleware()
    async with aiohttp.ClientSession(middlewares=[retry]) as http:
        once = retry.overrides(retries=False)
        async with http.get(fault_server.url + "/o", middlewares=[once]) as response:
            assert response.status == 503
        async with http.get(fault_server.url + "/o") as response:
            assert response.status == 200
    assert [a.status for a in fault_server.arrivals("/o")] == [503, 503, 200]


async def test_overrides_policy_replaces_the_policy(fault_server: FaultServer) -> None:
    """``retry.overrides(policy=...)`` runs that request by the given policy."""
    fault_server.always("/two", Reply(503))
    retry = middleware()
    two = retry.overrides(policy=Policy(max_attempts=2, backoff=Backoff(initial=0.01)))
    async with (
        aiohttp.ClientSession() as http,
        http.get(fault_server.url + "/two", middlewares=[two]) as response,
    ):
        assert response.status == 503
    assert len(fault_server.arrivals("/two")) == 2


async def test_overrides_retries_false_adds_no_aiohttp_rerun(raw_faults: RawFaults) -> None:
    """A GET reset after sending with retries off makes one send: aiohttp's own re-run is held."""
    raw_faults.mode = RawMode.RESET_AFTER_REQUEST
    retry = middleware()
    async with aiohttp.ClientSession(middlewares=[retry.overrides(retries=False)]) as http:
        with pytest.raises(aiohttp.ClientConnectionError):
            await http.get(raw_faults.url + "/r")
    assert len(raw_faults.arrivals()) == 1


async def test_forbear_overrides_block_applies_to_aiohttp(fault_server: FaultServer) -> None:
    """``with forbear.overrides(retries=False)`` sends once; a request's own overrides win."""
    fault_server.always("/blk", Reply(503))
    retry = middleware()
    three = retry.overrides(policy=Policy(max_attempts=3, backoff=Backoff(initial=0.01)))
    async with aiohttp.ClientSession(middlewares=[retry]) as http:
        with forbear.overrides(retries=False):
            async with http.get(fault_server.url + "/blk") as response:
                assert response.status == 503
            assert len(fault_server.arrivals("/blk")) == 1
            async with http.get(fault_server.url + "/blk", middlewares=[three]) as response:
                assert response.status == 503
    assert len(fault_server.arrivals("/blk")) == 4


async def test_bad_override_raises_naming_where(fault_server: FaultServer) -> None:
    """A bad ``overrides()`` value raises when the request is made, naming where it came from."""
    wrong = middleware().overrides(policy="fast")  # type: ignore[arg-type]
    async with aiohttp.ClientSession(middlewares=[wrong]) as http:
        with pytest.raises(TypeError, match=r"RetryMiddleware\.overrides\(\)"):
            await http.get(fault_server.url + "/bad")
    assert fault_server.arrivals("/bad") == []


# -- responses: returned unread, discarded ones released -------------------------------------


async def test_final_response_is_returned_unread(fault_server: FaultServer) -> None:
    """The final response is handed back unread, so it still streams."""
    fault_server.script(
        "/big", [Reply(503, body_size=MIB), Reply(200, body_size=3 * MIB, chunk_size=8192)]
    )
    async with session() as http, http.get(fault_server.url + "/big") as response:
        assert response.status == 200
        assert not response.content.is_eof()
        size = 0
        async for chunk in response.content.iter_chunked(64 * 1024):
            size += len(chunk)
    assert size == 3 * MIB
    assert [a.status for a in fault_server.arrivals("/big")] == [503, 200]


async def test_gives_up_with_the_last_response(fault_server: FaultServer) -> None:
    """When attempts run out, the last 503 is returned as it is, body unread."""
    fault_server.always("/down", Reply(503, body=b"still down"))
    async with session() as http, http.get(fault_server.url + "/down") as response:
        assert response.status == 503
        assert await response.read() == b"still down"
    assert len(fault_server.arrivals("/down")) == 5


async def test_limit_one_connector_survives_20mb_error_bodies(fault_server: FaultServer) -> None:
    """``TCPConnector(limit=1)`` with a 20 MB error body on every retry never hangs."""
    fault_server.script("/huge", [Reply(503, body_size=20 * MIB)] * 6)
    trace, opened = connection_counter()
    connector = aiohttp.TCPConnector(limit=1)

    async def fetch(http: aiohttp.ClientSession) -> int:
        async with http.get(fault_server.url + "/huge") as response:
            assert await response.read() == b"ok"
            return response.status

    with anyio.fail_after(30):
        async with session(connector=connector, trace_configs=[trace]) as http:
            statuses = await asyncio.gather(*(fetch(http) for _ in range(3)))
    assert statuses == [200, 200, 200]
    assert sorted(a.status or 0 for a in fault_server.arrivals("/huge")) == [200] * 3 + [503] * 6
    # Every 20 MB body was released unread: its connection closed, never drained for reuse.
    assert len(opened) >= 7


async def test_small_discarded_body_keeps_its_connection(fault_server: FaultServer) -> None:
    """A small discarded body is read (at most `RELEASE_BYTES`): its connection is reused."""
    fault_server.script("/small", [Reply(503, body=b"x" * 1000), Reply(503, body=b"y" * 60_000)])
    trace, opened = connection_counter()
    async with session(trace_configs=[trace]) as http, http.get(fault_server.url + "/small") as r:
        assert r.status == 200
    assert len(opened) == 1
    assert len(fault_server.arrivals("/small")) == 3


async def test_compressed_discarded_body_is_never_inflated(fault_server: FaultServer) -> None:
    """A small gzip body that would inflate to 50 MiB is released unread: a new connection."""
    fault_server.script("/bomb", [Reply(503, gzip_bomb=50 * MIB)])
    trace, opened = connection_counter()
    async with session(trace_configs=[trace]) as http, http.get(fault_server.url + "/bomb") as r:
        assert r.status == 200
    assert len(opened) == 2
    assert len(fault_server.arrivals("/bomb")) == 2


# -- transport errors ------------------------------------------------------------------------


async def test_refused_connection_is_reraised_with_the_history(refused_port: int) -> None:
    """A refused connection is retried even for POST, then re-raised unchanged with a note."""
    async with session() as http:
        with pytest.raises(aiohttp.ClientConnectorError) as caught:
            await http.post(f"http://127.0.0.1:{refused_port}/x", data=b"body")
    (note,) = notes(caught.value)
    assert note.startswith("forbear: POST made 5 send(s)")
    assert "connect: give-up (attempts-exhausted)" in note


async def test_reset_after_request_get_makes_exactly_max_attempts(raw_faults: RawFaults) -> None:
    """A GET reset after sending makes exactly 5 sends: aiohttp's own re-run adds none."""
    raw_faults.mode = RawMode.RESET_AFTER_REQUEST
    async with session() as http:
        with pytest.raises(aiohttp.ClientConnectionError) as caught:
            await http.get(raw_faults.url + "/r")
    assert len(raw_faults.arrivals()) == 5
    assert len(notes(caught.value)) == 1
    assert "give-up (attempts-exhausted)" in notes(caught.value)[0]


async def test_a_new_request_after_giving_up_is_sent_again(raw_faults: RawFaults) -> None:
    """The same GET asked again by the same task after an error is a new request, sent anew."""
    raw_faults.mode = RawMode.RESET_AFTER_REQUEST
    async with session() as http:
        for _ in range(2):
            with pytest.raises(aiohttp.ClientConnectionError):
                await http.get(raw_faults.url + "/r")
    assert len(raw_faults.arrivals()) == 10


async def test_reset_after_request_post_is_sent_once(raw_faults: RawFaults) -> None:
    """A POST that may have reached the server is not re-sent: its error comes back at once."""
    raw_faults.mode = RawMode.RESET_AFTER_REQUEST
    async with session() as http:
        with pytest.raises(aiohttp.ClientConnectionError) as caught:
            await http.post(raw_faults.url + "/r", data=b"x")
    assert len(raw_faults.arrivals()) == 1
    assert "not-safe-to-retry" in notes(caught.value)[0]


async def test_reset_post_with_idempotency_key_is_retried(raw_faults: RawFaults) -> None:
    """With ``idempotency_keys=True`` a POST carries one key on every attempt and is retried."""
    raw_faults.mode = RawMode.RESET_AFTER_REQUEST
    async with session(idempotency_keys=True) as http:
        with pytest.raises(aiohttp.ClientConnectionError):
            await http.post(raw_faults.url + "/r", data=b"x")
    raw = [arrival.raw.lower() for arrival in raw_faults.arrivals()]
    assert len(raw) == 5
    keys = {
        line for request in raw for line in request.split(b"\r\n") if b"idempotency-key" in line
    }
    assert len(keys) == 1


async def test_read_timeout_is_retried_for_get(raw_faults: RawFaults) -> None:
    """A ``sock_read`` timeout (SocketTimeoutError) is retried for GET, then re-raised."""
    raw_faults.mode = RawMode.NEVER_ANSWER
    policy = Policy(max_attempts=2, backoff=Backoff(initial=0.01, max=0.05))
    timeout = aiohttp.ClientTimeout(total=10, sock_read=0.2)
    async with session(policy=policy, timeout=timeout) as http:
        with pytest.raises(aiohttp.SocketTimeoutError) as caught:
            await http.get(raw_faults.url + "/t")
    assert len(raw_faults.arrivals()) == 2
    assert "read_timeout: give-up (attempts-exhausted)" in notes(caught.value)[0]


async def test_half_response_is_returned_and_fails_on_read(raw_faults: RawFaults) -> None:
    """A 200 whose body is cut short is the answer: returned, and reading it raises."""
    raw_faults.mode = RawMode.HALF_RESPONSE
    async with session() as http, http.get(raw_faults.url + "/h") as response:
        assert response.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            await response.read()
    assert len(raw_faults.arrivals()) == 1


# -- bodies ----------------------------------------------------------------------------------


async def test_bytes_body_is_replayed_whole(fault_server: FaultServer) -> None:
    """A bytes body (a reusable BytesPayload) goes out whole on every attempt."""
    fault_server.script("/put", [Reply(503), Reply(503)])
    async with session() as http, http.put(fault_server.url + "/put", data=b"x" * 5000) as r:
        assert r.status == 200
    assert [a.body for a in fault_server.arrivals("/put")] == [b"x" * 5000] * 3


async def test_file_body_is_rewound_and_replayed(fault_server: FaultServer, tmp_path: Path) -> None:
    """A file body is sent from its start on every attempt."""
    path = tmp_path / "upload.bin"
    path.write_bytes(b"0123456789" * 1000)
    fault_server.script("/file", [Reply(503)])
    async with session() as http:
        with path.open("rb") as handle:
            async with http.put(fault_server.url + "/file", data=handle) as response:
                assert response.status == 200
    assert [a.body for a in fault_server.arrivals("/file")] == [path.read_bytes()] * 2


async def test_form_data_is_replayed(fault_server: FaultServer) -> None:
    """A multipart form of in-memory parts is replayable and re-sent whole."""
    fault_server.script("/form", [Reply(503)])
    form = aiohttp.FormData()
    form.add_field("name", "value")
    form.add_field("blob", io.BytesIO(b"abc" * 100), filename="blob.bin")
    async with session() as http, http.put(fault_server.url + "/form", data=form) as response:
        assert response.status == 200
    first, second = (a.body for a in fault_server.arrivals("/form"))
    assert first == second
    assert b"abc" * 100 in first


async def test_async_generator_body_is_sent_once(fault_server: FaultServer) -> None:
    """An async-generator body is sent once and its answer handed back, never re-sent empty."""
    fault_server.script("/gen", [Reply(503)])

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(3):
            yield b"chunk"

    events: list[Event] = []
    async with (
        session(on_event=events.append) as http,
        http.put(fault_server.url + "/gen", data=chunks()) as response,
    ):
        assert response.status == 503
    assert [a.body for a in fault_server.arrivals("/gen")] == [b"chunk" * 3]
    assert [e.reason for e in events] == ["body-not-replayable"]


async def test_pipe_body_found_one_shot_while_sent_is_not_resent(
    fault_server: FaultServer,
) -> None:
    """A file that cannot seek back (a pipe) is found one-shot when sent: its answer is kept."""
    fault_server.script("/pipe", [Reply(503)])
    read_end, write_end = os.pipe()
    os.write(write_end, b"piped body")
    os.close(write_end)
    events: list[Event] = []
    with os.fdopen(read_end, "rb") as pipe:
        async with (
            session(on_event=events.append) as http,
            http.put(fault_server.url + "/pipe", data=pipe) as response,
        ):
            assert response.status == 503
    assert [a.body for a in fault_server.arrivals("/pipe")] == [b"piped body"]
    assert [e.reason for e in events] == ["body-not-replayable"]


async def test_stream_body_error_is_reraised_without_resend(raw_faults: RawFaults) -> None:
    """A one-shot body that meets a transport error is not re-sent: the error comes back."""
    raw_faults.mode = RawMode.RESET_AFTER_REQUEST

    async def chunks() -> AsyncIterator[bytes]:
        yield b"once"

    async with session() as http:
        with pytest.raises(aiohttp.ClientConnectionError) as caught:
            await http.put(raw_faults.url + "/gen", data=chunks())
    assert len(raw_faults.arrivals()) == 1
    assert "body-not-replayable" in notes(caught.value)[0]


# -- tokens ----------------------------------------------------------------------------------


async def test_token_is_fetched_attached_and_reexchanged_once(fault_server: FaultServer) -> None:
    """The token is fetched before the first send and re-exchanged once on a 401."""
    fault_server.require_token("/api")

    async def exchange() -> str:
        return fault_server.issue_token()

    source = TokenSource(exchange, origins=[fault_server.url])
    async with session(token=source) as http:
        async with http.get(fault_server.url + "/api") as response:
            assert response.status == 200
        fault_server.expire_tokens()
        async with http.get(fault_server.url + "/api") as response:
            assert response.status == 200
    assert [a.status for a in fault_server.arrivals("/api")] == [200, 401, 200]
    assert fault_server.tokens_issued == 2


async def test_exchange_through_the_same_session_is_not_intercepted(
    fault_server: FaultServer,
) -> None:
    """An exchange that uses the same session bypasses the middleware: no recursion, no retry."""
    fault_server.require_token("/api")
    fault_server.script("/token", [Reply(503)])  # intercepted, this would be retried
    sessions: list[aiohttp.ClientSession] = []

    async def exchange() -> str:
        # Deliberately without ``middlewares=()``: the middleware must step aside by itself.
        async with sessions[0].post(fault_server.url + "/token", data=b"grant") as response:
            await response.read()
        return fault_server.issue_token()

    async with session(token=TokenSource(exchange, origins=[fault_server.url])) as http:
        sessions.append(http)
        async with http.get(fault_server.url + "/api") as response:
            assert response.status == 200
    token_calls = fault_server.arrivals("/token")
    assert [a.status for a in token_calls] == [503]
    assert token_calls[0].header("authorization") is None
    assert [a.status for a in fault_server.arrivals("/api")] == [200]


async def test_failed_exchange_raises_token_exchange_error(fault_server: FaultServer) -> None:
    """A failing exchange raises `TokenExchangeError`; the request is not sent without a token."""
    fault_server.require_token("/api")

    async def exchange() -> str:
        raise RuntimeError("the identity provider is down")

    source = TokenSource(exchange, origins=[fault_server.url])
    async with session(token=source) as http:
        with pytest.raises(TokenExchangeError):
            await http.get(fault_server.url + "/api")
    assert fault_server.arrivals("/api") == []


async def test_token_does_not_follow_a_redirect_to_another_origin(
    fault_server: FaultServer,
) -> None:
    """A redirect hop to another origin never carries the token; a same-origin hop does."""
    token = fault_server.issue_token()
    source = TokenSource(lambda: token, origins=[fault_server.url], token=token)
    with serve() as other:
        fault_server.script("/away", [Reply(302, headers={"Location": other.url + "/landing"})])
        fault_server.script("/home", [Reply(302, headers={"Location": "/here"})])
        other.script("/back", [Reply(302, headers={"Location": fault_server.url + "/there"})])
        async with session(token=source) as http:
            for url in (
                fault_server.url + "/away",
                fault_server.url + "/home",
                other.url + "/back",
            ):
                async with http.get(url) as response:
                    assert response.status == 200
        assert [a.header("authorization") for a in other.arrivals()] == [None, None]
    sent = {a.path: a.header("authorization") for a in fault_server.arrivals()}
    assert sent == {p: f"Bearer {token}" for p in ("/away", "/home", "/here", "/there")}


async def test_each_redirect_hop_is_retried_on_its_own(fault_server: FaultServer) -> None:
    """The middleware runs once per hop: a 503 on the hop's target is retried there."""
    fault_server.script("/from", [Reply(307, headers={"Location": "/to"})])
    fault_server.script("/to", [Reply(503)])
    async with session() as http, http.put(fault_server.url + "/from", data=b"abc") as response:
        assert response.status == 200
    assert [(a.path, a.status, a.body) for a in fault_server.arrivals()] == [
        ("/from", 307, b"abc"),
        ("/to", 503, b"abc"),
        ("/to", 200, b"abc"),
    ]


async def test_attached_token_is_stripped_for_another_origin(fault_server: FaultServer) -> None:
    """An Authorization value forbear attached is removed from a request to another origin."""
    token = fault_server.issue_token()
    source = TokenSource(lambda: token, origins=[fault_server.url], token=token)
    with serve() as other:
        async with session(token=source) as http:
            async with http.get(fault_server.url + "/one") as response:
                copied = dict(response.request_info.headers)
            async with http.get(other.url + "/two", headers=copied) as response:
                assert response.status == 200
            own = {"Authorization": "Basic dXNlcjpwYXNz"}
            async with http.get(other.url + "/three", headers=own) as response:
                assert response.status == 200
        assert [a.header("authorization") for a in other.arrivals()] == [None, own["Authorization"]]


# -- timeouts --------------------------------------------------------------------------------


async def test_waits_count_against_client_timeout_total(fault_server: FaultServer) -> None:
    """``ClientTimeout(total=...)`` covers the waits: a 1 s Retry-After cannot fit in 0.3 s."""
    fault_server.always("/wait", Reply(503, retry_after=1))
    started = time.monotonic()
    async with session(timeout=aiohttp.ClientTimeout(total=0.3)) as http:
        with pytest.raises(asyncio.TimeoutError):
            await http.get(fault_server.url + "/wait")
    assert time.monotonic() - started < 0.9
    assert len(fault_server.arrivals("/wait")) == 1


async def test_total_timeout_during_a_retry_carries_the_history(fault_server: FaultServer) -> None:
    """``total`` running out inside a later attempt is re-raised with the attempts before it."""
    fault_server.script("/late", [Reply(503), Reply(200, delay=5.0)])
    async with session(timeout=aiohttp.ClientTimeout(total=0.5)) as http:
        with pytest.raises(asyncio.TimeoutError) as caught:
            await http.get(fault_server.url + "/late")
    (note,) = notes(caught.value)
    assert note.startswith("forbear: GET made 2 send(s): #1 503: retry (backoff)")
    assert len(fault_server.arrivals("/late")) == 2


async def test_policy_deadline_returns_the_last_answer_in_time(fault_server: FaultServer) -> None:
    """``Policy(deadline=...)`` bounds the whole call and hands back the last response."""
    fault_server.always("/wait", Reply(503, retry_after=1))
    policy = Policy(deadline=0.5, backoff=Backoff(initial=0.01, max=0.05))
    started = time.monotonic()
    async with session(policy=policy) as http, http.get(fault_server.url + "/wait") as response:
        assert response.status == 503
    assert time.monotonic() - started < 0.9
    assert len(fault_server.arrivals("/wait")) == 1


# -- events ----------------------------------------------------------------------------------


async def test_events_and_notes_never_carry_the_token(refused_port: int) -> None:
    """Events and exception notes name the URL without query and never the token."""
    secret = "s3cr3t-token-value"
    source = TokenSource(lambda: secret, origins=[f"http://127.0.0.1:{refused_port}"], token=secret)
    events: list[Event] = []
    async with session(token=source, on_event=events.append) as http:
        with pytest.raises(aiohttp.ClientConnectorError) as caught:
            await http.get(f"http://127.0.0.1:{refused_port}/x?api_key={secret}")
    assert len(events) == 5
    assert all(e.url == f"http://127.0.0.1:{refused_port}/x" for e in events)
    assert secret not in repr(events) + " ".join(notes(caught.value)) + str(caught.value)


async def test_each_request_is_keyed_by_its_own_origin(fault_server: FaultServer) -> None:
    """The middleware keeps the last origin it read: a request to another origin, and one back,
    is each counted under its own (a 429 from one paces that one only)."""
    gate = HostGate()
    with serve() as other:
        other.script("/limited", [Reply(429, retry_after=0), Reply(200)])
        async with session(gate=gate) as http:
            for url in (
                fault_server.url + "/ok",
                other.url + "/limited",
                fault_server.url + "/ok",
            ):
                async with http.get(url) as response:
                    assert response.status == 200
        assert gate.rate(forbear.origin_of(other.url)) is not None
        assert gate.rate(forbear.origin_of(fault_server.url)) is None
