"""`RetryTransport` under `httpx.AsyncClient`, on asyncio and trio, against loopback servers."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import pytest

from forbear import Backoff, Policy, TokenSource
from forbear_httpx import RetryTransport
from forbear_testing import FaultServer, RawFaults, RawMode, Reply, serve

pytestmark = pytest.mark.anyio

FAST = Policy(backoff=Backoff(initial=0.01, max=0.05))
MIB = 1 << 20


def notes(exc: BaseException) -> list[str]:
    """The notes added to an exception."""
    return list(getattr(exc, "__notes__", []))


def client(**options: Any) -> httpx.AsyncClient:
    """An async client whose transport retries with the fast policy (plus ``options``)."""
    options.setdefault("policy", FAST)
    return httpx.AsyncClient(transport=RetryTransport(**options))


async def test_stream_gets_the_final_response_unread(fault_server: FaultServer) -> None:
    """`client.stream` still streams asynchronously: the final response arrives unread."""
    fault_server.script(
        "/big", [Reply(503, body_size=MIB), Reply(200, body_size=3 * MIB, chunk_size=8192)]
    )
    async with client() as http, http.stream("GET", fault_server.url + "/big") as response:
        assert response.status_code == 200
        assert not response.is_stream_consumed
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
    assert size == 3 * MIB
    assert [a.status for a in fault_server.arrivals("/big")] == [503, 200]


async def _connections(http: httpx.AsyncClient, url: str) -> int:
    """How many TCP connections one logical GET opened (counted by httpcore's trace hook)."""
    opened = []

    async def trace(name: str, info: dict[str, Any]) -> None:
        if name == "connection.connect_tcp.complete":
            opened.append(name)

    await http.get(url, extensions={"trace": trace})
    return len(opened)


async def test_discarded_bodies_are_released(fault_server: FaultServer) -> None:
    """A small discarded body is read (connection reused); a large one is closed unread."""
    fault_server.script("/small", [Reply(503, body=b"x" * 1000)])
    fault_server.script("/large", [Reply(503, body_size=8 * MIB)])
    async with client() as http:
        assert await _connections(http, fault_server.url + "/small") == 1
    async with client() as http:
        assert await _connections(http, fault_server.url + "/large") == 2
    assert len(fault_server.arrivals()) == 4


async def test_mounts_retry_only_the_mounted_origin(fault_server: FaultServer) -> None:
    """Mounted on one origin of an AsyncClient, the transport retries only there."""
    with serve() as other:
        for server in (fault_server, other):
            server.script("/m", [Reply(503)])
        mounts = {fault_server.url: RetryTransport(policy=FAST)}
        async with httpx.AsyncClient(mounts=mounts) as http:
            assert (await http.get(fault_server.url + "/m")).status_code == 200
            assert (await http.get(other.url + "/m")).status_code == 503
        assert len(other.arrivals("/m")) == 1
    assert len(fault_server.arrivals("/m")) == 2


class CountingTransport(httpx.AsyncHTTPTransport):
    """A real `httpx.AsyncHTTPTransport` that counts how the client drives it."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    async def __aenter__(self) -> CountingTransport:
        self.calls.append("aenter")
        await super().__aenter__()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        self.calls.append("aexit")
        await super().__aexit__(*exc_info)

    async def aclose(self) -> None:
        self.calls.append("aclose")
        await super().aclose()


async def test_client_context_enters_and_exits_the_inner_transport(
    fault_server: FaultServer,
) -> None:
    """`async with httpx.AsyncClient(...)` enters and exits the wrapped transport."""
    inner = CountingTransport()
    async with httpx.AsyncClient(transport=RetryTransport(inner)) as http:
        await http.get(fault_server.url + "/")
        assert inner.calls == ["aenter"]
    assert inner.calls[:2] == ["aenter", "aexit"]


async def test_client_aclose_closes_the_inner_transport(fault_server: FaultServer) -> None:
    """`await client.aclose()` closes the wrapped transport."""
    inner = CountingTransport()
    http = httpx.AsyncClient(transport=RetryTransport(inner))
    await http.get(fault_server.url + "/")
    await http.aclose()
    assert inner.calls == ["aclose"]


async def test_a_sync_inner_transport_refuses_an_async_client() -> None:
    """Wrapping a sync-only transport and using it from `httpx.AsyncClient` is a TypeError."""
    transport = RetryTransport(httpx.HTTPTransport())
    with pytest.raises(TypeError, match=r"httpx\.AsyncClient needs an async one"):
        await httpx.AsyncClient(transport=transport).get("http://127.0.0.1:9/")


async def test_one_transport_serves_a_sync_and_an_async_client(fault_server: FaultServer) -> None:
    """The same instance works in `httpx.Client` and `httpx.AsyncClient`, each with its pool."""
    transport = RetryTransport(policy=FAST)
    fault_server.script("/both", [Reply(503)])
    async with httpx.AsyncClient(transport=transport) as http:
        assert (await http.get(fault_server.url + "/both")).status_code == 200
    fault_server.script("/both", [Reply(503)])
    with httpx.Client(transport=transport) as sync_http:
        assert sync_http.get(fault_server.url + "/both").status_code == 200
    assert [a.status for a in fault_server.arrivals("/both")] == [503, 200, 503, 200]


async def test_retries_false_sends_once(fault_server: FaultServer) -> None:
    """``{"retries": False}`` sends an async request once and returns its 503."""
    fault_server.script("/once", [Reply(503)])
    async with client() as http:
        response = await http.get(
            fault_server.url + "/once", extensions={"forbear": {"retries": False}}
        )
    assert response.status_code == 503
    assert len(fault_server.arrivals("/once")) == 1


async def test_refused_connection_is_retried_then_raised_with_a_note(refused_port: int) -> None:
    """A refused connect is retried; the last `httpx.ConnectError` carries the history."""
    with pytest.raises(httpx.ConnectError) as caught:
        async with client() as http:
            await http.get(f"http://127.0.0.1:{refused_port}/x")
    (note,) = notes(caught.value)
    assert note.count("connect: retry") == FAST.max_attempts - 1


async def test_read_timeout_on_get_is_retried(raw_faults: RawFaults) -> None:
    """An async GET that times out reading is retried, then `httpx.ReadTimeout` is raised."""
    raw_faults.mode = RawMode.NEVER_ANSWER
    policy = Policy(max_attempts=3, backoff=FAST.backoff)
    with pytest.raises(httpx.ReadTimeout) as caught:
        async with httpx.AsyncClient(transport=RetryTransport(policy=policy), timeout=0.1) as http:
            await http.get(raw_faults.url + "/slow")
    assert len(raw_faults.arrivals()) == 3
    assert "read_timeout: give-up" in notes(caught.value)[0]


async def test_async_generator_body_is_sent_once(fault_server: FaultServer) -> None:
    """An async-generator body is sent once and its 503 handed back, never `StreamConsumed`."""
    fault_server.script("/gen", [Reply(503)])

    async def chunks() -> AsyncIterator[bytes]:
        yield b"one "
        yield b"shot"

    async with client() as http:
        response = await http.put(fault_server.url + "/gen", content=chunks())
    assert response.status_code == 503
    assert [a.body for a in fault_server.arrivals("/gen")] == [b"one shot"]


async def test_json_body_is_re_sent_whole(fault_server: FaultServer) -> None:
    """A JSON body is re-sent identical on the retry."""
    fault_server.script("/put", [Reply(502)])
    async with client() as http:
        assert (await http.put(fault_server.url + "/put", json={"a": 1})).status_code == 200
    first, second = fault_server.arrivals("/put")
    assert first.body == second.body == b'{"a":1}'


@pytest.mark.parametrize("kind", ["async", "sync"])
async def test_token_re_exchange_on_401(fault_server: FaultServer, kind: str) -> None:
    """A 401 re-exchanges once through an async exchange, or a sync one in a worker thread."""
    fault_server.require_token("/secure")

    async def async_exchange() -> str:
        await anyio.sleep(0)
        return fault_server.issue_token()

    exchange = async_exchange if kind == "async" else fault_server.issue_token
    token = TokenSource(exchange, origins=[fault_server.url])
    async with client(token=token) as http:
        assert (await http.get(fault_server.url + "/secure")).status_code == 200
        fault_server.expire_tokens()
        assert (await http.get(fault_server.url + "/secure")).status_code == 200
    assert [a.status for a in fault_server.arrivals("/secure")] == [200, 401, 200]
    assert fault_server.tokens_issued == 2


async def test_concurrent_401s_share_one_exchange(fault_server: FaultServer) -> None:
    """Twenty tasks refused with the same stale token cause one re-exchange between them."""
    fault_server.require_token("/secure")
    token = TokenSource(fault_server.issue_token, origins=[fault_server.url])
    statuses: list[int] = []
    async with client(token=token) as http:
        await http.get(fault_server.url + "/secure")
        fault_server.expire_tokens()

        async def fetch() -> None:
            statuses.append((await http.get(fault_server.url + "/secure")).status_code)

        async with anyio.create_task_group() as tasks:
            for _ in range(20):
                tasks.start_soon(fetch)
    assert statuses == [200] * 20
    assert fault_server.tokens_issued == 2


async def test_idempotency_key_is_the_same_on_every_attempt(fault_server: FaultServer) -> None:
    """An async POST gets one UUID Idempotency-Key, repeated on its retries."""
    fault_server.script("/orders", [Reply(503)])
    async with client(idempotency_keys=True) as http:
        assert (await http.post(fault_server.url + "/orders", json={})).status_code == 200
    first, second = fault_server.arrivals("/orders")
    key = first.header("idempotency-key")
    assert key is not None and uuid.UUID(key) and second.header("idempotency-key") == key


async def test_cancelling_during_a_wait_stops_promptly(fault_server: FaultServer) -> None:
    """A request cancelled while waiting out a Retry-After stops at once and sends no more."""
    fault_server.script("/wait", [Reply(503, retry_after=5)])
    started = time.monotonic()
    async with client() as http:
        with anyio.move_on_after(0.3) as scope:
            await http.get(fault_server.url + "/wait")
    assert scope.cancelled_caught
    assert time.monotonic() - started < 2.0
    assert len(fault_server.arrivals("/wait")) == 1
